"""Shared helpers of the process-level node tests: start a real node executable, feed it a real frame, spin."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from image_encoders import compressed_color, compressed_depth
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage

from robot_vision.datasets import load_organized_pcd
from robot_vision.perception3d import segment_scene
from robot_vision.pipeline import PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.topics import image_topic

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'config' / 'robot_vision.yaml'
#: Reliable inputs in the process tests: on a loaded 2-core machine best-effort 600-900 kB images lose
#: fragments, and a set is only complete when every one of its images arrived.
RELIABLE = ('-p', 'input_reliability:=reliable')
#: The pipeline settings of config/robot_vision.yaml that matter for the milk frame.
MILK_SETTINGS = PipelineSettings.from_dict({'segmentation': {'max_depth': 2.0}})


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


def call_service(executor, client, request, timeout: float = 20.0, resend_s: float | None = None):
    """Call the service ``client`` and return its response; fail after ``timeout`` seconds without one.

    ``service_is_ready`` holds once the service's request path is matched, while its reply path may still be
    matching: a reply sent in that window is lost (seen once in CI on a loaded machine, a ``get_state`` that never
    answered). A request that changes nothing when repeated (``resend_s``) is sent again after that many seconds
    unanswered.
    """
    assert spin_until(executor, client.service_is_ready, 60.0), f'{client.srv_name} never appeared'
    deadline = time.monotonic() + timeout
    while True:
        future = client.call_async(request)
        wait = deadline - time.monotonic() if resend_s is None else min(resend_s, deadline - time.monotonic())
        if spin_until(executor, future.done, max(wait, 0.0)):
            return future.result()
        client.remove_pending_request(future)
        assert time.monotonic() < deadline, f'{client.srv_name}: no answer in {timeout} s'


def lifecycle_state(node) -> str:
    """The label of a lifecycle node's current state ('unconfigured', 'inactive', 'active', ...)."""
    return node._state_machine.current_state[1]


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
                 fixed_frame: str = 'odom', compressed: bool = False):
        """``compressed``: publish JPEG colour and 16UC1 compressedDepth on the image_transport sub-topics."""
        self.node = Node('frame_feed', context=context)
        qos = QoSProfile(depth=5, reliability=reliability)
        self.compressed = compressed
        image_type = CompressedImage if compressed else Image
        self.color = self.node.create_publisher(image_type, image_topic('camera/color/image_raw', 'compressed'
                                                                       if compressed else 'raw'), qos)
        self.depth = self.node.create_publisher(image_type, image_topic('camera/aligned_depth_to_color/image_raw',
                                                                       'compressedDepth' if compressed else 'raw'),
                                                qos)
        self.info = self.node.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
        static = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                            reliability=ReliabilityPolicy.RELIABLE)
        self.tf_static = self.node.create_publisher(TFMessage, '/tf_static', static)
        self.frame = frame
        self.tf_static.publish(TFMessage(transforms=[static_transform(fixed_frame, frame.frame_id,
                                                                      camera_to_fixed)]))
        self.raw_depth = np.round(np.nan_to_num(frame.depth) * 1000).astype(np.uint16)

    def wait_for_nodes(self, executor, nodes: int, topics: tuple, timeout: float = 60.0) -> bool:
        """Spin until ``nodes`` nodes read /tf_static and ``topics`` have that many subscribers between them.

        Then spin one more second, so the latched camera pose reaches the nodes before the first frame
        (matching and the delivery of a transient-local sample are separate steps of DDS discovery).
        """
        matched = spin_until(executor, lambda: self.tf_static.get_subscription_count() >= nodes and sum(
            self.node.count_subscribers(topic) for topic in topics) >= nodes, timeout)
        spin_until(executor, lambda: False, 1.0)
        return matched

    def publish(self, depth_data: Optional[bytes] = None, stamp_s: Optional[float] = None,
                depth_offset_s: float = 0.0):
        """Publish the frame once, stamped ``stamp_s`` (seconds; default now), depth ``depth_offset_s`` later.

        Returns the stamp. ``depth_data`` replaces the compressed depth bytes.
        """
        now = self.node.get_clock().now().nanoseconds * 1e-9
        stamp = cv.seconds_to_stamp(now if stamp_s is None else stamp_s)
        depth_stamp = cv.seconds_to_stamp(cv.stamp_to_seconds(stamp) + depth_offset_s) if depth_offset_s else stamp
        frame_id = self.frame.frame_id
        self.info.publish(cv.intrinsics_to_camera_info(self.frame.intrinsics, frame_id, stamp))
        if self.compressed:
            if self.frame.color is not None:
                self.color.publish(compressed_color(self.frame.color, 'jpeg', frame_id, stamp))
            depth = compressed_depth(self.raw_depth * 1e-3, '16UC1', frame_id, depth_stamp)
            if depth_data is not None:
                depth.data = depth_data
            self.depth.publish(depth)
            return stamp
        if self.frame.color is not None:
            self.color.publish(cv.numpy_to_image(self.frame.color, 'rgb8', frame_id, stamp))
        self.depth.publish(cv.numpy_to_image(self.raw_depth, '16UC1', frame_id, depth_stamp))
        return stamp


def milk_frame(shared_data: Path):
    """The real Kinect milk frame as the nodes receive it (depth through 16UC1 mm), camera pose from TF.

    ``camera_to_fixed`` puts the fixed frame 'odom' z up along the floor normal the core finds,
    1 m under the camera, as the node's floor prior will see it through TF.
    """
    frame = load_organized_pcd(shared_data / 'pcl_kinect/milk_cartoon_all_small_clorox.pcd')
    raw = np.round(np.nan_to_num(frame.depth) * 1000).astype(np.uint16)
    frame.depth = cv.image_to_depth(cv.numpy_to_image(raw, '16UC1'))
    plane = segment_scene(frame, MILK_SETTINGS.segmentation).plane
    up = plane[:3] / np.linalg.norm(plane[:3])
    x_axis = np.cross([0.0, 1.0, 0.0], up)
    x_axis /= np.linalg.norm(x_axis)
    camera_to_fixed = np.eye(4)
    camera_to_fixed[:3, :3] = np.stack([x_axis, np.cross(up, x_axis), up])
    camera_to_fixed[2, 3] = 1.0
    frame.camera_to_fixed = camera_to_fixed
    return frame


def _stamp_ns(msg):
    """A message's header stamp in ns (a MarkerArray's: its first marker's)."""
    header = msg.header if hasattr(msg, 'header') else msg.markers[0].header
    return header.stamp.sec * 10**9 + header.stamp.nanosec


class Recorder:
    """A node that keeps every message of the given topics ({topic: [msgs]})."""

    def __init__(self, context, topics, name='recorder'):
        self.node = Node(name, context=context)
        self.got = {topic: [] for topic in topics}
        for topic, msg_type in topics.items():
            self.node.create_subscription(msg_type, topic, self.got[topic].append, 10)

    def latest_matching(self, *topics):
        """The newest messages of ``topics`` that share one header stamp (None when there is none).

        Stamps agree to 1 us: MarkerArrays carry the stamp through float seconds (a few 100 ns off).
        """
        for first in reversed(self.got[topics[0]]):
            stamp = _stamp_ns(first)
            found = [next((m for m in self.got[t] if abs(_stamp_ns(m) - stamp) < 1000), None) for t in topics[1:]]
            if all(m is not None for m in found):
                return [first, *found]
        return None
