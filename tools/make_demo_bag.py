"""Build robot_vision/data/demo_rgbd.mcap from the real 3-frame PCL Kinect sequence in ../shared/data.

Topics (rosbag2 mcap, zstd-compressed chunks, ROS 2 Jazzy types):

* ``/camera/color/image_raw`` sensor_msgs/Image rgb8 640x480
* ``/camera/aligned_depth_to_color/image_raw`` sensor_msgs/Image 16UC1 millimetres (0 invalid)
* ``/camera/color/camera_info`` sensor_msgs/CameraInfo (fx = fy = 525, cx = 320, cy = 240)
* ``/tf_static`` tf2_msgs/TFMessage: odom -> base_link (identity), base_link -> camera_link (the
  camera mount, fitted so that base_link's z is the floor normal and its origin lies on the floor
  under the camera), camera_link -> kinect_rgb_optical_frame (the usual optical rotation)

The frames keep their capture stamps (December 2012, about 0.1 s apart); log times equal the
header stamps. Run: ``.venv/bin/python tools/make_demo_bag.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robot_vision.camera import deproject  # noqa: E402
from robot_vision.datasets import BUNDLED_DATA, load_pcl_sequence  # noqa: E402
from robot_vision.geometry import invert_transform, quaternion_from_matrix  # noqa: E402
from robot_vision.perception3d.plane import ransac_plane  # noqa: E402
from robot_vision.replay.bag import BagSink, storage_file  # noqa: E402

COLOR_TOPIC = '/camera/color/image_raw'
DEPTH_TOPIC = '/camera/aligned_depth_to_color/image_raw'
INFO_TOPIC = '/camera/color/camera_info'

#: camera_link (x forward, y left, z up) -> optical frame (x right, y down, z forward).
CAMERA_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                                [0.0, 0.0, 0.0, 1.0]])


def camera_mount(frame) -> np.ndarray:
    """base_link <- optical transform from the floor plane of ``frame`` (base z = floor normal)."""
    cloud = deproject(frame.depth, frame.intrinsics).reshape(-1, 3)
    points = cloud[np.isfinite(cloud[:, 2])][::25]
    plane, inliers = ransac_plane(points, 0.01, iterations=300, up=(0.0, -1.0, 0.0), max_angle_deg=60.0,
                                  rng=np.random.default_rng(0))
    if plane is None:
        raise SystemExit('could not fit the floor plane of the first frame')
    normal, d = plane[:3], plane[3]  # unit normal towards the camera, so d > 0 is the camera height
    forward = np.array([0.0, 0.0, 1.0]) - normal[2] * normal
    x_b = forward / np.linalg.norm(forward)
    y_b = np.cross(normal, x_b)
    optical_from_base = np.eye(4)
    optical_from_base[:3, :3] = np.stack([x_b, y_b, normal], axis=1)
    optical_from_base[:3, 3] = -d * normal
    print(f'floor plane: {inliers.mean() * 100:.0f}% inliers, camera height {d:.3f} m, '
          f'tilt {np.degrees(np.arccos(abs(normal[1]))):.1f} deg from straight down-the-y')
    return invert_transform(optical_from_base)


def main() -> int:
    """Write the bag; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=str(BUNDLED_DATA / 'demo_rgbd.mcap'), help='output .mcap file')
    args = parser.parse_args()
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import TransformStamped
    from rclpy.serialization import serialize_message
    from tf2_msgs.msg import TFMessage

    from robot_vision.ros.conversions import intrinsics_to_camera_info, make_header, numpy_to_image

    frames = load_pcl_sequence()
    optical = frames[0].frame_id
    base_from_optical = camera_mount(frames[0])
    base_from_camera = base_from_optical @ invert_transform(CAMERA_FROM_OPTICAL)
    stamp0 = frames[0].stamp - 0.05

    def transform(parent: str, child: str, matrix: np.ndarray) -> TransformStamped:
        msg = TransformStamped(header=make_header(parent, stamp0), child_frame_id=child)
        q = quaternion_from_matrix(matrix[:3, :3])
        msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (
            float(v) for v in matrix[:3, 3])
        msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z, msg.transform.rotation.w = (
            float(v) for v in q)
        return msg

    tf_static = TFMessage(transforms=[transform('odom', 'base_link', np.eye(4)),
                                      transform('base_link', 'camera_link', base_from_camera),
                                      transform('camera_link', optical, CAMERA_FROM_OPTICAL)])
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        bag_dir = Path(tmp) / 'demo_rgbd'
        with BagSink(bag_dir, storage='mcap', compress=True) as sink:
            sink.add_topic('/tf_static', 'tf2_msgs/msg/TFMessage', latched=True)
            for topic, msgtype in ((INFO_TOPIC, 'sensor_msgs/msg/CameraInfo'), (COLOR_TOPIC, 'sensor_msgs/msg/Image'),
                                   (DEPTH_TOPIC, 'sensor_msgs/msg/Image')):
                sink.add_topic(topic, msgtype)
            sink.write('/tf_static', int(round(stamp0 * 1e9)), serialize_message(tf_static))
            for frame in frames:
                stamp = Time(sec=int(frame.stamp), nanosec=int(round((frame.stamp % 1) * 1e9)) % 1_000_000_000)
                log_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
                raw_depth = np.where(np.isfinite(frame.depth), np.round(frame.depth * 1000.0), 0).astype(np.uint16)
                info = intrinsics_to_camera_info(frame.intrinsics, frame.frame_id, stamp)
                sink.write(INFO_TOPIC, log_ns, serialize_message(info))
                sink.write(COLOR_TOPIC, log_ns, serialize_message(numpy_to_image(frame.color, 'rgb8',
                                                                                 frame.frame_id, stamp)))
                sink.write(DEPTH_TOPIC, log_ns, serialize_message(numpy_to_image(raw_depth, '16UC1',
                                                                                 frame.frame_id, stamp)))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(storage_file(bag_dir), out)
    print(f'wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(frames)} frames)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
