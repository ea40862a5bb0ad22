"""Execute a parallel-jaw grasp in MuJoCo physics: pre-grasp, approach, close with force, lift, shake.

The simulated hand uses the grasp frame of :mod:`robot_vision.grasping.gripper`::

                 palm (|x| <= palm_width/2, -finger_depth - palm_depth <= z <= -finger_depth)
          +---------------------------+
          |                           |
          +---+---------------+---+---+
              |   |       |   |         fingers: w/2 <= |x| <= w/2 + finger_thickness
              |   |   o---+-> x         origin o: midway between the fingertips (z = 0)
              +---+   |   +---+         x: closing axis, z: approach (palm -> object)
                      v z

The hand is a mocap (kinematic) body; each finger is a slide joint along x, coupled to the
other by an equality constraint and driven by one force-limited position actuator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.sim.objects import wxyz
from robot_vision.sim.simulator import SimScene, import_mujoco


@dataclass(frozen=True)
class GraspExecutionSettings:
    """Timing, forces and success criteria of :func:`execute_grasp` (metres, seconds, newtons).

    ``pregrasp_distance`` (0.10 m): start this far back along the approach axis (-z).
    ``approach_speed`` (0.25 m/s). ``close_time`` (0.6 s): time allowed for the fingers to close.
    ``grip_force`` (40 N): actuator force limit squeezing the fingers. ``finger_friction`` (1.2).
    ``lift_height`` (0.15 m) straight up in the world, over ``lift_time`` (1.0 s).
    ``shake_amplitude`` (0.02 m) at ``shake_frequency`` (2 Hz) along both horizontal world axes
    for ``shake_time`` (1.0 s), then ``hold_time`` (0.3 s) still.
    ``min_lift_fraction`` (0.5): success needs the object raised by this fraction of ``lift_height``.
    ``stop_at_support`` (True): the approach stops when a finger or the palm touches the table,
    the floor or a container (bin or shelf, ``container_*`` geoms), instead of pushing through it.
    ``approach_force_limit`` (15 N): the approach also stops when the contact force on the hand
    exceeds this (a force-guarded move; e.g. a fingertip landing on top of an object too wide to
    fit between the fingers).
    """

    pregrasp_distance: float = 0.10
    approach_speed: float = 0.25
    close_time: float = 0.6
    grip_force: float = 40.0
    finger_friction: float = 1.2
    lift_height: float = 0.15
    lift_time: float = 1.0
    shake_amplitude: float = 0.02
    shake_frequency: float = 2.0
    shake_time: float = 1.0
    hold_time: float = 0.3
    min_lift_fraction: float = 0.5
    stop_at_support: bool = True
    approach_force_limit: float = 15.0

    def __post_init__(self) -> None:
        """Validate every field."""
        limits = {'pregrasp_distance': (0.0, 1.0), 'approach_speed': (0.01, 5.0), 'close_time': (0.05, 5.0),
                  'grip_force': (0.1, 1000.0), 'finger_friction': (0.01, 5.0), 'lift_height': (0.01, 1.0),
                  'lift_time': (0.05, 10.0), 'shake_amplitude': (0.0, 0.2), 'shake_frequency': (0.0, 10.0),
                  'shake_time': (0.0, 10.0), 'hold_time': (0.0, 10.0), 'min_lift_fraction': (0.0, 1.0),
                  'approach_force_limit': (0.1, 1e4)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and low <= value <= high):
                raise ConfigError(f'GraspExecutionSettings.{name}: expected {low} to {high}, got {value!r}')


@dataclass
class GraspOutcome:
    """Result of one executed grasp.

    ``success``: an object is between the fingers (touching both) and raised by at least
    ``min_lift_fraction * lift_height`` after the lift and the shake. ``reason``: 'held',
    'pregrasp_collision' (the hand starts in collision), 'empty' (the fingers closed on
    nothing), 'slipped_during_lift', 'dropped_during_shake' or 'wrong_object' (something other
    than ``target_index`` was held). ``lifted_height`` (m): rise of the held (or target, or
    nearest) object. ``object_index``: that object (-1: none). ``opening`` (m): finger opening
    after closing. ``approach_blocked``: the approach stopped at the support surface.
    ``approach_blocked`` is also set when the force-guarded approach stopped on an object.
    ``phases``: per-phase list of object indices touching both fingers.
    """

    success: bool
    reason: str
    lifted_height: float
    object_index: int
    target_index: int
    opening: float
    approach_blocked: bool
    sim_time: float
    wall_time: float
    phases: Dict[str, List[int]] = field(default_factory=dict)


def _gripper_params(gripper: Any) -> Dict[str, float]:
    defaults = {'max_opening': 0.08, 'min_opening': 0.0, 'finger_width': 0.02, 'finger_thickness': 0.01,
                'finger_depth': 0.045, 'palm_width': 0.20, 'palm_thickness': 0.06, 'palm_depth': 0.06,
                'opening_margin': 0.016}
    params = {}
    for name, default in defaults.items():
        value = getattr(gripper, name, default) if gripper is not None else default
        number = isinstance(value, (int, float, np.floating, np.integer))
        if not (number and np.isfinite(value) and value >= 0):
            raise ConfigError(f'gripper.{name}: expected a non-negative number of metres, got {value!r}')
        params[name] = float(value)
    return params


def gripper_mjcf(params: Dict[str, float], settings: GraspExecutionSettings) -> Tuple[str, str, str, str]:
    """MJCF snippets (worldbody, equality, actuator, contact) of the simulated hand, parked out of view."""
    fd, ft, fw = params['finger_depth'], params['finger_thickness'], params['finger_width']
    pw, pt, pd = params['palm_width'], params['palm_thickness'], params['palm_depth']
    half_max = params['max_opening'] / 2
    mu = settings.finger_friction
    common = 'contype="2" conaffinity="1" condim="4" solref="0.004 1" solimp="0.95 0.99 0.001"'
    body = f"""    <body name="gripper_target" mocap="true" pos="0 0 5"/>
    <body name="gripper" pos="0 0 5" gravcomp="1">
      <freejoint name="gripper_joint"/>
      <geom name="gripper_palm" type="box" size="{pw / 2:.4f} {pt / 2:.4f} {pd / 2:.4f}"
            pos="0 0 {-fd - pd / 2:.4f}" rgba="0.3 0.3 0.35 1" {common} friction="0.5 0.005 0.0001"/>
      <body name="finger_left" gravcomp="1">
        <joint name="finger_left_joint" type="slide" axis="-1 0 0" range="0 {half_max:.4f}" damping="10"
               armature="0.01" solreflimit="0.004 1"/>
        <geom name="finger_left" type="box" size="{ft / 2:.4f} {fw / 2:.4f} {fd / 2:.4f}"
              pos="{-ft / 2:.4f} 0 {-fd / 2:.4f}" mass="0.05" rgba="0.8 0.8 0.85 1" {common} priority="1"
              friction="{mu:.3f} 0.01 0.0001"/>
      </body>
      <body name="finger_right" gravcomp="1">
        <joint name="finger_right_joint" type="slide" axis="1 0 0" range="0 {half_max:.4f}" damping="10"
               armature="0.01" solreflimit="0.004 1"/>
        <geom name="finger_right" type="box" size="{ft / 2:.4f} {fw / 2:.4f} {fd / 2:.4f}"
              pos="{ft / 2:.4f} 0 {-fd / 2:.4f}" mass="0.05" rgba="0.8 0.8 0.85 1" {common} priority="1"
              friction="{mu:.3f} 0.01 0.0001"/>
      </body>
    </body>"""
    equality = ('    <weld body1="gripper_target" body2="gripper" solref="0.01 1"/>\n'
                '    <joint joint1="finger_right_joint" joint2="finger_left_joint" polycoef="0 1 0 0 0" '
                'solref="0.004 1"/>')
    force = settings.grip_force
    actuator = (f'    <position name="fingers" joint="finger_left_joint" kp="3000" '
                f'ctrlrange="0 {half_max:.4f}" '
                f'forcerange="{-force:.3f} {force:.3f}"/>')
    return body, equality, actuator, ''


class _GraspWorld:
    """A compiled scene + hand model, reused for every grasp on the same scene and hand."""

    def __init__(self, scene: SimScene, params: Dict[str, float], settings: GraspExecutionSettings):
        mujoco = import_mujoco()
        self.mujoco = mujoco
        body, equality, actuator, contact = gripper_mjcf(params, settings)
        self.model = mujoco.MjModel.from_xml_string(scene.spec.to_mjcf(
            extra_worldbody=body, extra_equality=equality, extra_actuator=actuator, extra_contact=contact))
        name = mujoco.mj_name2id
        geom = mujoco.mjtObj.mjOBJ_GEOM
        body_kind, joint_kind = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_JOINT
        self.mocap = int(self.model.body_mocapid[name(self.model, body_kind, 'gripper_target')])
        self.hand_qpos = int(self.model.jnt_qposadr[name(self.model, joint_kind, 'gripper_joint')])
        self.left = name(self.model, geom, 'finger_left')
        self.right = name(self.model, geom, 'finger_right')
        self.palm = name(self.model, geom, 'gripper_palm')
        self.hand = {self.left, self.right, self.palm}
        self.support = {i for i in (name(self.model, geom, 'table_top'), name(self.model, geom, 'floor'))
                        if i >= 0}
        self.support |= {g for g in range(self.model.ngeom)
                         if (mujoco.mj_id2name(self.model, geom, g) or '').startswith('container_')}
        self.left_joint = int(self.model.jnt_qposadr[name(self.model, mujoco.mjtObj.mjOBJ_JOINT,
                                                           'finger_left_joint')])
        self.right_joint = int(self.model.jnt_qposadr[name(self.model, mujoco.mjtObj.mjOBJ_JOINT,
                                                            'finger_right_joint')])
        body_ids = [name(self.model, mujoco.mjtObj.mjOBJ_BODY, o.name) for o in scene.spec.objects]
        self.geom_object = {int(g): i for i, b in enumerate(body_ids)
                            for g in np.flatnonzero(self.model.geom_bodyid == b)}
        self.qpos_adr = [int(self.model.jnt_qposadr[self.model.body_jntadr[b]]) for b in body_ids]


def _contacts(world: _GraspWorld, data, force: bool = False) -> Tuple[set, set, bool, float, float]:
    """Summarise the hand's contacts.

    Returns (objects touching the left finger, ... the right finger, hand touches support,
    max hand penetration (m), total normal force on the hand (N, only when ``force``)).
    """
    left, right = set(), set()
    support = False
    depth = 0.0
    total = 0.0
    wrench = np.zeros(6)
    for k in range(data.ncon):
        con = data.contact[k]
        g1, g2 = int(con.geom1), int(con.geom2)
        for a, b in ((g1, g2), (g2, g1)):
            if a in world.hand:
                depth = max(depth, -float(con.dist))
                if force and b not in world.hand:
                    world.mujoco.mj_contactForce(world.model, data, k, wrench)
                    total += abs(float(wrench[0]))
                if b in world.support:
                    support = True
                obj = world.geom_object.get(b)
                if obj is not None and a == world.left:
                    left.add(obj)
                if obj is not None and a == world.right:
                    right.add(obj)
    return left, right, support, depth, total


def execute_grasp(scene: SimScene, grasp_pose_world: np.ndarray, width: float, gripper: Any = None,
                  settings: GraspExecutionSettings = GraspExecutionSettings(),
                  target_index: Optional[int] = None) -> GraspOutcome:
    """Execute one grasp in physics on a copy of ``scene``'s current state (the scene is not changed).

    ``grasp_pose_world`` (4, 4): the grasp frame in the world (origin between the fingertips,
    x closing axis, z approach; :mod:`robot_vision.grasping.gripper`). ``width`` (m): the
    object width the grasp expects; the fingers open to ``min(width + opening_margin,
    max_opening)``. ``gripper``: a :class:`~robot_vision.grasping.GripperModel` or any object
    with its dimension attributes (None: Panda-like defaults). ``target_index``: the object the
    grasp is meant for (None: any object counts). Returns a :class:`GraspOutcome`.
    """
    start_wall = time.perf_counter()
    if not isinstance(scene, SimScene):
        raise InputError(f'execute_grasp: expected a SimScene, got {type(scene).__name__}')
    pose = np.asarray(grasp_pose_world, np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise InputError(f'execute_grasp: grasp_pose_world must be a finite (4, 4) transform, '
                         f'got {pose.shape}')
    rot = pose[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
        raise InputError('execute_grasp: grasp_pose_world rotation is not orthonormal with det +1')
    if not (np.isfinite(width) and width >= 0):
        raise InputError(f'execute_grasp: width must be >= 0 metres, got {width}')
    n_objects = len(scene.spec.objects)
    if target_index is not None and not (0 <= target_index < n_objects):
        raise InputError(f'execute_grasp: target_index must be in [0, {n_objects}), got {target_index}')
    params = _gripper_params(gripper)
    key = (tuple(sorted(params.items())), settings.grip_force, settings.finger_friction)
    cache = scene.__dict__.setdefault('_grasp_worlds', {})
    if key not in cache:
        cache[key] = _GraspWorld(scene, params, settings)
    world: _GraspWorld = cache[key]
    mujoco = world.mujoco
    model = world.model
    data = mujoco.MjData(model)
    for i, adr in enumerate(world.qpos_adr):
        src = scene.qpos_adr[i]
        data.qpos[adr:adr + 7] = scene.data.qpos[src:src + 7]
    opening = float(min(width + params['opening_margin'], params['max_opening']))
    data.qpos[world.left_joint] = data.qpos[world.right_joint] = opening / 2
    data.ctrl[0] = opening / 2
    quat = wxyz(rot)
    approach = rot[:, 2]
    pre = pose[:3, 3] - settings.pregrasp_distance * approach
    dt = model.opt.timestep

    def place(position):
        data.mocap_pos[world.mocap] = position
        data.mocap_quat[world.mocap] = quat

    place(pre)
    data.qpos[world.hand_qpos:world.hand_qpos + 3] = pre
    data.qpos[world.hand_qpos + 3:world.hand_qpos + 7] = quat
    mujoco.mj_forward(model, data)
    initial = np.array([data.qpos[a:a + 3] for a in world.qpos_adr]).reshape(-1, 3)
    _, _, _, penetration, _ = _contacts(world, data)
    if penetration > 0.002:
        return _outcome(False, 'pregrasp_collision', world, data, initial, target_index, pose, opening,
                        False, start_wall, {})

    # approach along +z of the grasp frame
    steps = max(1, int(np.ceil(settings.pregrasp_distance / settings.approach_speed / dt)))
    blocked = False
    position = pre.copy()
    for k in range(1, steps + 1):
        candidate = pre + (pose[:3, 3] - pre) * k / steps
        place(candidate)
        mujoco.mj_step(model, data)
        _, _, support, _, pushed = _contacts(world, data, force=True)
        if (support and settings.stop_at_support) or pushed > settings.approach_force_limit:
            blocked = True
            place(position)   # back off to the last free position
            mujoco.mj_forward(model, data)
            break
        position = candidate
    phases: Dict[str, List[int]] = {}
    # close with force
    data.ctrl[0] = 0.0
    for _ in range(int(settings.close_time / dt)):
        mujoco.mj_step(model, data)
    left, right, _, _, _ = _contacts(world, data)
    phases['closed'] = sorted(left & right)
    # lift straight up in the world
    steps = max(1, int(settings.lift_time / dt))
    start = position.copy()
    for k in range(1, steps + 1):
        s = k / steps
        place(start + np.array([0.0, 0.0, settings.lift_height * (3 * s * s - 2 * s ** 3)]))
        mujoco.mj_step(model, data)
    left, right, _, _, _ = _contacts(world, data)
    phases['lifted'] = sorted(left & right)
    # shake along both horizontal axes
    top = start + np.array([0.0, 0.0, settings.lift_height])
    steps = int(settings.shake_time / dt)
    omega = 2 * np.pi * settings.shake_frequency
    for k in range(1, steps + 1):
        t = k * dt
        ramp = min(1.0, t / 0.1, (settings.shake_time - t) / 0.1 + 1e-9)
        offset = settings.shake_amplitude * ramp * np.array([np.sin(omega * t), np.sin(2 * omega * t) / 2, 0])
        place(top + offset)
        mujoco.mj_step(model, data)
    place(top)
    for _ in range(int(settings.hold_time / dt)):
        mujoco.mj_step(model, data)
    left, right, _, _, _ = _contacts(world, data)
    phases['shaken'] = sorted(left & right)
    return _outcome(True, '', world, data, initial, target_index, pose, opening, blocked, start_wall, phases,
                    settings)


def _outcome(ran: bool, reason: str, world: _GraspWorld, data, initial: np.ndarray,
             target_index: Optional[int], pose: np.ndarray, opening: float, blocked: bool,
             start_wall: float, phases: Dict[str, List[int]],
             settings: Optional[GraspExecutionSettings] = None) -> GraspOutcome:
    current = np.array([data.qpos[a:a + 3] for a in world.qpos_adr]).reshape(-1, 3)
    rise = current[:, 2] - initial[:, 2]
    final_opening = float(data.qpos[world.left_joint] + data.qpos[world.right_joint])
    nearest = int(np.argmin(np.linalg.norm(initial - pose[:3, 3], axis=1))) if len(initial) else -1
    target = -1 if target_index is None else int(target_index)
    if not ran:
        index = target if target >= 0 else nearest
        return GraspOutcome(False, reason, float(rise[index]) if index >= 0 else 0.0, index, target,
                            final_opening, blocked, float(data.time), time.perf_counter() - start_wall,
                            phases)
    threshold = settings.min_lift_fraction * settings.lift_height
    held = [i for i in phases['shaken'] if rise[i] >= threshold]
    if held:
        index = target if target in held else max(held, key=lambda i: rise[i])
        success = target < 0 or target in held
        reason = 'held' if success else 'wrong_object'
    else:
        index = phases['closed'][0] if phases['closed'] else (target if target >= 0 else nearest)
        if not phases['closed']:
            reason = 'empty'
        elif not phases['lifted']:
            reason = 'slipped_during_lift'
        else:
            reason = 'dropped_during_shake'
        success = False
    return GraspOutcome(success, reason, float(rise[index]) if index >= 0 else 0.0, index, target,
                        final_opening, blocked, float(data.time), time.perf_counter() - start_wall, phases)


__all__ = ['GraspExecutionSettings', 'GraspOutcome', 'execute_grasp', 'gripper_mjcf']
