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


def test_demo_bag_replays_into_the_all_in_one_node_with_sim_time(ros_context):
    # As replay.launch.py starts it: simulated time, reliable inputs (the player publishes reliably).
    nodes = [start_node('perception_node', '-p', 'use_sim_time:=true', '-p', 'fixed_frame:=base_link',
                        '-p', 'input_reliability:=reliable',
                        '-r', '__ns:=/robot_vision', '-p', 'color_topic:=/camera/color/image_raw',
                        '-p', 'depth_topic:=/camera/aligned_depth_to_color/image_raw',
                        '-p', 'camera_info_topic:=/camera/color/camera_info')]
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
        assert spin_until(executor, lambda: listener.count_subscribers(COLOR) > 0, 60), 'the node never subscribed'
        player = subprocess.Popen([str(executable('robot-vision')), 'play', 'demo', '--rate', '0.25'],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        spin_until(executor, lambda: len(got['objects']) == 3 and len(got['tracked']) == 3, 90)
    finally:
        played = player.communicate(timeout=60)[0] if player else ''
        logs = [stop(n) for n in nodes]
    status = [f'{kv.key}={kv.value}' for kv in diagnostics[-1].status[0].values] if diagnostics else []
    assert len(got['objects']) == len(got['tracked']) == 3, f'{played}\n{logs[0][-3000:]}\n{status}'
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got['objects']]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) > 3600  # recorded stamps, not now
    assert all(len(m.detections) >= 3 and m.header.frame_id == 'kinect_rgb_optical_frame' for m in got['objects'])
    assert all(m.header.frame_id == 'base_link' for m in got['tracked'])
    assert len(got['tracked'][-1].detections) >= 3
