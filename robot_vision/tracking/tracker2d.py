"""Image-space multi-object tracker (no depth): box-centre Kalman filter, IoU assignment, same lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Tuple

import numpy as np

from robot_vision.errors import InputError
from robot_vision.tracking._core import TrackerBase, TrackerFacade
from robot_vision.geometry import box_iou
from robot_vision.tracking.settings import Tracker2DSettings
from robot_vision.types import ArrayBundle, Detections


@dataclass(frozen=True)
class Tracks2D(ArrayBundle):
    """Tracks in image space.

    ``track_id`` (N,) int64 unique, never reused; ``xyxy`` (N, 4) float32 boxes in pixels;
    ``velocity`` (N, 2) float64 box-centre velocity in px/s; ``covariance`` (N, 4, 4) float64
    over (centre x, centre y, vx, vy); ``class_id`` (N,) int32; ``confidence`` (N,) float32;
    ``state`` (N,) int8 (:class:`~robot_vision.types.TrackState`); ``hits`` (N,) int32;
    ``last_seen`` (N,) float64 stamp (s) of the last matched detection.
    """

    track_id: np.ndarray
    xyxy: np.ndarray
    velocity: np.ndarray
    covariance: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    state: np.ndarray
    hits: np.ndarray
    last_seen: np.ndarray

    _ARRAYS: ClassVar[Dict[str, Tuple[tuple, type]]] = {
        'track_id': ((), np.int64),
        'xyxy': ((4,), np.float32),
        'velocity': ((2,), np.float64),
        'covariance': ((4, 4), np.float64),
        'class_id': ((), np.int32),
        'confidence': ((), np.float32),
        'state': ((), np.int8),
        'hits': ((), np.int32),
        'last_seen': ((), np.float64),
    }

    def to_detections(self) -> Detections:
        """These tracks as ``Detections`` with ``tracker_id`` set (for drawing or publishing)."""
        return Detections(xyxy=self.xyxy, confidence=self.confidence, class_id=self.class_id,
                          tracker_id=self.track_id)


class Tracker2D(TrackerFacade):
    """Track 2D detections in image space when no depth is available.

    The state of a track is its box centre and centre velocity (constant-velocity Kalman filter,
    pixels and px/s); width and height are smoothed separately. A detection matches a track when
    the IoU of the detection with the track's predicted box is at least ``iou_threshold`` (and
    classes agree when ``class_consistent``); the assignment maximises the summed IoU (Hungarian).
    The lifecycle (tentative -> confirmed -> coasting -> deleted), stamp handling and id rules are
    the same code as :class:`~robot_vision.tracking.Tracker`.
    """

    _SETTINGS = Tracker2DSettings

    def update(self, detections: Detections, stamp: float) -> Tracks2D:
        """Fold in one image's detections (xyxy pixels) taken at ``stamp`` (s); return the tracks."""
        return self._core._update(detections, stamp)


class _Tracker2DCore(TrackerBase):
    """The image-space specialisation of the shared tracker machinery."""

    _DIM = 2
    _ORDER = 1

    def __init__(self, settings: Tracker2DSettings) -> None:
        self._R = np.eye(2) * settings.measurement_noise ** 2
        super().__init__(settings)

    def _empty_extra(self) -> Dict[str, np.ndarray]:
        return {'wh': np.zeros((0, 2))}

    def _coerce(self, obs: Detections) -> Detections:
        if not isinstance(obs, Detections):
            raise InputError(f'detections: expected Detections, got {type(obs).__name__}')
        if not np.all(np.isfinite(obs.xyxy)):
            raise InputError('detections.xyxy: expected finite pixel boxes, got NaN or inf')
        return obs

    def _measurements(self, obs: Detections) -> np.ndarray:
        xyxy = obs.xyxy.astype(np.float64)
        return 0.5 * (xyxy[:, :2] + xyxy[:, 2:])

    def _boxes(self, x: np.ndarray) -> np.ndarray:
        half = 0.5 * self._cols['wh']
        return np.concatenate([x[:, :2] - half, x[:, :2] + half], axis=1)

    def _association(self, obs: Detections, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        iou = box_iou(self._boxes(self._cols['x']), obs.xyxy)
        valid = (iou >= self._settings.iou_threshold) & (iou > 0)
        return 1.0 - iou, valid

    def _update_attributes(self, rows: np.ndarray, obs: Detections, cols: np.ndarray) -> None:
        xyxy = obs.xyxy[cols].astype(np.float64)
        wh = xyxy[:, 2:] - xyxy[:, :2]
        self._cols['wh'][rows] += self._settings.size_smoothing * (wh - self._cols['wh'][rows])

    def _new_columns(self, obs: Detections, z: np.ndarray, idx: np.ndarray) -> Dict[str, np.ndarray]:
        s: Tracker2DSettings = self._settings
        x, P = self._initial_state(z[idx], (s.measurement_noise, s.initial_velocity_std))
        xyxy = obs.xyxy[idx].astype(np.float64)
        return {'x': x, 'P': P, 'wh': xyxy[:, 2:] - xyxy[:, :2]}

    def _output(self, mask: np.ndarray, x: np.ndarray, P: np.ndarray) -> Tracks2D:
        c = self._cols
        boxes = self._boxes(x)
        return Tracks2D(track_id=c['id'][mask], xyxy=boxes[mask], velocity=x[mask, 2:4],
                        covariance=P[mask], class_id=c['class_id'][mask], confidence=c['confidence'][mask],
                        state=c['state'][mask], hits=c['hits'][mask], last_seen=c['last_seen'][mask])


# The facade builds this core class; it is defined after the public class above.
Tracker2D._CORE = _Tracker2DCore
