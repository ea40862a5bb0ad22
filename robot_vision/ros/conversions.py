"""Conversions between ROS 2 messages and robot_vision core types: the only module that knows message types.

Every function is pure (no node, no graph). Malformed messages raise
:class:`~robot_vision.errors.InputError` naming the field, the expected and the actual value.
Image decoding matches cv_bridge's ``imgmsg_to_cv2(msg, 'passthrough')`` (channel order kept),
with :func:`image_to_rgb` and :func:`image_to_depth` giving the core's RGB and metre formats.
"""

from __future__ import annotations

import array as pyarray
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped, Quaternion, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)
from visualization_msgs.msg import Marker, MarkerArray

from robot_vision import compressed_images
from robot_vision.camera import DEFAULT_DEPTH_SCALE, decode_depth
from robot_vision.errors import InputError
from robot_vision.geometry import matrix_from_quaternion, quaternion_from_matrix
from robot_vision.types import CameraIntrinsics, Detections, Grasps, Objects3D, Tracks

# encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: Dict[str, Tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3), 'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4), 'bgra8': (np.dtype(np.uint8), 4),
    'mono8': (np.dtype(np.uint8), 1), '8UC1': (np.dtype(np.uint8), 1),
    'mono16': (np.dtype(np.uint16), 1), '16UC1': (np.dtype(np.uint16), 1),
    '32FC1': (np.dtype(np.float32), 1),
}

_TO_RGB = {'rgb8': None, 'bgr8': [2, 1, 0], 'rgba8': [0, 1, 2], 'bgra8': [2, 1, 0]}


# ----------------------------------------------------------------------------- time and headers
def stamp_to_seconds(stamp: Time) -> float:
    """Convert a builtin_interfaces/Time to float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Convert float seconds to builtin_interfaces/Time (nanoseconds rounded)."""
    total = int(round(seconds * 1e9))
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


def make_header(frame_id: str, stamp: float | Time) -> Header:
    """Build a std_msgs/Header from a frame id and a stamp (seconds or Time)."""
    return Header(frame_id=frame_id, stamp=stamp if isinstance(stamp, Time) else seconds_to_stamp(stamp))


# ----------------------------------------------------------------------------- images
def byte_array(values: np.ndarray) -> pyarray.array:
    """A contiguous array's bytes as the array.array('B') that message ``uint8[]`` fields hold (one copy)."""
    out = pyarray.array('B')
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return out


def image_to_numpy(msg: Image) -> np.ndarray:
    """Decode a sensor_msgs/Image into an array in the message's own encoding (cv_bridge 'passthrough').

    Returns (H, W) for single-channel encodings and (H, W, C) otherwise; honours ``step`` row
    padding and ``is_bigendian``. The result never aliases the message buffer.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise InputError(f'Image.encoding: expected one of {sorted(IMAGE_ENCODINGS)}, got {msg.encoding!r}')
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    height, width = int(msg.height), int(msg.width)
    if height <= 0 or width <= 0:
        raise InputError(f'Image.height/width: expected a non-empty image, got {width}x{height}')
    row_bytes = width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise InputError(f'Image.step: expected at least {row_bytes} bytes per row for {width} px of '
                         f'{msg.encoding}, got {msg.step}')
    data = msg.data
    expected = msg.step * height
    if len(data) < expected:
        raise InputError(f'Image.data: expected {expected} bytes (step {msg.step} x height {height}), '
                         f'got {len(data)}')
    buffer = np.frombuffer(memoryview(data), dtype=np.uint8, count=expected).reshape(height, msg.step)
    rows = buffer[:, :row_bytes]
    array = rows.copy().view(dtype.newbyteorder('>' if msg.is_bigendian else '<'))
    if msg.is_bigendian and dtype.itemsize > 1:
        array = array.astype(dtype)  # to native byte order
    return array.reshape(height, width, channels) if channels > 1 else array.reshape(height, width)


def numpy_to_image(array: np.ndarray, encoding: str, frame_id: str = '',
                   stamp: float | Time = 0.0) -> Image:
    """Encode an array as a sensor_msgs/Image with a tightly packed little-endian buffer."""
    if encoding not in IMAGE_ENCODINGS:
        raise InputError(f'encoding: expected one of {sorted(IMAGE_ENCODINGS)}, got {encoding!r}')
    dtype, channels = IMAGE_ENCODINGS[encoding]
    array = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        shape = '(H, W)' if channels == 1 else f'(H, W, {channels})'
        raise InputError(f'{encoding} image: expected shape {shape}, got {array.shape}')
    if array.dtype != dtype:
        raise InputError(f'{encoding} image: expected dtype {dtype}, got {array.dtype}')
    array = np.ascontiguousarray(array, dtype=dtype.newbyteorder('<'))
    msg = Image(header=make_header(frame_id, stamp), height=array.shape[0], width=array.shape[1],
                encoding=encoding, is_bigendian=0, step=array.shape[1] * channels * dtype.itemsize)
    msg.data = byte_array(array)
    return msg


def image_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Decode a colour (rgb8/bgr8/rgba8/bgra8) or mono8 Image to (H, W, 3) uint8 RGB.

    A CompressedImage (``compressed`` transport, JPEG/PNG) is decoded as compressed_image_transport
    does (see :mod:`robot_vision.compressed_images`).
    """
    if isinstance(msg, CompressedImage):
        return compressed_images.decode_color(msg.format, msg.data)
    array = image_to_numpy(msg)
    if msg.encoding in ('mono8', '8UC1'):
        return np.repeat(array[:, :, None], 3, axis=2)
    if msg.encoding not in _TO_RGB:
        raise InputError(f'colour image encoding: expected rgb8, bgr8, rgba8, bgra8 or mono8, '
                         f'got {msg.encoding!r}')
    order = _TO_RGB[msg.encoding]
    return array if order is None else np.ascontiguousarray(array[:, :, order])


