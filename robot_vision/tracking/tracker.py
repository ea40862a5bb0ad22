"""3D multi-object tracker in a fixed frame: Kalman filter, Mahalanobis gating, Hungarian assignment."""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from robot_vision.errors import InputError
from robot_vision.tracking import kalman
from robot_vision.tracking._core import TrackerBase, TrackerFacade
from robot_vision.geometry import box_iou
from robot_vision.tracking.observations import Observations
from robot_vision.tracking.settings import TrackerSettings
from robot_vision.types import Tracks


def _wrap(angle: np.ndarray, period: float) -> np.ndarray:
    """Wrap angles into [-period / 2, period / 2)."""
    return (angle + period / 2) % period - period / 2


class Tracker(TrackerFacade):
    """Track 3D objects observed in a fixed frame, with stable ids, velocities and covariances.

    Per frame, :meth:`update` predicts every track to the frame's stamp with a constant-velocity
    (optionally constant-acceleration) Kalman filter, gates observation-track pairs by the squared
    Mahalanobis distance of the position innovation (and a Euclidean cap and class consistency),
    solves the assignment with the Hungarian method (cost ``d^2 + log det S``, minus
    ``iou_weight * IoU`` when image boxes are given), updates matched tracks, and starts tentative
    tracks from the rest. Lifecycle::

        new obs --> TENTATIVE --(confirm_hits matches)--> CONFIRMED <--(matched)--+
                        |                                     |(missed)           |
                        | unseen > tentative_timeout          v                   |
                        +-----------> deleted             COASTING ---------------+
                                         ^                    | unseen > coast_timeout
                                         +--------------------+

    Coasting tracks stay matchable, so an object that re-appears after a short occlusion keeps
    its id. Ids are int64, start at 1 and are never reused (not even after :meth:`reset`).
    Stamps (seconds) drive the filter, so irregular frame intervals are handled; an update whose
    stamp is not after the last accepted one is rejected with a warning on the
    ``robot_vision.tracking`` logger, its reason stored in ``rejected_reason``, and no change.
    """

    _SETTINGS = TrackerSettings

    def update(self, observations: Observations, stamp: float) -> Tracks:
        """Fold in one frame of fixed-frame observations taken at ``stamp`` (s); return the tracks.

        Returns the confirmed and coasting tracks after the update (use :meth:`tracks` for the
        tentative ones too). Positions are metres and velocities m/s in the fixed frame;
        ``covariance`` (N, 6, 6) is over (position, velocity).
        """
        return self._core._update(observations, stamp)


class _Tracker3DCore(TrackerBase):
    """The 3D specialisation of the shared tracker machinery."""

    _DIM = 3

    def __init__(self, settings: TrackerSettings) -> None:
        self._ORDER = 2 if settings.constant_acceleration else 1
        self._R = np.eye(3) * settings.measurement_noise ** 2
        super().__init__(settings)

    def _empty_extra(self) -> Dict[str, np.ndarray]:
        return {'size': np.zeros((0, 3)), 'yaw': np.zeros(0), 'box': np.zeros((0, 4)),
                'moving': np.zeros(0, bool)}

    def _coerce(self, obs: Observations) -> Observations:
        if not isinstance(obs, Observations):
            raise InputError(f'observations: expected tracking.Observations (fixed frame), got '
                             f'{type(obs).__name__}; convert Objects3D with observations_from_objects()')
        return obs

    def _measurements(self, obs: Observations) -> np.ndarray:
        return obs.position

    def _association(self, obs: Observations, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        s: TrackerSettings = self._settings
        d2, logdet, diff = kalman.innovation_stats(self._cols['x'], self._cols['P'], self._R, z)
        dist2 = np.einsum('tni,tni->tn', diff, diff)
        valid = (d2 <= s.gate_chi2) & (dist2 <= s.max_match_distance ** 2)
        cost = d2 + logdet[:, None]
        if s.iou_weight > 0 and obs.xyxy is not None:
            cost = cost - s.iou_weight * box_iou(self._cols['box'], obs.xyxy)
        return cost, valid

    def _update_attributes(self, rows: np.ndarray, obs: Observations, cols: np.ndarray) -> None:
        s: TrackerSettings = self._settings
        c = self._cols
        c['size'][rows] += s.size_smoothing * (obs.size[cols] - c['size'][rows])
        step = _wrap(obs.yaw[cols] - c['yaw'][rows], s.yaw_period)
        c['yaw'][rows] = _wrap(c['yaw'][rows] + s.yaw_smoothing * step, 2 * np.pi)
        if obs.xyxy is not None:
            boxes = obs.xyxy[cols].astype(np.float64)
            has_box = np.all(np.isfinite(boxes), axis=1)
            c['box'][rows[has_box]] = boxes[has_box]

    def _new_columns(self, obs: Observations, z: np.ndarray, idx: np.ndarray) -> Dict[str, np.ndarray]:
        s: TrackerSettings = self._settings
        x, P = self._initial_state(z[idx], (s.measurement_noise, s.initial_velocity_std,
                                            s.initial_acceleration_std))
        box = (np.full((len(idx), 4), np.nan) if obs.xyxy is None
               else obs.xyxy[idx].astype(np.float64))
        return {'x': x, 'P': P, 'size': obs.size[idx].copy(), 'yaw': _wrap(obs.yaw[idx], 2 * np.pi),
                'box': box, 'moving': np.zeros(len(idx), bool)}

    def _after_update(self) -> None:
        s: TrackerSettings = self._settings
        velocity = self._cols['x'][:, 3:6]
        speed = np.linalg.norm(velocity, axis=1)
        # Variance of the speed along the velocity direction: u^T P_vv u.
        unit = velocity / np.maximum(speed, 1e-9)[:, None]
        var_along = np.einsum('ti,tij,tj->t', unit, self._cols['P'][:, 3:6, 3:6], unit)
        significant = speed > s.moving_min_sigma * np.sqrt(np.maximum(var_along, 0.0))
        enter = (speed > s.moving_enter_speed) & significant
        self._cols['moving'] = np.where(self._cols['moving'], speed >= s.moving_leave_speed, enter)

    def _output(self, mask: np.ndarray, x: np.ndarray, P: np.ndarray) -> Tracks:
        c = self._cols
        return Tracks(track_id=c['id'][mask], position=x[mask, :3], velocity=x[mask, 3:6],
                      covariance=P[mask][:, :6, :6], size=c['size'][mask], yaw=c['yaw'][mask],
                      class_id=c['class_id'][mask], confidence=c['confidence'][mask],
                      state=c['state'][mask], moving=c['moving'][mask], hits=c['hits'][mask],
                      last_seen=c['last_seen'][mask])


# The facade builds this core class; it is defined after the public class above.
Tracker._CORE = _Tracker3DCore
