"""What launch/replay.launch.py starts, as processes: `robot-vision play` of the bundled real bag into the nodes."""

import subprocess
import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import executable, spin_until, start_node, stop
from rclpy.node import Node
from vision_msgs.msg import Detection3DArray


pytestmark = pytest.mark.ros

COLOR = '/camera/color/image_raw'


DEPTH = '/camera/aligned_depth_to_color/image_raw'

#: What robot_vision.launch.py starts for its ``nodes`` argument, and how many of them read depth.
SETUPS = {'all_in_one': (['perception_node'], 1),
          'separate': (['detector_node', 'pose_estimator_node', 'grasp_planner_node', 'tracker_node'], 3)}


@pytest.mark.parametrize('setup', sorted(SETUPS))
def test_demo_bag_replays_into_the_nodes_with_sim_time(ros_context, setup):
    executables, depth_readers = SETUPS[setup]
    # As replay.launch.py starts them: simulated time, reliable inputs (the player publishes reliably).
    nodes = [start_node(name, '-p', 'use_sim_time:=true', '-p', 'fixed_frame:=base_link',
                        '-p', 'input_reliability:=reliable', '-r', '__ns:=/robot_vision',
                        '-p', f'color_topic:={COLOR}', '-p', f'depth_topic:={DEPTH}',
                        '-p', 'camera_info_topic:=/camera/color/camera_info') for name in executables]
    listener = Node('replay_listener', context=ros_context)
    got = {'objects': [], 'tracked': []}
    listener.create_subscription(Detection3DArray, '/robot_vision/objects', got['objects'].append, 10)
    listener.create_subscription(Detection3DArray, '/robot_vision/tracked_objects', got['tracked'].append, 10)
    diagnostics = []
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(listener)
    player = None
    try:
        assert spin_until(executor, lambda: listener.count_subscribers(COLOR) > 0
                          and listener.count_subscribers(DEPTH) >= depth_readers, 60), 'the nodes never subscribed'
        player = subprocess.Popen([str(executable('robot-vision')), 'play', 'demo', '--rate', '0.25'],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        spin_until(executor, lambda: len(got['objects']) == 3 and len(got['tracked']) == 3, 90)
    finally:
        played = player.communicate(timeout=60)[0] if player else ''
        logs = [stop(n) for n in nodes]
    status = [f'{kv.key}={kv.value}' for kv in diagnostics[-1].status[0].values] if diagnostics else []
    assert len(got['objects']) == len(got['tracked']) == 3, f'{played}\n{"".join(logs)[-4000:]}\n{status}'
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got['objects']]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) > 3600  # recorded stamps, not now
    assert all(len(m.detections) >= 3 and m.header.frame_id == 'kinect_rgb_optical_frame' for m in got['objects'])
    assert all(m.header.frame_id == 'base_link' for m in got['tracked'])
    assert len(got['tracked'][-1].detections) >= 3