def image_to_depth(msg: Image | CompressedImage, scale: Optional[float] = None) -> np.ndarray:
    """Decode a depth Image (16UC1/mono16 millimetres or 32FC1 metres) to float32 metres, NaN invalid.

    A CompressedImage is decoded as compressed_depth_image_transport writes it (``compressedDepth``:
    PNG 16UC1, or quantised inverse depth for 32FC1) or as a 16-bit PNG of the ``compressed``
    transport (see :mod:`robot_vision.compressed_images`). ``scale`` overrides the metres-per-unit
    of the encoding (e.g. 1e-4 for YCB-style depth).
    """
    if isinstance(msg, CompressedImage):
        raw, encoding = compressed_images.decode_depth(msg.format, msg.data)
        return decode_depth(raw, scale=scale, encoding=encoding)
    if msg.encoding not in DEFAULT_DEPTH_SCALE:
        raise InputError(f'depth image encoding: expected one of {sorted(DEFAULT_DEPTH_SCALE)}, '
                         f'got {msg.encoding!r}')
    return decode_depth(image_to_numpy(msg), scale=scale, encoding=msg.encoding)


# ----------------------------------------------------------------------------- camera info
def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """Convert a CameraInfo to the intrinsics of the published image, applying ROI then binning.

    Uses the projection matrix ``P`` when set (rectified images), else ``K``.
    """
    k = np.asarray(msg.k, dtype=np.float64)
    p = np.asarray(msg.p, dtype=np.float64)
    if k.shape != (9,) or p.shape != (12,):
        raise InputError(f'CameraInfo.k/p: expected 9 and 12 values, got {k.shape[0]} and {p.shape[0]}')
    if p[0] > 0 and p[5] > 0:
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
    else:
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if not (fx > 0 and fy > 0):
        raise InputError(f'CameraInfo.k: expected positive focal lengths, got fx={fx}, fy={fy} '
                         f'(is the camera calibrated?)')
    width, height = int(msg.width), int(msg.height)
    roi = msg.roi
    if roi.width > 0 and roi.height > 0:
        cx, cy = cx - roi.x_offset, cy - roi.y_offset
        width, height = int(roi.width), int(roi.height)
    bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
    intrinsics = CameraIntrinsics(width, height, fx, fy, cx, cy, msg.distortion_model or 'plumb_bob',
                                  tuple(msg.d))
    if bx > 1 or by > 1:
        intrinsics = CameraIntrinsics(width // bx, height // by, fx / bx, fy / by, cx / bx, cy / by,
                                      intrinsics.distortion_model, intrinsics.distortion)
    return intrinsics


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, frame_id: str = '',
                              stamp: float | Time = 0.0) -> CameraInfo:
    """Build a CameraInfo (K, R = I, P = [K | 0], D) for the given intrinsics."""
    k = intrinsics.K
    msg = CameraInfo(header=make_header(frame_id, stamp), width=intrinsics.width, height=intrinsics.height,
                     distortion_model=intrinsics.distortion_model)
    msg.d = list(intrinsics.distortion)
    msg.k = k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


