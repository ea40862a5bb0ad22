"""Real DDS across processes: a real RGB-D frame published by one process decodes correctly in another."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray

from robot_vision.datasets import load_ycb_frame
from robot_vision.ros import conversions as cv

pytestmark = pytest.mark.ros

HERE = Path(__file__).resolve().parent


def test_rgbd_frame_crosses_processes(ros_context, shared_data):
    frame = load_ycb_frame(2, shared_data / 'ycb_posecnn')
    publisher = subprocess.Popen([sys.executable, str(HERE / 'publish_frame.py'), '2'])
    node = Node('rgbd_frame_listener', context=ros_context)
    received = {}
    node.create_subscription(Image, 'camera/color/image_raw', lambda m: received.setdefault('color', m), 10)
    node.create_subscription(Image, 'camera/depth/image_raw', lambda m: received.setdefault('depth', m), 10)
    node.create_subscription(CameraInfo, 'camera/color/camera_info',
                             lambda m: received.setdefault('info', m), 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60
        while len(received) < 3 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert node.count_publishers('camera/color/image_raw') == 1
        assert set(received) == {'color', 'depth', 'info'}, f'received only {sorted(received)}'
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
        node.destroy_node()
    color = cv.image_to_rgb(received['color'])
    assert received['color'].encoding == 'bgr8' and np.array_equal(color, frame.color)
    depth = cv.image_to_depth(received['depth'])
    valid = np.isfinite(frame.depth)
    assert np.array_equal(np.isfinite(depth), valid & (np.round(np.nan_to_num(frame.depth) * 1000) > 0))
    both = valid & np.isfinite(depth)
    assert np.abs(depth[both] - frame.depth[both]).max() <= 0.0005  # millimetre rounding
    assert cv.camera_info_to_intrinsics(received['info']) == frame.intrinsics
    assert received['info'].header.stamp == received['color'].header.stamp


@pytest.mark.parametrize('msg_type,topic,expected', [
    (Detection2DArray, 'detections',
     'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968'),
    (TFMessage, 'tf', 'RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087'),
])
def test_interface_type_hashes_match_the_ros_distro(ros_context, msg_type, topic, expected):
    """The locally built vision_msgs/tf2_msgs are wire-compatible with a Jazzy robot's packages."""
    node = Node('hash_probe', context=ros_context)
    try:
        node.create_publisher(msg_type, topic, 1)
        info = node.get_publishers_info_by_topic('/' + topic)
        assert len(info) == 1
        assert str(info[0].topic_type_hash) == expected
    finally:
        node.destroy_node()
