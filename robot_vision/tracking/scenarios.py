"""Seeded ground-truth tracking scenarios: objects on known trajectories seen by a (moving) camera.

Observations are made in the CAMERA frame (as a real depth pipeline would output ``Objects3D``)
and carry the known ``camera_to_fixed`` pose, so a test converts them with
:func:`~robot_vision.tracking.observations_from_objects` exactly as the ROS layer does; static
objects then stay static in the fixed frame however the camera moves.

Fixed frame: x forward, y left, z up (metres). Camera optical frame: x right, y down, z forward::

        fixed z (up)                camera optical
          |   x (forward)              z (forward)
          |  /                        /
          | /                        /
   y -----+                         +----- x (right)
   (left)                           |
                                    y (down)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from robot_vision.errors import ConfigError
from robot_vision.geometry import make_transform
from robot_vision.types import Objects3D

#: Rotation taking camera-optical axes to a body frame with x forward, y left, z up.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Trajectory:
    """A ground-truth object path in the fixed frame.

    ``kind`` is 'static' (stays at ``start``), 'constant_velocity' (``start + velocity * t``) or
    'turning' (a circle of ``radius`` m about ``centre`` at ``angular_speed`` rad/s, starting at
    angle ``phase``). Heading (yaw) follows the velocity; static objects keep ``yaw``.
    """

    kind: str
    start: Tuple[float, float, float] = (0.0, 0.0, 0.5)
    velocity: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    centre: Tuple[float, float, float] = (0.0, 0.0, 0.5)
    radius: float = 1.0
    angular_speed: float = 0.0
    phase: float = 0.0
    yaw: float = 0.0
    class_id: int = 0
    size: Tuple[float, float, float] = (0.6, 0.4, 1.0)

    def __post_init__(self) -> None:
        """Check the kind."""
        if self.kind not in ('static', 'constant_velocity', 'turning'):
            raise ConfigError(f"Trajectory.kind: expected 'static', 'constant_velocity' or 'turning', "
                              f'got {self.kind!r}')

    def state(self, t: float) -> Tuple[np.ndarray, np.ndarray, float]:
        """Position (3,) m, velocity (3,) m/s and yaw (rad) at time ``t`` (s)."""
        if self.kind == 'static':
            return np.array(self.start, float), np.zeros(3), self.yaw
        if self.kind == 'constant_velocity':
            v = np.array(self.velocity, float)
            return np.array(self.start, float) + v * t, v, float(np.arctan2(v[1], v[0]))
        angle = self.phase + self.angular_speed * t
        p = np.array(self.centre, float) + self.radius * np.array([np.cos(angle), np.sin(angle), 0.0])
        v = self.radius * self.angular_speed * np.array([-np.sin(angle), np.cos(angle), 0.0])
        return p, v, float(np.arctan2(v[1], v[0]))


@dataclass(frozen=True)
class ScenarioSettings:
    """How a scenario is generated (all randomness from ``seed``).

    Attributes:
        objects: the ground-truth trajectories (object ids are 1 + their index).
        n_frames: number of frames.
        frame_interval: mean time between frames (s).
        interval_jitter: frame intervals are drawn uniformly in ``interval * [1 - j, 1 + j]``.
        position_noise: std of the observed position per camera axis (m).
        depth_noise: extra std along the camera's viewing axis (m), as depth sensors have.
        yaw_noise: std of the observed yaw (rad).
        miss_rate: probability that a visible object is not detected in a frame.
        false_positives: mean number of spurious observations per frame (Poisson).
        occlusions: ``(object index, first frame, number of frames)`` spans with no observation.
        moving_camera: the camera translates and pans during the sequence.
        seed: random seed.

    """

    objects: Tuple[Trajectory, ...]
    n_frames: int = 100
    frame_interval: float = 0.1
    interval_jitter: float = 0.3
    position_noise: float = 0.0
    depth_noise: float = 0.0
    yaw_noise: float = 0.0
    miss_rate: float = 0.0
    false_positives: float = 0.0
    occlusions: Tuple[Tuple[int, int, int], ...] = ()
    moving_camera: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        """Validate ranges."""
        if self.n_frames < 1 or self.frame_interval <= 0 or not 0 <= self.interval_jitter < 1:
            raise ConfigError(f'ScenarioSettings: expected n_frames >= 1, frame_interval > 0 and '
                              f'interval_jitter in [0, 1), got {self.n_frames}, {self.frame_interval}, '
                              f'{self.interval_jitter}')
        if not 0 <= self.miss_rate <= 1:
            raise ConfigError(f'ScenarioSettings.miss_rate: expected a value in [0, 1], got {self.miss_rate}')


@dataclass
class ScenarioFrame:
    """One frame: observations in the camera frame, the camera pose and the ground truth (fixed frame)."""

    stamp: float
    objects: Objects3D
    camera_to_fixed: np.ndarray
    gt_ids: np.ndarray
    gt_position: np.ndarray
    gt_velocity: np.ndarray
    visible: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass
class Scenario:
    """A generated sequence of frames plus the settings that made it."""

    name: str
    settings: ScenarioSettings
    frames: List[ScenarioFrame]


def camera_pose(t: float, moving: bool) -> np.ndarray:
    """The camera-optical to fixed transform (4, 4) at time ``t`` (s).

    The static camera sits at (0, 0, 1.2) m looking along fixed +x; the moving one also drives
    along y at up to 0.6 m/s, forward at 0.2 m/s and pans by up to +-0.35 rad.
    """
    position = np.array([0.0, 0.0, 1.2])
    yaw = 0.0
    if moving:
        position = position + np.array([0.2 * t, 1.5 * np.sin(0.4 * t), 0.0])
        yaw = 0.35 * np.sin(0.7 * t)
    return make_transform(_rot_z(yaw) @ OPTICAL_TO_BODY, position)


def generate(settings: ScenarioSettings, name: str = 'custom') -> Scenario:
    """Generate a scenario; the same settings (seed included) give the same frames."""
    s = settings
    rng = np.random.default_rng(s.seed)
    dts = s.frame_interval * rng.uniform(1 - s.interval_jitter, 1 + s.interval_jitter, s.n_frames)
    stamps = 100.0 + np.concatenate([[0.0], np.cumsum(dts[1:])])
    occluded = np.zeros((s.n_frames, len(s.objects)), bool)
    for index, first, count in s.occlusions:
        occluded[first:first + count, index] = True
    frames = []
    for k, t_abs in enumerate(stamps):
        t = t_abs - stamps[0]
        cam = camera_pose(t, s.moving_camera)
        fixed_to_cam = np.linalg.inv(cam)
        states = [obj.state(t) for obj in s.objects]
        gt_pos = np.array([p for p, _, _ in states]).reshape(-1, 3)
        gt_vel = np.array([v for _, v, _ in states]).reshape(-1, 3)
        visible = ~occluded[k] & (rng.random(len(s.objects)) >= s.miss_rate)
        poses, sizes, classes, confs = [], [], [], []
        for i in np.flatnonzero(visible):
            p, _, yaw = states[i]
            pose = make_transform(_rot_z(yaw + rng.normal(0, s.yaw_noise) if s.yaw_noise else yaw), p)
            poses.append(fixed_to_cam @ pose)
            sizes.append(s.objects[i].size)
            classes.append(s.objects[i].class_id)
            confs.append(0.9)
        for _ in range(rng.poisson(s.false_positives) if s.false_positives else 0):
            p = np.array([rng.uniform(1.0, 9.0), rng.uniform(-5.0, 5.0), rng.uniform(0.2, 1.0)])
            poses.append(fixed_to_cam @ make_transform(_rot_z(rng.uniform(-np.pi, np.pi)), p))
            sizes.append(tuple(rng.uniform(0.2, 0.8, 3)))
            classes.append(int(rng.integers(0, 3)))
            confs.append(0.5)
        pose_arr = np.array(poses).reshape(-1, 4, 4)
        if len(pose_arr) and (s.position_noise or s.depth_noise):
            noise = rng.normal(0.0, s.position_noise, (len(pose_arr), 3))
            noise[:, 2] += rng.normal(0.0, s.depth_noise, len(pose_arr)) if s.depth_noise else 0.0
            pose_arr[:, :3, 3] += noise
        order = rng.permutation(len(pose_arr))
        n = len(pose_arr)
        objects = Objects3D(pose=pose_arr[order], size=np.array(sizes).reshape(-1, 3)[order],
                            centroid=pose_arr[order][:, :3, 3], confidence=np.array(confs)[order],
                            class_id=np.array(classes, np.int32)[order],
                            detection_index=np.full(n, -1, np.int32))
        frames.append(ScenarioFrame(stamp=float(t_abs), objects=objects, camera_to_fixed=cam,
                                    gt_ids=np.arange(1, len(s.objects) + 1), gt_position=gt_pos,
                                    gt_velocity=gt_vel, visible=visible))
    return Scenario(name, s, frames)


_CV = (Trajectory('constant_velocity', start=(3.0, -3.0, 0.5), velocity=(0.0, 0.8, 0.0)),
       Trajectory('constant_velocity', start=(6.0, 2.0, 0.9), velocity=(-0.3, -0.5, 0.0), class_id=1),
       Trajectory('constant_velocity', start=(2.0, 1.0, 0.5), velocity=(0.6, 0.0, 0.0)),
       Trajectory('static', start=(5.0, 0.0, 0.4), yaw=0.3, class_id=2))
_TURNING = (Trajectory('turning', centre=(5.0, 0.0, 0.5), radius=2.0, angular_speed=0.5),
            Trajectory('turning', centre=(5.0, 0.0, 1.0), radius=1.0, angular_speed=-0.8, phase=1.0,
                       class_id=1),
            Trajectory('static', start=(8.0, 3.0, 0.4), class_id=2))
# Two same-class objects whose paths cross (closest approach about 0.35 m), plus a third crossing.
_CROSSING = (Trajectory('constant_velocity', start=(1.0, 4.0, 0.5), velocity=(1.0, 0.0, 0.0)),
             Trajectory('constant_velocity', start=(4.0, 0.5, 0.5), velocity=(0.0, 1.0, 0.0)),
             Trajectory('constant_velocity', start=(7.0, -4.0, 0.5), velocity=(-0.5, 1.2, 0.0)))
_STATIC = (Trajectory('static', start=(4.0, -1.0, 0.4), yaw=0.5),
           Trajectory('static', start=(6.0, 1.5, 0.6), class_id=1),
           Trajectory('static', start=(3.0, 2.0, 0.3), yaw=-1.0, class_id=2),
           Trajectory('constant_velocity', start=(8.0, -3.0, 0.8), velocity=(-0.2, 0.6, 0.0)))
_MIXED = (_CV[0], _CV[3], _TURNING[0], _CROSSING[0], _CROSSING[1], _STATIC[1])

_PRESETS = {
    'constant_velocity': ScenarioSettings(_CV),
    'turning': ScenarioSettings(_TURNING),
    'crossing': ScenarioSettings(_CROSSING, n_frames=80),
    'occlusion': ScenarioSettings(_CV, occlusions=((0, 30, 10), (1, 50, 10), (2, 70, 10))),
    'moving_camera': ScenarioSettings(_STATIC, moving_camera=True),
    'mixed': ScenarioSettings(_MIXED, occlusions=((2, 40, 10), (0, 60, 10)), moving_camera=True),
}
_NOISE = dict(position_noise=0.03, depth_noise=0.05, yaw_noise=0.1, miss_rate=0.1, false_positives=0.5)

#: Names of the noise-free scenarios (irregular intervals, occlusions, crossings, moving camera).
CLEAN_SCENARIOS = tuple(_PRESETS)
#: Names of the noisy scenarios: the clean ones plus position/depth noise, 10 % missed
#: detections and 0.5 false positives per frame.
NOISY_SCENARIOS = tuple(f'noisy_{name}' for name in _PRESETS)


def make_scenario(name: str, seed: int = 0, n_frames: Optional[int] = None) -> Scenario:
    """Build a named preset (see ``CLEAN_SCENARIOS`` and ``NOISY_SCENARIOS``) with the given seed."""
    base_name = name[len('noisy_'):] if name.startswith('noisy_') else name
    if base_name not in _PRESETS:
        raise ConfigError(f'scenario: expected one of {CLEAN_SCENARIOS + NOISY_SCENARIOS}, got {name!r}')
    settings = _PRESETS[base_name]
    changes = dict(_NOISE) if name.startswith('noisy_') else {}
    changes['seed'] = seed
    if n_frames is not None:
        changes['n_frames'] = n_frames
    from dataclasses import replace
    return generate(replace(settings, **changes), name)
