"""Helpers of the replay tests: write real RGB-D frames into rosbag2 files (mcap or sqlite3)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.serialization import serialize_message
from tf2_msgs.msg import TFMessage

from robot_vision.geometry import quaternion_from_matrix
from robot_vision.replay.bag import BagSink
from robot_vision.ros.compat import TransformBuffer
from robot_vision.ros.conversions import intrinsics_to_camera_info, make_header, numpy_to_image

COLOR = '/cam/color/image_raw'
DEPTH = '/cam/depth/image_raw'
INFO = '/cam/color/camera_info'

#: The Kinect's mount for the PCL sequence: 0.715 m above the floor, pitched 46 degrees down.
_PITCH = np.radians(46.0)
_LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # odom <- optical, looking level
_TILT = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(_PITCH), np.sin(_PITCH)], [0.0, -np.sin(_PITCH), np.cos(_PITCH)]])
MOUNT_TRANSLATION = [0.0, 0.0, 0.715]
MOUNT_QUATERNION = [float(v) for v in quaternion_from_matrix(_LEVEL @ _TILT)]


def camera_pose(frame_id: str) -> np.ndarray:
    """The odom <- optical transform as the ROS layer's TF buffer computes it from the /tf_static the bags carry."""
    buffer = TransformBuffer()
    buffer.set_transform('odom', frame_id, 999.0, MOUNT_TRANSLATION, MOUNT_QUATERNION, static=True)
    return buffer.lookup('odom', frame_id, 1000.0)


ODOM_FROM_OPTICAL = camera_pose('kinect_rgb_optical_frame')


def stamped_frames(frames, start: float = 1000.0, period: float = 0.25):
    """Copies of ``frames`` with exactly representable stamps (seconds) and the test camera mount."""
    return [dataclasses.replace(f, stamp=start + k * period, camera_to_fixed=camera_pose(f.frame_id))
            for k, f in enumerate(frames)]


def _tf(frame_id: str) -> TFMessage:
    msg = TransformStamped(header=make_header('odom', 999.0), child_frame_id=frame_id)
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = MOUNT_TRANSLATION
    q.x, q.y, q.z, q.w = MOUNT_QUATERNION
    return TFMessage(transforms=[msg])


def write_bag(path: Path, frames, storage: str = 'mcap', tf: bool = True,
              color_msg: Optional[Callable] = None, depth_msg: Optional[Callable] = None,
              stamps: Optional[List[float]] = None, info: bool = True,
              color_type: str = 'sensor_msgs/msg/Image', depth_type: str = 'sensor_msgs/msg/Image',
              color_topic: str = COLOR, depth_topic: str = DEPTH, info_after_images: bool = False) -> Path:
    """Write frames as colour rgb8 + depth 16UC1 mm + camera_info (+ /tf_static); returns the bag folder.

    ``color_msg(frame, stamp)`` / ``depth_msg(frame, stamp)`` may replace the default messages
    (of ``color_type`` / ``depth_type`` on ``color_topic`` / ``depth_topic``), ``stamps`` the
    header stamps (log times stay in frame order). ``info_after_images`` logs each CameraInfo just
    after its frame's images, as some drivers and recorders do.
    """
    with BagSink(path, storage=storage) as sink:
        sink.add_topic('/tf_static', 'tf2_msgs/msg/TFMessage', latched=True)
        sink.add_topic(INFO, 'sensor_msgs/msg/CameraInfo')
        sink.add_topic(color_topic, color_type)
        sink.add_topic(depth_topic, depth_type)
        if tf:
            sink.write('/tf_static', int(999e9), serialize_message(_tf(frames[0].frame_id)))
        for k, frame in enumerate(frames):
            stamp = frame.stamp if stamps is None else stamps[k]
            log_ns = int(round(frame.stamp * 1e9))
            if info:
                sink.write(INFO, log_ns + (2000 if info_after_images else 0), serialize_message(
                    intrinsics_to_camera_info(frame.intrinsics, frame.frame_id, stamp)))
            color = (color_msg(frame, stamp) if color_msg else
                     numpy_to_image(frame.color, 'rgb8', frame.frame_id, stamp))
            raw = np.where(np.isfinite(frame.depth), np.round(frame.depth * 1000.0), 0).astype(np.uint16)
            depth = depth_msg(frame, stamp) if depth_msg else numpy_to_image(raw, '16UC1', frame.frame_id, stamp)
            sink.write(color_topic, log_ns, serialize_message(color))
            sink.write(depth_topic, log_ns + 1000, serialize_message(depth))
    return path
