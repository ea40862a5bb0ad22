"""Temporal smoothing of 6-DoF object poses: position EMA + rotation slerp per id, reset on jumps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Hashable, Optional, Tuple

import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import matrix_from_quaternion, quaternion_from_matrix


@dataclass(frozen=True)
class PoseSmoothingSettings:
    """Settings of :class:`PoseSmoother`.

    ``position_alpha`` (0.5) and ``rotation_alpha`` (0.3): weight of a new measurement in the
    exponential moving average of the position and in the slerp of the rotation (1 = no
    smoothing). ``reset_distance`` (0.05 m) and ``reset_angle_deg`` (30 deg): a measurement
    further than this from the smoothed pose restarts the filter at the measurement.
    ``timeout`` (1.0 s): an id not updated for this long is forgotten (restarts on next update).
    """

    position_alpha: float = 0.5
    rotation_alpha: float = 0.3
    reset_distance: float = 0.05
    reset_angle_deg: float = 30.0
    timeout: float = 1.0

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        for name in ('position_alpha', 'rotation_alpha'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ConfigError(f'PoseSmoothingSettings.{name}: expected a number in (0, 1], got {value!r}')
        for name in ('reset_distance', 'reset_angle_deg', 'timeout'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f'PoseSmoothingSettings.{name}: expected a positive number, got {value!r}')


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (x, y, z, w), shortest path."""
    dot = float(q0 @ q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    return (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)


class PoseSmoother:
    """Smooth a stream of 4x4 poses per object id (e.g. a track id).

    ``update(key, pose, stamp)`` returns the smoothed (4, 4) pose: the position is an
    exponential moving average, the rotation a slerp towards the measurement. A jump larger
    than ``reset_distance`` / ``reset_angle_deg``, or a gap longer than ``timeout`` seconds,
    restarts that id at the measurement. Poses are in any fixed frame (all updates of an id
    must use the same frame).
    """

    def __init__(self, settings: PoseSmoothingSettings = PoseSmoothingSettings()) -> None:
        self.settings = settings
        self._state: Dict[Hashable, Tuple[np.ndarray, np.ndarray, float]] = {}

    def __len__(self) -> int:
        """Number of ids currently held."""
        return len(self._state)

    def reset(self, key: Optional[Hashable] = None) -> None:
        """Forget one id, or every id when ``key`` is None."""
        if key is None:
            self._state.clear()
        else:
            self._state.pop(key, None)

    def update(self, key: Hashable, pose: np.ndarray, stamp: float) -> np.ndarray:
        """Fold a measured (4, 4) pose of ``key`` at ``stamp`` seconds in; return the smoothed pose."""
        pose = np.asarray(pose, np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise InputError(f'pose: expected a finite (4, 4) transform, got shape {pose.shape}')
        s = self.settings
        position, quaternion = pose[:3, 3].copy(), quaternion_from_matrix(pose[:3, :3])
        previous = self._state.get(key)
        if previous is not None:
            old_position, old_quaternion, old_stamp = previous
            angle = 2.0 * np.arccos(np.clip(abs(float(old_quaternion @ quaternion)), 0.0, 1.0))
            jump = (np.linalg.norm(position - old_position) > s.reset_distance
                    or np.degrees(angle) > s.reset_angle_deg
                    or not 0 <= stamp - old_stamp <= s.timeout)
            if not jump:
                position = old_position + s.position_alpha * (position - old_position)
                quaternion = _slerp(old_quaternion, quaternion, s.rotation_alpha)
        self._state[key] = (position, quaternion, float(stamp))
        out = np.eye(4)
        out[:3, :3] = matrix_from_quaternion(quaternion)
        out[:3, 3] = position
        return out

    def prune(self, stamp: float) -> None:
        """Forget ids not updated within ``timeout`` seconds before ``stamp``."""
        stale = [k for k, (_, _, t) in self._state.items() if stamp - t > self.settings.timeout]
        for key in stale:
            del self._state[key]
