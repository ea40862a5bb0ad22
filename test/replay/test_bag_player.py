"""The bag player over real DDS: recorded topics and timing, /clock, and a latched /tf_static."""

import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from robot_vision.replay.cli import DEMO_BAG
from robot_vision.ros.bag_player import CLOCK_QOS, DATA_QOS, LATCHED_QOS, BagPlayer

pytestmark = pytest.mark.ros

COLOR = '/camera/color/image_raw'


def _spin_until(executor, condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_player_publishes_the_bag_with_clock_and_latched_tf_static(ros_domain):
    rclpy.init()
    executor = SingleThreadedExecutor()
    try:
        player = BagPlayer(DEMO_BAG, rate=2.0)
        listener = Node('player_test_listener')
        executor.add_node(listener)
        got = {'color': [], 'info': 0, 'clock': [], 'late_tf': []}
        listener.create_subscription(Image, COLOR, lambda m: got['color'].append(
            (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, time.monotonic())), DATA_QOS)
        listener.create_subscription(CameraInfo, '/camera/color/camera_info',
                                     lambda m: got.__setitem__('info', got['info'] + 1), DATA_QOS)
        listener.create_subscription(Clock, '/clock', lambda m: got['clock'].append(
            m.clock.sec + m.clock.nanosec * 1e-9), CLOCK_QOS)
        assert player.wait_for_subscribers([COLOR, '/camera/color/camera_info'], timeout=10.0)
        thread = threading.Thread(target=player.play)
        thread.start()
        assert _spin_until(executor, lambda: len(got['color']) == 3 and got['info'] == 3, 15.0), got
        thread.join(timeout=10.0)
        _spin_until(executor, lambda: False, 0.5)  # collect the last /clock messages
        assert player.published == 10  # 1 tf_static + 3 x (camera_info, colour, depth)
        stamps = [s for s, _ in got['color']]
        assert stamps == sorted(stamps)
        recorded = stamps[-1] - stamps[0]
        arrival = got['color'][-1][1] - got['color'][0][1]
        assert arrival == pytest.approx(recorded / 2.0, abs=0.15)  # rate 2: half the recorded spacing
        assert got['clock'] and got['clock'] == sorted(got['clock'])
        assert got['clock'][0] >= stamps[0] - 0.1 and max(got['clock']) == pytest.approx(stamps[-1], abs=1e-3)
        # a subscriber that joins after playback still gets /tf_static (latched)
        listener.create_subscription(TFMessage, '/tf_static', lambda m: got['late_tf'].append(m), LATCHED_QOS)
        assert _spin_until(executor, lambda: got['late_tf'], 10.0)
        frames = {t.child_frame_id for t in got['late_tf'][0].transforms}
        assert frames == {'base_link', 'camera_link', 'kinect_rgb_optical_frame'}
        player.destroy_node()
        listener.destroy_node()
    finally:
        executor.shutdown()
        rclpy.shutdown()
