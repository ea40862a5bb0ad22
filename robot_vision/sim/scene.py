"""Seeded tabletop scene generation: objects, camera, lights and textures, written out as MuJoCo MJCF."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.sim.containers import (CONTAINER_VIEWS, CONTAINER_VIEWS_HARD, CONTAINERS, ContainerSpec,
                                         draw_container, leaning_board)
from robot_vision.sim.objects import (CLASS_NAMES, DEFAULT_KINDS, OBJECT_KINDS, YCB_GRASPABLE, ObjectSpec,
                                      draw_object, flat_pack, mjcf_vec, object_assets, object_body, object_mass,
                                      resting_half_height, ycb_available, ycb_hull)


#: Clutter levels and their (min, max) object counts.
CLUTTER_LEVELS = {'isolated': (1, 1), 'clutter': (4, 8), 'dense': (8, 15)}

#: Camera presets of :meth:`SceneSettings.with_views`: (distance range m, elevation range deg).
#: 'tabletop' is the default mix; 'hard' adds top-down and steep wrist-camera views and far tables.
VIEW_PRESETS = {'tabletop': ((0.5, 1.0), (45.0, 75.0)), 'hard': ((0.4, 2.0), (45.0, 90.0))}


@dataclass(frozen=True)
class SceneSettings:
    """How :func:`generate_scene` draws a scene (lengths in metres, angles in degrees).

    ``clutter``: 'isolated' (1 object), 'clutter' (4-8 objects, ``min_gap`` apart) or 'dense'
    (8-15 objects touching each other: no gap, and an object with no free spot left is dropped onto
    the others, so the pile settles with objects stacked and leaning); ``num_objects`` overrides
    the count when > 0. ``surface``: 'table' (a box table of ``table_height``) or 'floor'.
    ``kinds``: object kinds to draw from, each equally likely (see ``OBJECT_KINDS``; a kind named
    twice is drawn twice as often; default ``DEFAULT_KINDS``, without 'cup' and 'bowl'; 'mesh' needs the YCB point
    models and is skipped, with ``SceneSpec.notes`` saying why, when they are absent).
    ``camera_distance``: range of the camera's distance to its look-at point; ``camera_elevation_deg``:
    range of the angle of the viewing ray above the horizontal; ``camera_azimuth_deg``: range of the
    camera's azimuth around its look-at point (0: on the +x side). ``container``: 'none' (objects on
    the surface), 'bin' (an open tote on the surface) or 'shelf' (a cubby open towards -x); the
    objects are placed inside it and its walls are background, not ground-truth objects (see
    :mod:`robot_vision.sim.containers` and :meth:`with_container`). ``width``/``height``: image size
    in pixels; ``fovy_deg``: vertical field of view (49.1 deg is a Kinect-like fy = 525 at 480 rows).
    ``randomize_appearance``: random colours, textures and lights (else a fixed look).
    ``moving_objects``: how many objects get a scripted planar velocity of
    ``speed`` (m/s range) for :meth:`SimScene.step`. ``settle_time``: seconds of physics run
    before the first frame so that objects rest on the surface.
    """

    clutter: str = 'clutter'
    num_objects: int = 0
    surface: str = 'table'
    table_height: float = 0.75
    table_size: Tuple[float, float] = (1.2, 0.9)
    kinds: Tuple[str, ...] = DEFAULT_KINDS
    placement_radius: float = 0.18
    min_gap: float = 0.01
    camera_distance: Tuple[float, float] = (0.5, 1.0)
    camera_elevation_deg: Tuple[float, float] = (45.0, 75.0)
    camera_azimuth_deg: Tuple[float, float] = (-180.0, 180.0)
    container: str = 'none'
    width: int = 640
    height: int = 480
    fovy_deg: float = 49.1
    randomize_appearance: bool = True
    moving_objects: int = 0
    speed: Tuple[float, float] = (0.02, 0.08)
    settle_time: float = 0.6
    timestep: float = 0.002

    def __post_init__(self) -> None:
        """Validate every field, naming the field, the expected and the actual value."""
        if self.clutter not in CLUTTER_LEVELS:
            raise ConfigError(f'SceneSettings.clutter: expected one of {sorted(CLUTTER_LEVELS)}, '
                              f'got {self.clutter!r}')
        if not (0 <= int(self.num_objects) <= 15):
            raise ConfigError(f'SceneSettings.num_objects: expected 0 (use clutter) to 15, '
                              f'got {self.num_objects}')
        if self.surface not in ('table', 'floor'):
            raise ConfigError(f"SceneSettings.surface: expected 'table' or 'floor', got {self.surface!r}")
        if not self.kinds or any(k not in OBJECT_KINDS for k in self.kinds):
            raise ConfigError(f'SceneSettings.kinds: expected a non-empty subset of {OBJECT_KINDS}, '
                              f'got {self.kinds!r}')
        _check_range('camera_distance', self.camera_distance, 0.2, 5.0)
        _check_range('camera_elevation_deg', self.camera_elevation_deg, 5.0, 90.0)
        _check_range('camera_azimuth_deg', self.camera_azimuth_deg, -360.0, 360.0)
        if self.container not in CONTAINERS:
            raise ConfigError(f'SceneSettings.container: expected one of {CONTAINERS}, got {self.container!r}')
        _check_range('speed', self.speed, 0.0, 2.0)
        for name, low, high in (('table_height', 0.0, 2.0), ('placement_radius', 0.02, 1.0),
                                ('min_gap', 0.0, 0.2), ('fovy_deg', 5.0, 150.0),
                                ('settle_time', 0.0, 10.0), ('timestep', 1e-4, 0.01)):
            value = getattr(self, name)
            if not (low <= value <= high):
                raise ConfigError(f'SceneSettings.{name}: expected {low} to {high}, got {value}')
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ConfigError(f'SceneSettings.width/height: expected 16 to 4096 pixels, '
                              f'got {self.width}x{self.height}')
        if len(self.table_size) != 2 or min(self.table_size) <= 0.1:
            raise ConfigError(f'SceneSettings.table_size: expected (length, width) > 0.1 m, '
                              f'got {self.table_size}')
        if not (0 <= self.moving_objects <= 12):
            raise ConfigError(f'SceneSettings.moving_objects: expected 0 to 12, got {self.moving_objects}')


    def with_views(self, preset: str) -> SceneSettings:
        """These settings with the camera distance and elevation ranges of a :data:`VIEW_PRESETS` entry."""
        if preset not in VIEW_PRESETS:
            raise ConfigError(f'views: expected one of {sorted(VIEW_PRESETS)}, got {preset!r}')
        distance, elevation = VIEW_PRESETS[preset]
        return dataclasses.replace(self, camera_distance=distance, camera_elevation_deg=elevation)

    def with_container(self, container: str, views: str = 'tabletop') -> SceneSettings:
        """These settings with ``container`` and, for 'bin' and 'shelf', its camera ranges.

        bin: 0.5-1.0 m, 45-90 deg above the horizontal, any azimuth. shelf: 0.4-0.8 m, 5-25 deg,
        within 25 deg of straight in front (azimuth 180 deg), as a robot looks into a shelf bin.
        With ``views='hard'`` (a wrist camera close in): bin 0.4-0.55 m, 75-90 deg; shelf 0.3-0.5 m,
        5-35 deg. 'none' leaves the camera ranges as they are.
        """
        if container not in CONTAINERS:
            raise ConfigError(f'container: expected one of {CONTAINERS}, got {container!r}')
        if views not in VIEW_PRESETS:
            raise ConfigError(f'views: expected one of {sorted(VIEW_PRESETS)}, got {views!r}')
        if container == 'none':
            return dataclasses.replace(self, container=container)
        distance, elevation, half = (CONTAINER_VIEWS_HARD if views == 'hard' else CONTAINER_VIEWS)[container]
        centre = 0.0 if half >= 180.0 else 180.0
        return dataclasses.replace(self, container=container, camera_distance=distance,
                                   camera_elevation_deg=elevation,
                                   camera_azimuth_deg=(centre - half, centre + half))


def _check_range(name: str, value, low: float, high: float) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ConfigError(f'SceneSettings.{name}: expected (min, max) with {low} <= min <= max <= {high}, '
                          f'got {value}')


@dataclass(frozen=True)
class CameraSpec:
    """The RGB-D camera: ``pose`` (4, 4) optical frame (x right, y down, z forward) in the world."""

    pose: np.ndarray
    fovy_deg: float
    width: int
    height: int


@dataclass(frozen=True)
class LightSpec:
    """A directional-ish spot light: position, direction (world) and diffuse intensity (0..1)."""

    pos: Tuple[float, float, float]
    direction: Tuple[float, float, float]
    diffuse: float
    cast_shadow: bool = True


@dataclass(frozen=True)
class SceneSpec:
    """A complete generated scene; :meth:`to_mjcf` writes it as a MuJoCo MJCF XML string.

    ``surface_height`` is the world z (metres) of the support surface's top.
    ``notes`` says what was skipped and why (e.g. YCB meshes when the data is absent).
    ``container`` the bin or shelf the objects are in (None: on the surface).
    """

    seed: int
    settings: SceneSettings
    objects: Tuple[ObjectSpec, ...]
    camera: CameraSpec
    lights: Tuple[LightSpec, ...]
    surface_height: float
    surface_rgb: Tuple[Tuple[float, float, float], Tuple[float, float, float]]
    surface_texture: str
    ambient: float
    notes: Tuple[str, ...] = ()
    container: Optional[ContainerSpec] = None

    def to_mjcf(self, extra_worldbody: str = '', extra_asset: str = '', extra_actuator: str = '',
                extra_equality: str = '', extra_contact: str = '') -> str:
        """Return the scene as an MJCF XML string (the ``extra_*`` snippets are inserted verbatim)."""
        s = self.settings
        parts: List[str] = []
        amb = self.ambient
        parts.append(f'<mujoco model="robot_vision_scene_{self.seed}">')
        parts.append('  <compiler angle="radian" autolimits="true"/>')
        parts.append(f'  <option timestep="{s.timestep}" cone="elliptic" impratio="10" '
                     f'integrator="implicitfast"/>')
        parts.append('  <statistic extent="2" center="0 0 0.5"/>')
        parts.append('  <visual>')
        parts.append(f'    <global offwidth="{max(640, self.camera.width)}" '
                     f'offheight="{max(480, self.camera.height)}"/>')
        parts.append('    <map znear="0.005" zfar="10"/>')
        parts.append(f'    <headlight ambient="{amb:.3f} {amb:.3f} {amb:.3f}" diffuse="0.2 0.2 0.2" '
                     f'specular="0 0 0"/>')
        parts.append('    <quality shadowsize="1024"/>')
        parts.append('  </visual>')
        parts.append('  <asset>')
        (r1, g1, b1), (r2, g2, b2) = self.surface_rgb
        builtin = 'flat' if self.surface_texture == 'none' else self.surface_texture
        parts.append(f'    <texture name="surface_tex" type="2d" builtin="{builtin}" '
                     'width="256" height="256" '
                     f'rgb1="{r1:.3f} {g1:.3f} {b1:.3f}" rgb2="{r2:.3f} {g2:.3f} {b2:.3f}"/>')
        parts.append('    <material name="surface_mat" texture="surface_tex" texrepeat="6 6" '
                     'reflectance="0"/>')
        parts.append('    <texture name="floor_tex" type="2d" builtin="checker" width="256" height="256" '
                     'rgb1="0.35 0.35 0.38" rgb2="0.3 0.3 0.33"/>')
        parts.append('    <material name="floor_mat" texture="floor_tex" texrepeat="8 8"/>')
        for obj in self.objects:
            parts.extend(object_assets(obj))
        if self.container is not None:
            parts.append(self.container.mjcf_asset())
        parts.append(extra_asset)
        parts.append('  </asset>')
        parts.append('  <worldbody>')
        for i, light in enumerate(self.lights):
            px, py, pz = light.pos
            dx, dy, dz = light.direction
            d = light.diffuse
            parts.append(f'    <light name="light{i}" pos="{px:.3f} {py:.3f} {pz:.3f}" '
                         f'dir="{dx:.3f} {dy:.3f} {dz:.3f}" diffuse="{d:.3f} {d:.3f} {d:.3f}" '
                         f'castshadow="{str(light.cast_shadow).lower()}"/>')
        if s.surface == 'table':
            parts.append('    <geom name="floor" type="plane" size="0 0 0.05" material="floor_mat"/>')
            lx, ly = s.table_size[0] / 2, s.table_size[1] / 2
            th = 0.02
            parts.append(f'    <body name="table" pos="0 0 {self.surface_height - th:.4f}">')
            parts.append(f'      <geom name="table_top" type="box" size="{lx:.4f} {ly:.4f} {th:.4f}" '
                         f'material="surface_mat" friction="1 0.005 0.0001"/>')
            leg_h = (self.surface_height - 2 * th) / 2
            for k, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
                parts.append(f'      <geom name="table_leg{k}" type="box" size="0.02 0.02 {leg_h:.4f}" '
                             f'pos="{sx * (lx - 0.04):.4f} {sy * (ly - 0.04):.4f} {-th - leg_h:.4f}" '
                             f'rgba="0.3 0.25 0.2 1"/>')
            parts.append('    </body>')
        else:
            parts.append('    <geom name="floor" type="plane" size="0 0 0.05" material="surface_mat" '
                         'friction="1 0.005 0.0001"/>')
        if self.container is not None:
            parts.append(self.container.mjcf_body())
        cam = self.camera
        pos = cam.pose[:3, 3]
        x_axis = cam.pose[:3, 0]
        y_up = -cam.pose[:3, 1]   # MuJoCo cameras look along -z with y up
        parts.append(f'    <camera name="rgbd" pos="{mjcf_vec(pos)}" xyaxes="{mjcf_vec(x_axis)} {mjcf_vec(y_up)}" '
                     f'fovy="{cam.fovy_deg:.4f}"/>')
        for obj in self.objects:
            parts.extend(object_body(obj))
        parts.append(extra_worldbody)
        parts.append('  </worldbody>')
        for tag, body in (('contact', extra_contact), ('equality', extra_equality),
                          ('actuator', extra_actuator)):
            if body:
                parts.append(f'  <{tag}>\n{body}\n  </{tag}>')
        parts.append('</mujoco>')
        return '\n'.join(p for p in parts if p) + '\n'


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Return the 4x4 pose of an optical frame (x right, y down, z forward) at ``eye`` facing ``target``."""
    eye = np.asarray(eye, float)
    forward = np.asarray(target, float) - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise InputError('look_at: eye and target coincide')
    z = forward / norm
    x = np.cross(z, np.asarray(up, float))
    if np.linalg.norm(x) < 1e-6:   # looking straight down: pick world x as "right"-ish
        x = np.cross(z, np.array([0.0, 1.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def _leaning_box(rng: np.random.Generator, container: ContainerSpec, placed, gap: float):
    """A book-like box leaning on a side wall of ``container``, or None if it overlaps a placed object.

    Returns ``draw_object``'s tuple followed by the centre (3,) and the footprint radius.
    """
    half, rotation, centre = leaning_board(rng, container)
    footprint = float(np.hypot(half[0], half[1] + half[2] * abs(rotation[1, 2])))
    if any(np.linalg.norm(centre[:2] - p) < footprint + r + gap for p, r in placed):
        return None
    extent = tuple(2 * v for v in half)
    return 'box', 'box', half, extent, object_mass(rng, extent), None, None, rotation, centre, footprint


def generate_scene(seed: int, settings: SceneSettings = SceneSettings()) -> SceneSpec:
    """Draw a reproducible random scene: the same ``seed`` and ``settings`` give the same SceneSpec.

    The world frame has z up; the support surface is centred at the origin with its top at
    ``SceneSpec.surface_height``. Objects are placed without overlap (bounding circles
    ``min_gap`` apart) within ``placement_radius`` of the centre, then settle under physics in
    :class:`~robot_vision.sim.SimScene`. The camera looks at a point near the centre from
    ``camera_distance`` metres at ``camera_elevation_deg`` above the horizontal.
    With a ``container``, the objects are placed on its floor within its walls instead (when boxes
    may be drawn, each of the first two objects is with probability 1/2 a book-like box leaning on
    a side wall, and the third with probability 1/2 a flat pack), and the camera looks at the
    container's floor.
    """
    if not isinstance(settings, SceneSettings):
        raise ConfigError(f'generate_scene: expected SceneSettings, got {type(settings).__name__}')
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 9]))
    notes: List[str] = []
    kinds = list(settings.kinds)
    if 'mesh' in kinds:
        reason = ycb_available()
        if reason is not None:
            notes.append(reason)
            kinds = [k for k in kinds if k != 'mesh']
            if not kinds:
                raise InputError(f"generate_scene: only 'mesh' objects were requested but {reason}")
    low, high = CLUTTER_LEVELS[settings.clutter]
    count = settings.num_objects or int(rng.integers(low, high + 1))
    surface_z = settings.table_height if settings.surface == 'table' else 0.0
    container = None
    if settings.container != 'none':
        container = draw_container(rng, settings.container, surface_z, settings.randomize_appearance)
    floor_z = surface_z if container is None else container.floor_z
    radius_limit = settings.placement_radius
    if settings.surface == 'table':
        radius_limit = min(radius_limit, min(settings.table_size) / 2 - 0.08)
    randomize = settings.randomize_appearance
    placed: List[Tuple[np.ndarray, float]] = []
    objects: List[ObjectSpec] = []
    dense = settings.clutter == 'dense'
    gap = -0.01 if dense else settings.min_gap  # dense: bounding circles may overlap by 1 cm (touching)
    stacked_top = floor_z
    for index in range(count):
        on_top = False
        special = container is not None and index < 3 and 'box' in kinds and rng.uniform() < 0.5
        leaner = _leaning_box(rng, container, placed, gap) if special and index < 2 else None
        if leaner is not None:
            kind, class_name, size, extent, mass, vertices, faces, rotation, centre, footprint = leaner
            xy = centre[:2]
        else:
            for _attempt in range(200):
                kind = kinds[int(rng.integers(len(kinds)))]
                drawn = flat_pack(rng) if special and index == 2 else draw_object(rng, kind)
                kind, class_name, size, extent, mass, vertices, faces, rotation = drawn
                footprint = float(np.hypot(extent[0], extent[1]) / 2)
                if kind == 'capsule':
                    footprint = float(np.hypot(extent[0], extent[2]) / 2)
                if container is not None:
                    xy = container.sample_xy(rng, footprint)
                else:
                    xy = rng.uniform(-radius_limit, radius_limit, 2) if count > 1 else rng.uniform(-0.05, 0.05, 2)
                    if np.linalg.norm(xy) > radius_limit + 1e-9 and count > 1:
                        continue
                if all(np.linalg.norm(xy - p) >= footprint + r + gap for p, r in placed):
                    break
            else:
                if not dense:
                    notes.append(f'placed {index} of {count} objects: no free spot left for more')
                    break
                on_top = True  # dense piles: dropped onto the others, it settles stacked or leaning
        placed.append((xy, footprint))
        half = resting_half_height(kind, extent, rotation, vertices)
        z = (stacked_top + half + 0.01) if on_top else floor_z + half + 0.002
        if on_top and settings.container == 'shelf':   # dropped below the cubby's top board
            z = min(z, container.floor_z + container.inner[2] - half - 0.005)
        if leaner is not None:
            z = float(centre[2])
        stacked_top = max(stacked_top, z + half)
        pose = np.eye(4)
        pose[:3, :3] = rotation
        pose[:3, 3] = (xy[0], xy[1], z)
        if randomize:
            rgba = (*rng.uniform(0.1, 0.95, 3), 1.0)
            texture = ('none', 'none', 'checker', 'gradient')[int(rng.integers(4))]
            rgb2 = tuple(rng.uniform(0.1, 0.95, 3))
        else:
            rgba, texture, rgb2 = (0.8, 0.3, 0.2, 1.0), 'none', (1.0, 1.0, 1.0)
        objects.append(ObjectSpec(name=f'obj{index}', kind=kind, class_name=class_name,
                                  geom_size=tuple(float(v) for v in size),
                                  extent=tuple(float(v) for v in extent), pose=pose, mass=mass,
                                  rgba=tuple(float(v) for v in rgba), texture=texture,
                                  texture_rgb2=tuple(float(v) for v in rgb2),
                                  vertices=vertices, faces=faces))
    # scripted velocities for moving-object sequences
    moving = min(settings.moving_objects, len(objects))
    for i in range(moving):
        heading = rng.uniform(-np.pi, np.pi)
        speed = rng.uniform(*settings.speed)
        objects[i] = dataclasses.replace(
            objects[i], velocity=(float(speed * np.cos(heading)), float(speed * np.sin(heading)), 0.0))
    # camera
    distance = rng.uniform(*settings.camera_distance)
    elevation = np.deg2rad(rng.uniform(*settings.camera_elevation_deg))
    azimuth = rng.uniform(*np.deg2rad(settings.camera_azimuth_deg))
    target = np.array([*rng.uniform(-0.03, 0.03, 2), floor_z + 0.03])
    if settings.container == 'shelf':   # into the cubby, a little above its floor
        target[2] = floor_z + rng.uniform(0.05, 0.1)
    eye = target + distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                        np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    camera = CameraSpec(pose=look_at(eye, target), fovy_deg=settings.fovy_deg,
                        width=settings.width, height=settings.height)
    # lights and surface look
    if randomize:
        lights = []
        for _ in range(int(rng.integers(1, 3))):
            az, el = rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(40, 85))
            if settings.container == 'shelf':   # light reaches into the cubby only from the front
                az, el = np.pi + az / 3, el / 2
            pos = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]) * 2.0
            pos[2] += surface_z
            direction = np.array([0.0, 0.0, surface_z]) - pos
            lights.append(LightSpec(tuple(pos), tuple(direction / np.linalg.norm(direction)),
                                    float(rng.uniform(0.2, 0.45)), bool(rng.uniform() < 0.7)))
        ambient = float(rng.uniform(0.15, 0.4))
        surface_texture = ('none', 'checker', 'gradient')[int(rng.integers(3))]
        surface_rgb = (tuple(float(v) for v in rng.uniform(0.2, 0.9, 3)),
                       tuple(float(v) for v in rng.uniform(0.2, 0.9, 3)))
    else:
        lights = [LightSpec((0.5, 0.5, surface_z + 2.0), (-0.24, -0.24, -0.94), 0.6, True)]
        ambient, surface_texture = 0.3, 'none'
        surface_rgb = ((0.6, 0.55, 0.5), (0.6, 0.55, 0.5))
    return SceneSpec(seed=int(seed), settings=settings, objects=tuple(objects), camera=camera,
                     lights=tuple(lights), surface_height=float(surface_z), surface_rgb=surface_rgb,
                     surface_texture=surface_texture, ambient=ambient, notes=tuple(notes),
                     container=container)


__all__ = ['SceneSettings', 'SceneSpec', 'ObjectSpec', 'CameraSpec', 'LightSpec', 'generate_scene',
           'look_at', 'ycb_hull', 'OBJECT_KINDS', 'DEFAULT_KINDS', 'CLASS_NAMES', 'CLUTTER_LEVELS', 'CONTAINERS',
           'VIEW_PRESETS', 'YCB_GRASPABLE']