# ----------------------------------------------------------------------------- point clouds
_FIELD_DTYPES = {PointField.INT8: 'i1', PointField.UINT8: 'u1', PointField.INT16: 'i2',
                 PointField.UINT16: 'u2', PointField.INT32: 'i4', PointField.UINT32: 'u4',
                 PointField.FLOAT32: 'f4', PointField.FLOAT64: 'f8'}


def points_to_cloud(points: np.ndarray, frame_id: str = '', stamp: float | Time = 0.0,
                    colors: Optional[np.ndarray] = None) -> PointCloud2:
    """Build an unorganized PointCloud2 from (N, 3) metres and optional (N, 3) uint8 RGB colours.

    Colours are packed into a float32 ``rgb`` field (the PCL/RViz convention).
    """
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f'points: expected shape (N, 3), got {points.shape}')
    names = ['x', 'y', 'z'] + (['rgb'] if colors is not None else [])
    packed = np.empty((len(points), 4 * len(names)), np.uint8)  # the little-endian bytes of each point
    packed[:, :12] = np.ascontiguousarray(points, '<f4').view(np.uint8).reshape(-1, 12)
    if colors is not None:
        colors = np.asarray(colors, np.uint8)
        if colors.shape != points.shape:
            raise InputError(f'colors: expected shape {points.shape}, got {colors.shape}')
        packed[:, 12:15] = colors[:, ::-1]  # (r << 16) | (g << 8) | b as a little-endian uint32: b, g, r, 0
        packed[:, 15] = 0
    msg = PointCloud2(header=make_header(frame_id, stamp), height=1, width=len(points), is_bigendian=False,
                      point_step=4 * len(names), row_step=4 * len(names) * len(points),
                      is_dense=bool(np.isfinite(points).all()))
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate(names)]
    msg.data = byte_array(packed)
    return msg


