"""Core data types: camera intrinsics, RGB-D frames, and dataclasses of parallel numpy arrays.

Every result type (``Detections``, ``Objects3D``, ``Grasps``, ``Tracks``) follows the same
pattern, modelled on roboflow/supervision's ``Detections``:

* each array field is parallel along its first axis (length ``N``);
* shapes and dtypes are validated (and dtypes coerced) in ``__post_init__``, and a wrong
  shape raises :class:`~robot_vision.errors.InputError` naming the field, the expected and
  the actual shape;
* ``obj[bool_mask]``, ``obj[int_indices]`` and ``obj[slice]`` return a new object holding
  the selected rows of every field;
* ``Type.empty()`` builds a zero-length instance.

No type here knows anything about ROS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from robot_vision.errors import InputError

# A trailing-shape spec: ints are exact sizes, None means "any size".
_Spec = Tuple[Tuple[Optional[int], ...], Any]


def _check_array(name: str, value: Any, trailing: Tuple[Optional[int], ...], dtype: Any,
                 n: Optional[int]) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 + len(trailing):
        raise InputError(
            f'{name}: expected shape {_shape_text(n, trailing)}, got {tuple(array.shape)}')
    for axis, size in enumerate(trailing, start=1):
        if size is not None and array.shape[axis] != size:
            raise InputError(
                f'{name}: expected shape {_shape_text(n, trailing)}, got {tuple(array.shape)}')
    if n is not None and array.shape[0] != n:
        raise InputError(f'{name}: expected {n} rows (parallel to the other fields), '
                         f'got {array.shape[0]}')
    if array.dtype != dtype:
        if dtype is bool and array.dtype.kind not in 'bui':
            raise InputError(f'{name}: expected a boolean array, got dtype {array.dtype}')
        array = array.astype(dtype)
    return array


def _shape_text(n: Optional[int], trailing: Tuple[Optional[int], ...]) -> str:
    dims = ['N' if n is None else str(n)] + ['*' if s is None else str(s) for s in trailing]
    return '(' + ', '.join(dims) + ')'


class ArrayBundle:
    """Base class of dataclasses whose fields are parallel along the first axis.

    Subclasses list their array fields in ``_ARRAYS`` (name -> (trailing shape, dtype)) and
    their ragged per-row list fields (lists of arrays, one per row) in ``_LISTS``. The first
    entry of ``_ARRAYS`` is the required field that defines ``N``.
    """

    _ARRAYS: ClassVar[Dict[str, _Spec]] = {}
    _LISTS: ClassVar[Tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Validate shapes, coerce dtypes and check that all fields have the same length."""
        n: Optional[int] = None
        for name, (trailing, dtype) in self._ARRAYS.items():
            value = getattr(self, name)
            if value is None:
                continue
            array = _check_array(f'{type(self).__name__}.{name}', value, trailing, dtype, n)
            n = array.shape[0] if n is None else n
            object.__setattr__(self, name, array)
        for name in self._LISTS:
            value = getattr(self, name)
            if value is None:
                continue
            items = [np.asarray(v) for v in value]
            if n is not None and len(items) != n:
                raise InputError(f'{type(self).__name__}.{name}: expected {n} items '
                                 f'(parallel to the other fields), got {len(items)}')
            object.__setattr__(self, name, items)

    def __len__(self) -> int:
        """Return the number of rows N."""
        return len(getattr(self, next(iter(self._ARRAYS))))

    def __getitem__(self, index: Any):
        """Select rows with a boolean mask, integer indices, an int or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        index = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        if index.dtype == bool and index.shape != (len(self),):
            raise InputError(f'{type(self).__name__}: boolean index has shape {index.shape}, '
                             f'expected ({len(self)},)')
        rows = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64)
        changes: Dict[str, Any] = {}
        for name in self._ARRAYS:
            value = getattr(self, name)
            changes[name] = None if value is None else value[rows]
        for name in self._LISTS:
            value = getattr(self, name)
            changes[name] = None if value is None else [value[i] for i in rows]
        return dataclasses.replace(self, **changes)

    def __iter__(self):
        """Iterate over single-row views, one per row."""
        for i in range(len(self)):
            yield self[i]

    @classmethod
    def empty(cls, **kwargs: Any):
        """Return an instance with zero rows; ``kwargs`` may set the non-array fields."""
        values: Dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in cls._ARRAYS:
                trailing, dtype = cls._ARRAYS[f.name]
                if f.default is None and f.name not in kwargs:
                    values[f.name] = None
                else:
                    values[f.name] = np.zeros((0,) + tuple(s or 0 for s in trailing), dtype)
            elif f.name in cls._LISTS:
                values[f.name] = [] if f.default is not None else None
        values.update(kwargs)
        return cls(**values)

    @classmethod
    def concatenate(cls, items: Sequence[ArrayBundle]):
        """Stack several instances row-wise (optional fields must be set on all or none)."""
        items = list(items)
        if not items:
            return cls.empty()
        values: Dict[str, Any] = {}
        for name in cls._ARRAYS:
            parts = [getattr(it, name) for it in items]
            present = [p is not None for p in parts]
            if any(present) and not all(present):
                raise InputError(f'{cls.__name__}.concatenate: field {name} set on some items only')
            values[name] = np.concatenate(parts, axis=0) if all(present) else None
        for name in cls._LISTS:
            parts = [getattr(it, name) for it in items]
            values[name] = None if any(p is None for p in parts) else sum(parts, [])
        for f in dataclasses.fields(cls):
            if f.name not in values:
                values[f.name] = getattr(items[0], f.name)
        return cls(**values)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a camera image (pixels), with optional distortion coefficients.

    ``fx, fy`` are focal lengths and ``cx, cy`` the principal point, in pixels of an image of
    ``width x height``. ``distortion`` holds the coefficients of ``distortion_model`` (as in
    sensor_msgs/CameraInfo ``D``); the core treats images as already rectified.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = 'plumb_bob'
    distortion: Tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        """Validate sizes and focal lengths."""
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InputError(f'CameraIntrinsics: image size must be positive, '
                             f'got {self.width}x{self.height}')
        if not (np.isfinite(self.fx) and np.isfinite(self.fy) and self.fx > 0 and self.fy > 0):
            raise InputError(f'CameraIntrinsics: focal lengths must be positive and finite, '
                             f'got fx={self.fx}, fy={self.fy}')
        if not (np.isfinite(self.cx) and np.isfinite(self.cy)):
            raise InputError(f'CameraIntrinsics: principal point must be finite, '
                             f'got cx={self.cx}, cy={self.cy}')
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))
        for name in ('fx', 'fy', 'cx', 'cy'):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, 'distortion', tuple(float(d) for d in self.distortion))

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the standard name of the camera matrix
        """The 3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def shape(self) -> Tuple[int, int]:
        """Image shape as (height, width)."""
        return (self.height, self.width)

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int, **kwargs: Any):  # noqa: N803
        """Build from a 3x3 camera matrix."""
        K = np.asarray(K, dtype=float).reshape(3, 3)  # noqa: N806
        return cls(width, height, K[0, 0], K[1, 1], K[0, 2], K[1, 2], **kwargs)

    def scaled(self, sx: float, sy: Optional[float] = None) -> CameraIntrinsics:
        """Return the intrinsics of the image resized by ``sx`` (and ``sy``), e.g. 0.5 for 2x binning.

        Pixel-centre convention: a pixel's centre u maps to (u + 0.5) * s - 0.5.
        """
        sy = sx if sy is None else sy
        return dataclasses.replace(
            self, width=int(round(self.width * sx)), height=int(round(self.height * sy)),
            fx=self.fx * sx, fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5)

    def check_image(self, shape: Sequence[int], what: str = 'image') -> None:
        """Raise InputError when an image of ``shape`` (H, W, ...) does not match these intrinsics."""
        if tuple(shape[:2]) != (self.height, self.width):
            raise InputError(f'{what} is {shape[1]}x{shape[0]} (WxH) but the camera intrinsics '
                             f'are for {self.width}x{self.height}')


