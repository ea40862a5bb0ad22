"""Per-frame 3D object observations in the fixed frame, and their conversion from camera-frame Objects3D."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

import numpy as np

from robot_vision.errors import InputError
from robot_vision.geometry import yaw_from_matrix
from robot_vision.types import ArrayBundle, Detections, Objects3D


@dataclass(frozen=True)
class Observations(ArrayBundle):
    """Object observations of one frame, expressed in the FIXED frame (e.g. ``odom`` or ``map``).

    ``position`` (N, 3) float64 box centres in metres; ``size`` (N, 3) float64 box extents in
    metres along the object x, y, z axes; ``yaw`` (N,) float64 radians of the object x axis about
    the fixed frame's z; ``class_id`` (N,) int32 (-1: class-agnostic); ``confidence`` (N,)
    float32 in [0, 1]; ``xyxy`` optional (N, 4) float32 image boxes in pixels for the IoU cue
    (NaN rows: no box). Non-finite positions raise InputError.
    """

    position: np.ndarray
    size: Optional[np.ndarray] = None
    yaw: Optional[np.ndarray] = None
    class_id: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    xyxy: Optional[np.ndarray] = None

    _ARRAYS: ClassVar[Dict[str, Tuple[tuple, type]]] = {
        'position': ((3,), np.float64),
        'size': ((3,), np.float64),
        'yaw': ((), np.float64),
        'class_id': ((), np.int32),
        'confidence': ((), np.float32),
        'xyxy': ((4,), np.float32),
    }

    def __post_init__(self) -> None:
        """Validate shapes; fill missing size (zeros), yaw (0), class_id (-1) and confidence (1)."""
        super().__post_init__()
        n = len(self.position)
        defaults = {'size': np.zeros((n, 3)), 'yaw': np.zeros(n), 'class_id': np.full(n, -1, np.int32),
                    'confidence': np.ones(n, np.float32)}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not np.all(np.isfinite(self.position)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(self.position), axis=1))[0])
            raise InputError(f'Observations.position: expected finite metres, got {self.position[bad]} '
                             f'in row {bad}')
        if not (np.all(np.isfinite(self.size)) and np.all(np.isfinite(self.yaw))
                and np.all(np.isfinite(self.confidence))):
            raise InputError('Observations: expected finite size, yaw and confidence, got NaN or inf')


def _check_transform(camera_to_fixed: Optional[np.ndarray]) -> np.ndarray:
    if camera_to_fixed is None:
        return np.eye(4)
    transform = np.asarray(camera_to_fixed, np.float64)
    if transform.shape != (4, 4):
        raise InputError(f'camera_to_fixed: expected a (4, 4) transform, got shape {transform.shape}')
    if not np.all(np.isfinite(transform)):
        raise InputError('camera_to_fixed: expected finite values, got NaN or inf')
    rotation = transform[:3, :3]
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > 1e-4 or np.linalg.det(rotation) < 0:
        raise InputError(f'camera_to_fixed: expected a rigid transform (orthonormal rotation, det +1), '
                         f'got |R R^T - I| = {error:.3g}, det = {np.linalg.det(rotation):.3g}')
    return transform


def observations_from_objects(objects: Objects3D, camera_to_fixed: Optional[np.ndarray] = None,
                              detections: Optional[Detections] = None) -> Observations:
    """Convert camera-frame objects into fixed-frame observations for :class:`Tracker`.

    Args:
        objects: ``Objects3D`` whose ``pose`` (N, 4, 4) is the object frame in the camera frame.
        camera_to_fixed: (4, 4) rigid transform taking camera-frame points to the fixed frame
            (the ``camera -> odom/map`` transform at the frame's stamp); None means identity.
        detections: optional 2D detections the objects came from; boxes are taken through
            ``objects.detection_index`` (rows with index -1 get a NaN box) for the IoU cue.

    Returns:
        ``Observations`` with fixed-frame box centres, sizes, yaw about the fixed z axis,
        class ids and confidences.

    """
    if not isinstance(objects, Objects3D):
        raise InputError(f'objects: expected Objects3D, got {type(objects).__name__}')
    transform = _check_transform(camera_to_fixed)
    pose = transform[None] @ objects.pose if len(objects) else np.zeros((0, 4, 4))
    xyxy = None
    if detections is not None:
        index = objects.detection_index.astype(np.int64)
        if np.any(index >= len(detections)):
            raise InputError(f'objects.detection_index: expected indices < {len(detections)} '
                             f'(the number of detections), got max {int(index.max())}')
        xyxy = np.full((len(objects), 4), np.nan, np.float32)
        valid = index >= 0
        xyxy[valid] = detections.xyxy[index[valid]]
    return Observations(position=pose[:, :3, 3], size=objects.size.copy(),
                        yaw=yaw_from_matrix(pose[:, :3, :3]), class_id=objects.class_id.copy(),
                        confidence=objects.confidence.copy(), xyxy=xyxy)