def cloud_to_points(msg: PointCloud2, with_colors: bool = False,
                    skip_nans: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read x, y, z (and packed rgb/rgba) from a PointCloud2.

    Returns ((N, 3) float32 metres, (N, 3) uint8 RGB or None). Organized clouds are flattened in
    row order; with ``skip_nans`` points with a non-finite coordinate are dropped.
    """
    fields = {f.name: f for f in msg.fields}
    for name in ('x', 'y', 'z'):
        if name not in fields:
            raise InputError(f'PointCloud2.fields: expected a field {name!r}, got {sorted(fields)}')
    n = int(msg.width) * int(msg.height)
    if msg.row_step < msg.width * msg.point_step or len(msg.data) < msg.row_step * msg.height:
        raise InputError(f'PointCloud2.data: expected {msg.row_step * msg.height} bytes '
                         f'(row_step {msg.row_step} x height {msg.height}), got {len(msg.data)}')
    order = '>' if msg.is_bigendian else '<'
    color_field = fields.get('rgb') or fields.get('rgba')
    names = ['x', 'y', 'z'] + (['rgb'] if with_colors and color_field is not None else [])
    formats, offsets = [], []
    for name in names:
        field = color_field if name == 'rgb' else fields[name]
        if field.datatype not in _FIELD_DTYPES:
            raise InputError(f'PointCloud2 field {field.name!r}: unknown datatype {field.datatype}')
        formats.append(order + ('u4' if name == 'rgb' else _FIELD_DTYPES[field.datatype]))
        offsets.append(field.offset)
    dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': msg.point_step})
    raw = np.frombuffer(memoryview(msg.data), np.uint8, count=msg.row_step * msg.height)
    raw = raw.reshape(msg.height, msg.row_step)[:, :msg.width * msg.point_step]
    records = np.ascontiguousarray(raw).view(dtype).reshape(n)
    points = np.stack([records['x'], records['y'], records['z']], axis=-1).astype(np.float32)
    colors = None
    if 'rgb' in names:
        packed = records['rgb'].astype(np.uint32)
        colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)
    if skip_nans:
        keep = np.isfinite(points).all(axis=1)
        points = points[keep]
        colors = None if colors is None else colors[keep]
    return points, colors


# ----------------------------------------------------------------------------- poses
def matrix_to_pose(transform: np.ndarray) -> Pose:
    """Convert a 4x4 transform into a geometry_msgs/Pose."""
    return matrices_to_poses(np.asarray(transform, np.float64)[None])[0]


def matrices_to_poses(transforms: np.ndarray) -> List[Pose]:
    """Convert (N, 4, 4) transforms into N geometry_msgs/Pose (one batched quaternion conversion)."""
    transforms = np.asarray(transforms, np.float64).reshape(-1, 4, 4)
    rows = np.concatenate([transforms[:, :3, 3], quaternion_from_matrix(transforms[:, :3, :3])], 1).tolist()
    return [Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
            for x, y, z, qx, qy, qz, qw in rows]


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """Convert a geometry_msgs/Pose into a 4x4 transform (InputError for a zero quaternion)."""
    o = pose.orientation
    transform = np.eye(4)
    transform[:3, :3] = matrix_from_quaternion([o.x, o.y, o.z, o.w])
    transform[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return transform


def grasps_to_pose_array(grasps: Grasps, frame_id: str, stamp: float | Time) -> PoseArray:
    """Ranked grasps (best first, as given) as a geometry_msgs/PoseArray for MoveIt."""
    return PoseArray(header=make_header(frame_id, stamp), poses=matrices_to_poses(grasps.pose))


def grasps_to_detections(grasps: Grasps, frame_id: str, stamp: float | Time, object_ids: Sequence[str],
                         class_ids: Sequence[int]) -> Detection3DArray:
    """Ranked grasps with their scores as a vision_msgs/Detection3DArray, in the PoseArray's order (best first).

    One Detection3D per grasp: ``id`` is the grasped object's Detection3D id (``object_ids`` and
    ``class_ids`` are per object, indexed by ``grasps.object_index``), ``results[0].hypothesis`` its
    class id (numeric string) and the grasp's score (higher is better), ``results[0].pose.pose`` and
    ``bbox.center`` the grasp pose (gripper TCP), ``bbox.size.x`` the grasp width (m; y, z are 0).
    """
    header = make_header(frame_id, stamp)
    msg = Detection3DArray(header=header)
    rows = zip(matrices_to_poses(grasps.pose), np.asarray(grasps.object_index, np.int64).tolist(),
               np.asarray(grasps.score, np.float64).tolist(), np.asarray(grasps.width, np.float64).tolist())
    for pose, row, score, width in rows:
        known = 0 <= row < len(object_ids)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = _class_string(class_ids[row], None) if known else '-1'
        hyp.hypothesis.score = score
        hyp.pose.pose = pose
        bbox = BoundingBox3D(center=pose, size=Vector3(x=width, y=0.0, z=0.0))
        msg.detections.append(Detection3D(header=header, results=[hyp], bbox=bbox,
                                          id=str(object_ids[row]) if known else ''))
    return msg


def pose_stamped(transform: np.ndarray, frame_id: str, stamp: float | Time) -> PoseStamped:
    """A 4x4 transform as a geometry_msgs/PoseStamped."""
    return PoseStamped(header=make_header(frame_id, stamp), pose=matrix_to_pose(transform))


# ----------------------------------------------------------------------------- vision_msgs
def _class_string(class_id: int, names: Optional[Mapping[int, str]]) -> str:
    del names  # class ids travel as numeric strings; LabelInfo maps them to names
    return str(int(class_id))


def _parse_class(class_id: str, names: Optional[Mapping[int, str]]) -> int:
    text = class_id.strip()
    if text.lstrip('-').isdigit():
        return int(text)
    if names:
        for key, value in names.items():
            if value == text:
                return int(key)
    return -1


def detection_ids(detections: Detections) -> List[int]:
    """The numeric id of each detection: its tracker id when set (-1: none), else its row index + 1.

    See :mod:`robot_vision.tracking.ids` for what the ids mean with and without tracking.
    """
    if detections.tracker_id is not None:
        return [int(v) for v in detections.tracker_id]
    return list(range(1, len(detections) + 1))


def id_text(object_id: int) -> str:
    """A numeric object id as a vision_msgs ``id``: the number, or '' for an object without one (negative)."""
    return str(int(object_id)) if object_id >= 0 else ''


def detections_to_msg(detections: Detections, frame_id: str, stamp: float | Time,
                      ids: Optional[Sequence[str]] = None) -> Detection2DArray:
    """Convert Detections into vision_msgs/Detection2DArray.

    ``results[0].hypothesis.class_id`` is the numeric class id as a string (names come from
    LabelInfo); ``id`` is the tracker id when set ('' where it is -1: no track), else ``ids[i]``,
    else the row index + 1 (see :func:`detection_ids`).
    """
    header = make_header(frame_id, stamp)
    msg = Detection2DArray(header=header)
    numeric = detection_ids(detections)
    for i in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
        bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x, bbox.center.position.y = (x1 + x2) / 2, (y1 + y2) / 2
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = _class_string(detections.class_id[i], None)
        hyp.hypothesis.score = float(detections.confidence[i])
        det_id = ids[i] if ids is not None and detections.tracker_id is None else id_text(numeric[i])
        msg.detections.append(Detection2D(header=header, results=[hyp], bbox=bbox, id=det_id))
    return msg


def msg_to_detections(msg: Detection2DArray, names: Optional[Mapping[int, str]] = None) -> Detections:
    """Convert any vision_msgs/Detection2DArray (ours or another detector's) into Detections.

    The best-scoring hypothesis gives class and confidence; a class_id that is a name is looked
    up in ``names`` (id -> name), else -1. Detections without results get confidence 1, class -1.
    """
    n = len(msg.detections)
    xyxy = np.zeros((n, 4), np.float32)
    conf = np.ones(n, np.float32)
    cls = np.full(n, -1, np.int32)
    for i, det in enumerate(msg.detections):
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        if not (np.isfinite([cx, cy, w, h]).all() and w >= 0 and h >= 0):
            raise InputError(f'Detection2DArray.detections[{i}].bbox: expected finite centre and '
                             f'non-negative size, got centre ({cx}, {cy}) size ({w}, {h})')
        xyxy[i] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        if det.results:
            best = max(det.results, key=lambda r: r.hypothesis.score)
            conf[i] = best.hypothesis.score
            cls[i] = _parse_class(best.hypothesis.class_id, names)
    return Detections(xyxy=xyxy, confidence=conf, class_id=cls)


def _box3d(pose: Pose, size: Sequence[float]) -> BoundingBox3D:
    return BoundingBox3D(center=pose, size=Vector3(x=size[0], y=size[1], z=size[2]))


def objects_to_msg(objects: Objects3D, frame_id: str, stamp: float | Time,
                   ids: Optional[Sequence[str]] = None) -> Detection3DArray:
    """Convert Objects3D into vision_msgs/Detection3DArray (pose also in results[0].pose)."""
    header = make_header(frame_id, stamp)
    msg = Detection3DArray(header=header)
    poses = matrices_to_poses(objects.pose)
    sizes = np.asarray(objects.size, np.float64).reshape(-1, 3).tolist()
    scores = np.asarray(objects.confidence, np.float64).tolist()
    for i in range(len(objects)):
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = _class_string(objects.class_id[i], None)
        hyp.hypothesis.score = scores[i]
        hyp.pose.pose = poses[i]
        msg.detections.append(Detection3D(header=header, results=[hyp], bbox=_box3d(poses[i], sizes[i]),
                                          id=ids[i] if ids is not None else str(i)))
    return msg


def msg_to_objects(msg: Detection3DArray, names: Optional[Mapping[int, str]] = None) -> Objects3D:
    """Convert a vision_msgs/Detection3DArray into Objects3D (poses from bbox.center; no clouds)."""
    n = len(msg.detections)
    poses, sizes = np.zeros((n, 4, 4)), np.zeros((n, 3))
    conf, cls = np.ones(n, np.float32), np.full(n, -1, np.int32)
    for i, det in enumerate(msg.detections):
        poses[i] = pose_to_matrix(det.bbox.center)
        sizes[i] = [det.bbox.size.x, det.bbox.size.y, det.bbox.size.z]
        if det.results:
            best = max(det.results, key=lambda r: r.hypothesis.score)
            conf[i] = best.hypothesis.score
            cls[i] = _parse_class(best.hypothesis.class_id, names)
    return Objects3D(pose=poses, size=sizes, centroid=poses[:, :3, 3], confidence=conf, class_id=cls,
                     detection_index=np.arange(n, dtype=np.int32))


def tracks_to_msg(tracks: Tracks, frame_id: str, stamp: float | Time) -> Detection3DArray:
    """Convert Tracks into a Detection3DArray in the fixed frame; ``id`` is the track id.

    The pose covariance holds the position covariance (row-major 6x6, x y z roll pitch yaw).
    """
    header = make_header(frame_id, stamp)
    msg = Detection3DArray(header=header)
    n = len(tracks)
    matrices = np.tile(np.eye(4), (n, 1, 1))
    yaw = np.asarray(tracks.yaw, np.float64).reshape(n)
    c, s = np.cos(yaw), np.sin(yaw)
    matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 0], matrices[:, 1, 1] = c, -s, s, c
    matrices[:, :3, 3] = np.asarray(tracks.position, np.float64).reshape(n, 3)
    poses = matrices_to_poses(matrices)
    sizes = np.asarray(tracks.size, np.float64).reshape(n, 3).tolist()
    scores = np.asarray(tracks.confidence, np.float64).tolist()
    cov = np.zeros((n, 6, 6))
    cov[:, :3, :3] = np.asarray(tracks.covariance, np.float64)[:, :3, :3]
    covariances = cov.reshape(n, 36).tolist()
    for i in range(n):
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = _class_string(tracks.class_id[i], None)
        hyp.hypothesis.score = scores[i]
        hyp.pose.pose = poses[i]
        hyp.pose.covariance = covariances[i]
        msg.detections.append(Detection3D(header=header, results=[hyp], bbox=_box3d(poses[i], sizes[i]),
                                          id=str(int(tracks.track_id[i]))))
    return msg


def label_info_msg(class_names: Mapping[int, str] | Sequence[str], frame_id: str = '',
                   threshold: float = 0.0) -> LabelInfo:
    """Build a vision_msgs/LabelInfo class map (publish it latched on ``label_info``)."""
    items = class_names.items() if isinstance(class_names, Mapping) else enumerate(class_names)
    msg = LabelInfo(header=make_header(frame_id, 0.0), threshold=float(threshold))
    for class_id, name in sorted(items):
        if not 0 <= int(class_id) <= 65535:
            raise InputError(f'LabelInfo class id: expected 0..65535 (uint16), got {class_id}')
        msg.class_map.append(VisionClass(class_id=int(class_id), class_name=str(name)))
    return msg


def label_info_to_names(msg: LabelInfo) -> Dict[int, str]:
    """Read a LabelInfo class map into {class id: name}."""
    return {int(c.class_id): c.class_name for c in msg.class_map}


# ----------------------------------------------------------------------------- markers
def _color(rgb: Sequence[float], alpha: float = 0.8) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


#: The colour (0..1 RGB) of objects without an id.
NO_ID_GREY = (0.6, 0.6, 0.6)


def palette(index: int) -> Tuple[float, float, float]:
    """A stable distinct colour (0..1 RGB) for an id; :data:`NO_ID_GREY` for a negative one (no id)."""
    if index < 0:
        return NO_ID_GREY
    hue = (index * 0.618033988749895) % 1.0
    import colorsys
    return colorsys.hsv_to_rgb(hue, 0.75, 0.95)


def _point(xyz: Sequence[float]) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _delete_all(header: Header) -> Marker:
    return Marker(header=header, action=Marker.DELETEALL)


def object_markers(objects: Objects3D, frame_id: str, stamp: float | Time, namespace: str = 'objects',
                   labels: Optional[Sequence[str]] = None, ids: Optional[Sequence[int]] = None) -> MarkerArray:
    """RViz markers: a DELETEALL, then per object a translucent CUBE (``namespace``) and a TEXT label (``_labels``).

    With ``ids`` (the objects' numeric Detection3D ids) each marker's id is its object's id and its
    colour :func:`palette` of it, so a tracked object keeps its markers' id and colour from frame to
    frame; objects without an id (negative) are grey, in the namespaces ``<namespace>_untracked`` and
    ``<namespace>_untracked_labels`` with their row as marker id. Without ``ids`` the rows are the ids.
    """
    header = make_header(frame_id, stamp)
    markers = [_delete_all(header)]
    poses = matrices_to_poses(objects.pose)
    scales = np.maximum(np.asarray(objects.size, np.float64).reshape(-1, 3), 1e-3).tolist()
    for i in range(len(objects)):
        object_id = i if ids is None else int(ids[i])
        ns, marker_id = (namespace, object_id) if object_id >= 0 else (namespace + '_untracked', i)
        cube = Marker(header=header, ns=ns, id=marker_id, type=Marker.CUBE, action=Marker.ADD,
                      pose=poses[i], color=_color(palette(object_id), 0.5))
        cube.scale = Vector3(x=scales[i][0], y=scales[i][1], z=scales[i][2])
        text = Marker(header=header, ns=ns + '_labels', id=marker_id, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, color=_color((1, 1, 1), 1.0))
        position = poses[i].position
        text.pose.position = Point(x=position.x, y=position.y, z=position.z)
        text.pose.orientation.w = 1.0
        text.scale.z = 0.04
        text.text = labels[i] if labels is not None else f'{i}'
        markers += [cube, text]
    return MarkerArray(markers=markers)


def track_markers(tracks: Tracks, frame_id: str, stamp: float | Time,
                  namespace: str = 'tracks') -> MarkerArray:
    """RViz markers for tracks: DELETEALL, then a CUBE, a velocity ARROW and an id TEXT per track."""
    header = make_header(frame_id, stamp)
    markers = [_delete_all(header)]
    for i in range(len(tracks)):
        track_id = int(tracks.track_id[i])
        color = _color(palette(track_id), 0.6)
        pos = tracks.position[i]
        cube = Marker(header=header, ns=namespace, id=track_id, type=Marker.CUBE, action=Marker.ADD,
                      color=color)
        cube.pose.position = _point(pos)
        half = tracks.yaw[i] / 2
        cube.pose.orientation = Quaternion(x=0.0, y=0.0, z=float(np.sin(half)), w=float(np.cos(half)))
        cube.scale = Vector3(x=max(float(tracks.size[i][0]), 1e-3), y=max(float(tracks.size[i][1]), 1e-3),
                             z=max(float(tracks.size[i][2]), 1e-3))
        arrow = Marker(header=header, ns=namespace + '_velocity', id=track_id, type=Marker.ARROW,
                       action=Marker.ADD, color=_color((1.0, 0.2, 0.2), 1.0))
        arrow.points = [_point(pos), _point(pos + tracks.velocity[i])]
        arrow.scale = Vector3(x=0.01, y=0.02, z=0.02)
        text = Marker(header=header, ns=namespace + '_ids', id=track_id, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, color=_color((1, 1, 1), 1.0), text=f'#{track_id}')
        text.pose.position = _point(pos + [0.0, 0.0, tracks.size[i][2] / 2 + 0.05])
        text.pose.orientation.w = 1.0
        text.scale.z = 0.05
        markers += [cube, arrow, text]
    return MarkerArray(markers=markers)


def gripper_markers(outlines: List[np.ndarray], frame_id: str, stamp: float | Time,
                    namespace: str = 'grasps') -> MarkerArray:
    """RViz LINE_LIST markers, one per grasp, from gripper outline segments ((K, 2, 3) metres each)."""
    header = make_header(frame_id, stamp)
    markers = [_delete_all(header)]
    for i, segments in enumerate(outlines):
        marker = Marker(header=header, ns=namespace, id=i, type=Marker.LINE_LIST, action=Marker.ADD,
                        color=_color((0.1, 0.9, 0.2) if i == 0 else (0.9, 0.7, 0.1), 1.0 if i == 0 else 0.6))
        marker.pose.orientation.w = 1.0
        marker.scale.x = 0.004 if i == 0 else 0.002
        marker.points = [_point(p) for p in np.asarray(segments).reshape(-1, 3)]
        markers.append(marker)
    return MarkerArray(markers=markers)