@dataclass
class RGBDFrame:
    """One synchronised RGB-D observation.

    ``color`` is (H, W, 3) uint8 in RGB order or None; ``depth`` is (H, W) float32 in metres
    with NaN for invalid pixels, or None; ``stamp`` is seconds; ``frame_id`` names the optical
    frame of the camera (x right, y down, z forward). ``camera_to_fixed`` optionally holds the
    4x4 transform from the camera frame to a fixed frame (e.g. ``odom`` or ``map``).
    """

    intrinsics: CameraIntrinsics
    color: Optional[np.ndarray] = None
    depth: Optional[np.ndarray] = None
    stamp: float = 0.0
    frame_id: str = 'camera_color_optical_frame'
    camera_to_fixed: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        """Validate image shapes and dtypes against the intrinsics."""
        if self.color is None and self.depth is None:
            raise InputError('RGBDFrame: at least one of color and depth is required')
        if self.color is not None:
            color = np.asarray(self.color)
            if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
                raise InputError(f'RGBDFrame.color: expected (H, W, 3) uint8 RGB, '
                                 f'got {color.shape} {color.dtype}')
            self.intrinsics.check_image(color.shape, 'colour image')
            self.color = color
        if self.depth is not None:
            depth = np.asarray(self.depth)
            if depth.ndim != 2 or depth.dtype != np.float32:
                raise InputError(f'RGBDFrame.depth: expected (H, W) float32 metres, '
                                 f'got {depth.shape} {depth.dtype}')
            self.intrinsics.check_image(depth.shape, 'depth image')
            self.depth = depth
        if self.camera_to_fixed is not None:
            transform = np.asarray(self.camera_to_fixed, dtype=np.float64)
            if transform.shape != (4, 4):
                raise InputError(f'RGBDFrame.camera_to_fixed: expected (4, 4), '
                                 f'got {transform.shape}')
            self.camera_to_fixed = transform


