"""Parallel-jaw gripper model: finger, palm and clearance dimensions plus the grasp-to-TCP transform.

Grasp frame (the planner's frame, see docs/grasping.md for a sketch):

* origin: midway between the two fingertips;
* x: the closing axis, from one finger to the other (the gripper is symmetric, so +x and -x
  describe the same grasp);
* z: the approach direction, from the palm towards the object (fingers point along +z and
  end at z = 0);
* y = z cross x, along the finger width.

At a pre-grasp opening ``w`` the fingers occupy ``w/2 <= |x| <= w/2 + finger_thickness``,
``|y| <= finger_width/2``, ``-finger_depth <= z <= 0``; the palm occupies
``|x| <= palm_width/2``, ``|y| <= palm_thickness/2``,
``-finger_depth - palm_depth <= z <= -finger_depth``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

import numpy as np

from robot_vision.errors import ConfigError


def _identity() -> np.ndarray:
    return np.eye(4)


@dataclass(frozen=True, eq=False)
class GripperModel:
    """Dimensions of a parallel-jaw gripper in metres (defaults: roughly a Franka Emika Panda hand).

    ``max_opening`` / ``min_opening``: the widest / narrowest distance between the finger pads
    (m). ``finger_width``: pad extent along the grasp y axis (m). ``finger_thickness``: finger
    extent along the closing axis x (m). ``finger_depth``: finger length from the palm face to
    the tip along z (m). ``palm_width`` / ``palm_thickness`` / ``palm_depth``: the hand body's
    extent along x / y / z behind the fingers (m). ``palm_clearance``: free space the object must
    leave in front of the palm face (m). ``approach_clearance``: free corridor behind the palm
    along -z that the hand travels through on its straight-line approach (m).
    ``opening_margin``: extra opening on top of the object width at the pre-grasp (m); the
    pre-grasp opening is ``min(width + opening_margin, max_opening)``. ``tcp_offset``: 4x4
    transform from the planner grasp frame to the robot's TCP frame (the TCP pose expressed in
    the grasp frame); output poses are ``grasp_pose @ tcp_offset``. Instances compare and hash
    by value.
    """

    max_opening: float = 0.08
    min_opening: float = 0.0
    finger_width: float = 0.02
    finger_thickness: float = 0.01
    finger_depth: float = 0.045
    palm_width: float = 0.20
    palm_thickness: float = 0.06
    palm_depth: float = 0.06
    palm_clearance: float = 0.005
    approach_clearance: float = 0.04
    opening_margin: float = 0.016
    tcp_offset: np.ndarray = field(default_factory=_identity)

    def __post_init__(self) -> None:
        """Validate every dimension and the TCP transform."""
        positive = ('max_opening', 'finger_width', 'finger_thickness', 'finger_depth', 'palm_width',
                    'palm_thickness', 'palm_depth')
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value)
                    and value > 0):
                raise ConfigError(f'GripperModel.{name}: expected a positive number of metres, '
                                  f'got {value!r}')
            object.__setattr__(self, name, float(value))
        for name in ('min_opening', 'palm_clearance', 'approach_clearance', 'opening_margin'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value)
                    and value >= 0):
                raise ConfigError(f'GripperModel.{name}: expected a non-negative number of metres, '
                                  f'got {value!r}')
            object.__setattr__(self, name, float(value))
        if self.min_opening >= self.max_opening:
            raise ConfigError(f'GripperModel.min_opening: expected less than max_opening '
                              f'({self.max_opening}), got {self.min_opening}')
        if self.palm_clearance >= self.finger_depth:
            raise ConfigError(f'GripperModel.palm_clearance: expected less than finger_depth '
                              f'({self.finger_depth}), got {self.palm_clearance}')
        if self.palm_width < self.max_opening + 2 * self.finger_thickness:
            raise ConfigError(f'GripperModel.palm_width: expected at least max_opening + '
                              f'2 * finger_thickness = {self.max_opening + 2 * self.finger_thickness}, '
                              f'got {self.palm_width}')
        tcp = np.asarray(self.tcp_offset, dtype=np.float64)
        if tcp.shape != (4, 4) or not np.all(np.isfinite(tcp)):
            raise ConfigError(f'GripperModel.tcp_offset: expected a finite 4x4 transform, '
                              f'got shape {tcp.shape}')
        rot = tcp[:3, :3]
        if (not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or abs(np.linalg.det(rot) - 1) > 1e-6
                or not np.allclose(tcp[3], [0, 0, 0, 1])):
            raise ConfigError('GripperModel.tcp_offset: expected a rigid transform (orthonormal '
                              'rotation with det +1 and last row 0 0 0 1)')
        tcp.setflags(write=False)
        object.__setattr__(self, 'tcp_offset', tcp)

    def _key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.name != 'tcp_offset') + (
            self.tcp_offset.tobytes(),)

    def __eq__(self, other: object) -> bool:
        """Compare by value (``tcp_offset`` element-wise)."""
        return isinstance(other, GripperModel) and self._key() == other._key()

    def __hash__(self) -> int:
        """Hash by value, so equal models share the planner's cached lattices."""
        return hash(self._key())

    def pregrasp_opening(self, width: np.ndarray) -> np.ndarray:
        """Return the opening (m) the fingers have before closing on an object of ``width`` (m)."""
        return np.minimum(np.asarray(width, np.float64) + self.opening_margin, self.max_opening)

    def to_dict(self) -> Dict[str, Any]:
        """Return the settings as a plain dict (``tcp_offset`` as a nested list)."""
        values = dataclasses.asdict(self)
        values['tcp_offset'] = np.asarray(self.tcp_offset).tolist()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GripperModel:
        """Build from a dict (e.g. a YAML section); unknown keys raise ConfigError.

        ``tcp_offset`` may be a 4x4 nested list, or a dict with ``translation`` [x, y, z] (m) and
        ``rotation`` given as ``quaternion`` [x, y, z, w] or ``rpy`` [roll, pitch, yaw] (rad).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f'GripperModel: unknown keys {unknown}; expected some of {sorted(known)}')
        values = dict(values)
        if 'tcp_offset' in values:
            values['tcp_offset'] = _parse_transform(values['tcp_offset'])
        return cls(**values)


def _parse_transform(value: Any) -> np.ndarray:
    from robot_vision.geometry import make_transform, matrix_from_quaternion
    if isinstance(value, Mapping):
        allowed = {'translation', 'quaternion', 'rpy'}
        if set(value) - allowed or ('quaternion' in value and 'rpy' in value):
            raise ConfigError(f'GripperModel.tcp_offset: expected keys translation plus one of '
                              f'quaternion / rpy, got {sorted(value)}')
        translation = np.asarray(value.get('translation', [0.0, 0.0, 0.0]), np.float64)
        if translation.shape != (3,):
            raise ConfigError(f'GripperModel.tcp_offset.translation: expected 3 numbers, '
                              f'got shape {translation.shape}')
        if 'quaternion' in value:
            quat = np.asarray(value['quaternion'], np.float64)
            if quat.shape != (4,) or not np.all(np.isfinite(quat)) or np.linalg.norm(quat) < 1e-9:
                raise ConfigError(f'GripperModel.tcp_offset.quaternion: expected a non-zero '
                                  f'[x, y, z, w], got {value["quaternion"]!r}')
            rotation = matrix_from_quaternion(quat)
        else:
            rpy = np.asarray(value.get('rpy', [0.0, 0.0, 0.0]), np.float64)
            if rpy.shape != (3,):
                raise ConfigError(f'GripperModel.tcp_offset.rpy: expected 3 angles, got {rpy.shape}')
            rotation = _rpy_matrix(*rpy)
        return make_transform(rotation, translation)
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ConfigError(f'GripperModel.tcp_offset: expected a 4x4 matrix, got shape {matrix.shape}')
    return matrix


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation for fixed-axis roll/pitch/yaw (URDF convention: R = Rz(yaw) Ry(pitch) Rx(roll))."""
    cr, sr, cp, sp = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


#: ``tcp_offset`` for MoveIt's ``panda_hand_tcp`` frame, whose fingers close along its y axis:
#: a -90 degree rotation about the approach axis z (origin at the fingertip centre).
PANDA_HAND_TCP_OFFSET = np.array([[0.0, 1.0, 0.0, 0.0],
                                  [-1.0, 0.0, 0.0, 0.0],
                                  [0.0, 0.0, 1.0, 0.0],
                                  [0.0, 0.0, 0.0, 1.0]])
