"""What launch/replay.launch.py starts, as processes: `robot-vision play` of the bundled real bag into the nodes."""

import threading
import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import spin_until, start_node, stop
from rclpy.node import Node
from vision_msgs.msg import Detection3DArray

from robot_vision.replay.bag import BagSource
from robot_vision.replay.cli import DEMO_BAG
from robot_vision.ros.bag_player import BagPlayer


pytestmark = pytest.mark.ros

COLOR = '/camera/color/image_raw'


DEPTH = '/camera/aligned_depth_to_color/image_raw'
INFO = '/camera/color/camera_info'

#: What robot_vision.launch.py starts with nodes:=all_in_one (the separate nodes are fed real frames over DDS in
#: their own tests and streamed through in benchmarks/bench_node_stream.py).
EXECUTABLES, DEPTH_READERS = ['perception_node'], 1


def test_demo_bag_replays_into_the_nodes_with_sim_time(ros_context):
    executables, depth_readers = EXECUTABLES, DEPTH_READERS
    # As replay.launch.py starts them: simulated time, reliable inputs (the player publishes reliably).
    nodes = [start_node(name, '-p', 'use_sim_time:=true', '-p', 'fixed_frame:=base_link',
                        '-p', 'input_reliability:=reliable', '-r', '__ns:=/robot_vision',
                        '-p', f'color_topic:={COLOR}', '-p', f'depth_topic:={DEPTH}',
                        '-p', f'camera_info_topic:={INFO}') for name in executables]
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
                          and listener.count_subscribers(DEPTH) >= depth_readers
                          and listener.count_subscribers(INFO) >= depth_readers, 60), 'the nodes never subscribed'
        # The player in this test's process: its participant already discovered the node, so no frame is
        # lost to the discovery of a fresh process (`robot-vision play` runs the same BagPlayer).
        player = BagPlayer(DEMO_BAG, rate=0.25, context=ros_context)
        assert player.wait_for_subscribers(sorted(player.publishers_by_topic), 30.0, settle=1.0)
        thread = threading.Thread(target=player.play)
        thread.start()
        spin_until(executor, lambda: not thread.is_alive(), 60)
        spin_until(executor, lambda: len(got['objects']) == 3 and len(got['tracked']) == 3, 30)
    finally:
        played = f'player published {player.published} messages' if player else ''
        if player is not None:
            player.destroy_node()
        logs = [stop(n) for n in nodes]
    status = [f'{kv.key}={kv.value}' for kv in diagnostics[-1].status[0].values] if diagnostics else []
    # 3 frames; the latest-frame policy may drop one when two synchronised sets arrive together.
    assert 2 <= len(got['objects']) == len(got['tracked']) <= 3, f'{played}\n{"".join(logs)[-4000:]}\n{status}'
    recorded = {m.log_ns for m in BagSource(DEMO_BAG).messages() if m.topic == COLOR}
    stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got['objects']}
    assert stamps <= recorded and abs(min(stamps) * 1e-9 - time.time()) > 3600  # the bag's stamps, not now
    assert all(len(m.detections) >= 3 and m.header.frame_id == 'kinect_rgb_optical_frame' for m in got['objects'])
    assert all(m.header.frame_id == 'base_link' for m in got['tracked'])