@dataclass(frozen=True)
class Detections(ArrayBundle):
    """2D detections in image pixels.

    ``xyxy`` (N, 4) float32 boxes (x1, y1, x2, y2) in pixels of the original image;
    ``confidence`` (N,) float32 in [0, 1]; ``class_id`` (N,) int32 (-1: class-agnostic);
    ``mask`` optional (N, H, W) bool instance masks; ``tracker_id`` optional (N,) int64.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    mask: Optional[np.ndarray] = None
    tracker_id: Optional[np.ndarray] = None

    _ARRAYS: ClassVar[Dict[str, _Spec]] = {
        'xyxy': ((4,), np.float32),
        'confidence': ((), np.float32),
        'class_id': ((), np.int32),
        'mask': ((None, None), bool),
        'tracker_id': ((), np.int64),
    }

    @property
    def area(self) -> np.ndarray:
        """Box areas in square pixels, (N,) float32."""
        return ((self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1]))


@dataclass(frozen=True)
class Objects3D(ArrayBundle):
    """Object instances in 3D, in the frame of the depth camera (or the frame they were moved to).

    ``pose`` (N, 4, 4) float64: the object frame in the camera frame. Object frame convention:
    origin at the centre of the oriented bounding box; z along the support-surface normal
    (pointing away from the surface, i.e. "up"); x along the longer horizontal extent; y = z
    cross x. ``size`` (N, 3) float64 is the box extent along the object x, y, z axes in metres.
    ``centroid`` (N, 3) float64 is the mean of the object's points. ``confidence`` (N,) float32
    is a quality figure in [0, 1]; ``class_id`` (N,) int32 (-1: class-agnostic).
    ``detection_index`` (N,) int32 links each object to the 2D detection it came from (-1: none).
    ``mask`` optional (N, H, W) bool image masks; ``points`` is a list of (M_i, 3) float32
    clouds; ``indices`` a list of (M_i,) int64 flat pixel indices (row * W + col) of those points.
    """

    pose: np.ndarray
    size: np.ndarray
    centroid: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    detection_index: np.ndarray
    mask: Optional[np.ndarray] = None
    points: List[np.ndarray] = field(default_factory=list)
    indices: List[np.ndarray] = field(default_factory=list)

    _ARRAYS: ClassVar[Dict[str, _Spec]] = {
        'pose': ((4, 4), np.float64),
        'size': ((3,), np.float64),
        'centroid': ((3,), np.float64),
        'confidence': ((), np.float32),
        'class_id': ((), np.int32),
        'detection_index': ((), np.int32),
        'mask': ((None, None), bool),
    }
    _LISTS: ClassVar[Tuple[str, ...]] = ('points', 'indices')

    def __post_init__(self) -> None:
        """Validate; ``points`` and ``indices`` may be left empty for objects with no clouds."""
        if len(self.points) == 0 and len(np.asarray(self.pose)) > 0:
            object.__setattr__(self, 'points', [np.zeros((0, 3), np.float32)] * len(self.pose))
        if len(self.indices) == 0 and len(np.asarray(self.pose)) > 0:
            object.__setattr__(self, 'indices', [np.zeros((0,), np.int64)] * len(self.pose))
        super().__post_init__()
        object.__setattr__(self, 'points',
                           [np.asarray(p, np.float32).reshape(-1, 3) for p in self.points])
        object.__setattr__(self, 'indices',
                           [np.asarray(i, np.int64).reshape(-1) for i in self.indices])

    @property
    def position(self) -> np.ndarray:
        """Box centres, (N, 3) float64."""
        return self.pose[:, :3, 3]


@dataclass(frozen=True)
class Grasps(ArrayBundle):
    """Parallel-jaw grasps.

    ``pose`` (N, 4, 4) float64: the grasp frame in the scene (camera) frame; see
    :mod:`robot_vision.grasping` for the axis convention. ``width`` (N,) float64 is the gripper
    opening in metres; ``score`` (N,) float32 the quality (higher is better);
    ``object_index`` (N,) int32 the row of the ``Objects3D`` the grasp is for.
    """

    pose: np.ndarray
    width: np.ndarray
    score: np.ndarray
    object_index: np.ndarray

    _ARRAYS: ClassVar[Dict[str, _Spec]] = {
        'pose': ((4, 4), np.float64),
        'width': ((), np.float64),
        'score': ((), np.float32),
        'object_index': ((), np.int32),
    }

    def best_first(self) -> Grasps:
        """The grasps ranked by descending score over all objects (ties keep their order)."""
        return self[np.argsort(-self.score, kind='stable')]


@dataclass(frozen=True)
class Tracks(ArrayBundle):
    """Tracked objects in a fixed frame.

    ``track_id`` (N,) int64 unique, never reused; ``position`` and ``velocity`` (N, 3) float64
    in metres and metres/second; ``covariance`` (N, 6, 6) float64 over (position, velocity);
    ``size`` (N, 3) float64; ``yaw`` (N,) float64 radians about the fixed frame's z;
    ``class_id`` (N,) int32; ``confidence`` (N,) float32; ``state`` (N,) int8 (see
    :class:`TrackState`); ``moving`` (N,) bool; ``hits`` (N,) int32 matched observations;
    ``last_seen`` (N,) float64 stamp in seconds of the last matched observation.
    """

    track_id: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    covariance: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    state: np.ndarray
    moving: np.ndarray
    hits: np.ndarray
    last_seen: np.ndarray

    _ARRAYS: ClassVar[Dict[str, _Spec]] = {
        'track_id': ((), np.int64),
        'position': ((3,), np.float64),
        'velocity': ((3,), np.float64),
        'covariance': ((6, 6), np.float64),
        'size': ((3,), np.float64),
        'yaw': ((), np.float64),
        'class_id': ((), np.int32),
        'confidence': ((), np.float32),
        'state': ((), np.int8),
        'moving': ((), bool),
        'hits': ((), np.int32),
        'last_seen': ((), np.float64),
    }

    @property
    def ids(self) -> List[str]:
        """Track ids as strings, the form used in vision_msgs ``Detection*.id``."""
        return [str(int(i)) for i in self.track_id]


class TrackState:
    """Values of ``Tracks.state``."""

    TENTATIVE = 0
    CONFIRMED = 1
    COASTING = 2
    DELETED = 3
