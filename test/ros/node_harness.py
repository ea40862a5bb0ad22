"""Shared helpers of the process-level node tests: start a real node executable, feed it a real frame, spin."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from robot_vision.ros import conversions as cv

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'config' / 'robot_vision.yaml'


def executable(name: str) -> Path:
    """Path of an installed console script of this package (e.g. 'perception_node') in the venv."""
    return Path(sys.executable).parent / name


def start_node(name: str, *extra: str, config: Path = CONFIG) -> subprocess.Popen:
    """Start the node executable ``name`` with the package config (as the launch file does) plus ``extra``."""
    args = [str(executable(name)), '--ros-args', '--params-file', str(config), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))


def stop(process: subprocess.Popen) -> str:
    """Terminate a node started by :func:`start_node` and return its log."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def spin_until(executor, condition: Callable[[], bool], timeout: float) -> bool:
    """Spin ``executor`` until ``condition()`` holds or ``timeout`` seconds pass; return the condition."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()


def static_transform(parent: str, child: str, child_to_parent: np.ndarray) -> TransformStamped:
    """A TransformStamped of ``child`` in ``parent`` from a 4x4 matrix."""
    transform = TransformStamped()
    transform.header.frame_id, transform.child_frame_id = parent, child
    pose = cv.matrix_to_pose(child_to_parent)
    transform.transform.translation.x = pose.position.x
    transform.transform.translation.y = pose.position.y
    transform.transform.translation.z = pose.position.z
    transform.transform.rotation = pose.orientation
    return transform


class FeedNode:
    """Publishes a real RGB-D frame (colour, aligned 16UC1 depth, camera info) and odom -> camera TF."""

    def __init__(self, context, frame, reliability=ReliabilityPolicy.BEST_EFFORT, camera_to_fixed=np.eye(4),
                 fixed_frame: str = 'odom'):
        self.node = Node('frame_feed', context=context)
        qos = QoSProfile(depth=5, reliability=reliability)
        self.color = self.node.create_publisher(Image, 'camera/color/image_raw', qos)
        self.depth = self.node.create_publisher(Image, 'camera/aligned_depth_to_color/image_raw', qos)
        self.info = self.node.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
        static = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                            reliability=ReliabilityPolicy.RELIABLE)
        self.tf_static = self.node.create_publisher(TFMessage, '/tf_static', static)
        self.frame = frame
        self.tf_static.publish(TFMessage(transforms=[static_transform(fixed_frame, frame.frame_id,
                                                                      camera_to_fixed)]))
        self.raw_depth = np.round(np.nan_to_num(frame.depth) * 1000).astype(np.uint16)

    def publish(self):
        """Publish the frame once, stamped now; return the stamp."""
        stamp = self.node.get_clock().now().to_msg()
        self.info.publish(cv.intrinsics_to_camera_info(self.frame.intrinsics, self.frame.frame_id, stamp))
        if self.frame.color is not None:
            self.color.publish(cv.numpy_to_image(self.frame.color, 'rgb8', self.frame.frame_id, stamp))
        self.depth.publish(cv.numpy_to_image(self.raw_depth, '16UC1', self.frame.frame_id, stamp))
        return stamp
