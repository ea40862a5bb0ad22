"""Objects of the simulated scenes: the kinds, their random draw, and their MJCF."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import numpy as np

#: Object kinds generate_scene can place; 'mesh' is a convex hull of a YCB point model; 'cup' an open,
#: hollow cylinder (a mug or cup without handle: a bottom disc and a ring of thin wall plates); 'bowl'
#: an open bowl (a bottom disc and a ring of wall plates flaring out to a scalloped rim).
OBJECT_KINDS = ('box', 'cylinder', 'sphere', 'capsule', 'ellipsoid', 'mesh', 'cup', 'bowl')
#: The kinds ``SceneSettings`` draws from unless told otherwise (the scene mixes measured so far).
DEFAULT_KINDS = ('box', 'cylinder', 'sphere', 'capsule', 'ellipsoid', 'mesh')
#: Wall plates of a cup, its wall thickness and its base thickness (metres; a ceramic mug's base).
CUP_WALLS, CUP_WALL, CUP_BASE = 24, 0.004, 0.01
#: A bowl's wall plates, its base's radius as a share of its rim's, the scallops round its rim and their
#: depth (metres: the rim's height varies by twice this).
BOWL_WALLS, BOWL_BASE_SHARE, BOWL_SCALLOPS, BOWL_SCALLOP_DEPTH = 32, 0.6, 8, 0.004

#: Class table: ``GroundTruth.class_id`` indexes this tuple (primitive kinds, then YCB models).
YCB_GRASPABLE = ('004_sugar_box', '005_tomato_soup_can', '006_mustard_bottle', '009_gelatin_box',
                 '010_potted_meat_can', '011_banana', '021_bleach_cleanser', '025_mug',
                 '040_large_marker', '061_foam_brick')
CLASS_NAMES = ('box', 'cylinder', 'sphere', 'capsule', 'ellipsoid') + YCB_GRASPABLE + ('cup', 'bowl')


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene.

    ``kind`` is one of ``OBJECT_KINDS``; ``class_name`` an entry of ``CLASS_NAMES``.
    ``geom_size`` is the MuJoCo geom ``size`` (half-sizes / radius / half-length, metres);
    ``extent`` (3,) the full size of the object's axis-aligned box in its body frame.
    ``pose`` (4, 4) the initial body pose in the world (before settling); ``mass`` in kg;
    ``rgba`` the colour; ``texture`` 'none', 'checker' or 'gradient'; ``velocity`` (3,)
    the scripted world velocity in m/s (zero for static objects). ``vertices``/``faces`` hold
    the convex-hull mesh (body frame, metres) of 'mesh' objects.
    """

    name: str
    kind: str
    class_name: str
    geom_size: Tuple[float, ...]
    extent: Tuple[float, float, float]
    pose: np.ndarray
    mass: float
    rgba: Tuple[float, float, float, float]
    texture: str = 'none'
    texture_rgb2: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    velocity: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    friction: float = 1.0
    vertices: Optional[np.ndarray] = None
    faces: Optional[np.ndarray] = None

    @property
    def class_id(self) -> int:
        """Index of ``class_name`` in ``CLASS_NAMES``."""
        return CLASS_NAMES.index(self.class_name)


def mjcf_vec(v) -> str:
    """A vector as an MJCF attribute value."""
    return ' '.join(f'{float(x):.6f}' for x in v)


def wxyz(rotation: np.ndarray) -> np.ndarray:
    """The (w, x, y, z) quaternion of a rotation matrix (MuJoCo's order)."""
    from robot_vision.geometry import quaternion_from_matrix
    x, y, z, w = quaternion_from_matrix(rotation)
    return np.array([w, x, y, z])


@lru_cache(maxsize=32)
def ycb_hull(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Convex hull of a YCB point model, centred on its bounding box: ((V, 3) vertices, (F, 3) faces).

    Faces are wound counter-clockwise seen from outside (MuJoCo's convention). Raises
    InputError when the shared data (``ycb_posecnn/models``) is absent.
    """
    from scipy.spatial import ConvexHull

    from robot_vision.datasets import load_ycb_model
    points = load_ycb_model(name).astype(np.float64)
    points = points - (points.min(0) + points.max(0)) / 2
    hull = ConvexHull(points)
    used = np.unique(hull.simplices)
    remap = -np.ones(len(points), int)
    remap[used] = np.arange(len(used))
    vertices = points[used]
    faces = remap[hull.simplices]
    # Orient each triangle so that its normal agrees with the hull facet's outward normal.
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    normals = np.cross(b - a, c - a)
    flip = np.einsum('ij,ij->i', normals, hull.equations[:, :3]) < 0
    faces[flip] = faces[flip][:, ::-1]
    return vertices, faces


def ycb_available() -> Optional[str]:
    """None when the YCB point models are in the shared data, else why 'mesh' objects are skipped."""
    from robot_vision.datasets import shared_data_dir
    root = shared_data_dir()
    if root is None or not (root / 'ycb_posecnn' / 'models').is_dir():
        return 'YCB mesh objects skipped: the shared data folder ycb_posecnn/models was not found'
    return None


def random_rotation_z(rng: np.random.Generator) -> np.ndarray:
    """A rotation about the world z axis by a uniformly random angle."""
    yaw = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def draw_object(rng: np.random.Generator, kind: str):
    """Return (kind, class_name, geom_size, extent, mass, vertices, faces, rotation)."""
    vertices = faces = None
    rotation = random_rotation_z(rng)
    if kind == 'box':
        hx, hy = sorted(rng.uniform(0.02, 0.035, 2))
        hx = rng.uniform(hy, 0.06)  # one side may be long; the other fits a 8 cm gripper
        hz = rng.uniform(0.02, 0.06)
        size, extent, class_name = (hx, hy, hz), (2 * hx, 2 * hy, 2 * hz), 'box'
    elif kind == 'cylinder':
        r, h = rng.uniform(0.02, 0.035), rng.uniform(0.025, 0.07)
        size, extent, class_name = (r, h), (2 * r, 2 * r, 2 * h), 'cylinder'
    elif kind == 'sphere':
        r = rng.uniform(0.025, 0.035)
        size, extent, class_name = (r,), (2 * r,) * 3, 'sphere'
    elif kind == 'capsule':
        r, h = rng.uniform(0.018, 0.03), rng.uniform(0.02, 0.05)
        size, extent, class_name = (r, h), (2 * r, 2 * r, 2 * (h + r)), 'capsule'
        # lying on its side: rotate body z into the horizontal plane
        rotation = rotation @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    elif kind == 'ellipsoid':
        a, b, c = rng.uniform(0.025, 0.05), rng.uniform(0.02, 0.033), rng.uniform(0.02, 0.035)
        size, extent, class_name = (a, b, c), (2 * a, 2 * b, 2 * c), 'ellipsoid'
    elif kind == 'cup':  # 6-9 cm across, 7-10 cm high, open at the top
        r, h = rng.uniform(0.03, 0.045), rng.uniform(0.035, 0.05)
        size, extent, class_name = (r, h, CUP_WALL), (2 * r, 2 * r, 2 * h), 'cup'
    elif kind == 'bowl':  # 12-20 cm across at the rim, 5-7 cm high
        r, h = rng.uniform(0.06, 0.1), rng.uniform(0.025, 0.035)
        size, extent, class_name = (r, h, CUP_WALL), (2 * r, 2 * r, 2 * h), 'bowl'
    else:
        class_name = YCB_GRASPABLE[int(rng.integers(len(YCB_GRASPABLE)))]
        vertices, faces = ycb_hull(class_name)
        size = ()
        extent = tuple(vertices.max(0) - vertices.min(0))
    return kind, class_name, size, extent, object_mass(rng, extent), vertices, faces, rotation


def object_mass(rng: np.random.Generator, extent) -> float:
    """Mass in kg of an object with box ``extent`` (m): 300-600 kg/m^3 of its box, within 0.05-0.6 kg."""
    return float(np.clip(float(np.prod(extent)) * rng.uniform(300, 600), 0.05, 0.6))


def resting_half_height(kind: str, extent, rotation: np.ndarray, vertices) -> float:
    """Height of the body origin above the surface an object of this shape and rotation rests on."""
    if kind == 'mesh':
        return float(-(vertices @ rotation.T)[:, 2].min())
    return float((np.abs(rotation) @ (np.asarray(extent) / 2))[2])


def flat_pack(rng: np.random.Generator):
    """A flat box (10-20 x 5-10 cm, 1-2.5 cm high) to lie on a container floor: ``draw_object``'s tuple."""
    half = tuple(float(v) for v in rng.uniform((0.05, 0.025, 0.005), (0.1, 0.05, 0.0125)))
    extent = tuple(2 * v for v in half)
    return 'box', 'box', half, extent, object_mass(rng, extent), None, None, random_rotation_z(rng)


def object_assets(obj: ObjectSpec) -> List[str]:
    """The MJCF asset lines of one object: its material (and texture), its mesh."""
    parts: List[str] = []
    r, g, b, a = obj.rgba
    if obj.texture != 'none':
        t1, t2, t3 = obj.texture_rgb2
        parts.append(f'    <texture name="{obj.name}_tex" type="cube" builtin="{obj.texture}" '
                     f'width="64" height="64" rgb1="{r:.3f} {g:.3f} {b:.3f}" '
                     f'rgb2="{t1:.3f} {t2:.3f} {t3:.3f}"/>')
        parts.append(f'    <material name="{obj.name}_mat" texture="{obj.name}_tex"/>')
    else:
        parts.append(f'    <material name="{obj.name}_mat" rgba="{r:.3f} {g:.3f} {b:.3f} {a:.3f}"/>')
    if obj.kind == 'mesh':
        vert = ' '.join(f'{v:.5f}' for v in np.asarray(obj.vertices).ravel())
        face = ' '.join(str(int(i)) for i in np.asarray(obj.faces).ravel())
        parts.append(f'    <mesh name="{obj.name}_mesh" vertex="{vert}" face="{face}"/>')
    return parts


def object_body(obj: ObjectSpec) -> List[str]:
    """The MJCF worldbody lines of one object: a free body with its geoms."""
    parts: List[str] = []
    p = obj.pose[:3, 3]
    q = wxyz(obj.pose[:3, :3])
    parts.append(f'    <body name="{obj.name}" pos="{mjcf_vec(p)}" quat="{mjcf_vec(q)}">')
    parts.append(f'      <freejoint name="{obj.name}_joint"/>')
    common = f'material="{obj.name}_mat" friction="{obj.friction:.3f} 0.005 0.0001" condim="4"'
    if obj.kind == 'cup':
        parts.extend(_cup_geoms(obj, common))
    elif obj.kind == 'bowl':
        parts.extend(_bowl_geoms(obj, common))
    else:
        size = ' '.join(f'{v:.5f}' for v in obj.geom_size)
        mesh = f' mesh="{obj.name}_mesh"' if obj.kind == 'mesh' else f' size="{size}"'
        parts.append(f'      <geom name="{obj.name}" type="{obj.kind}"{mesh} mass="{obj.mass:.4f}" {common}/>')
    parts.append('    </body>')
    return parts


def _cup_geoms(obj: ObjectSpec, common: str) -> List[str]:
    """A cup's geoms: a ``CUP_BASE`` thick bottom disc and ``CUP_WALLS`` upright wall plates round it (overlapping)."""
    return _vessel_geoms(obj, common, CUP_WALLS, 0.0, obj.geom_size[0], 0.0)


def bowl_wall(radius: float, half_height: float) -> Tuple[float, float]:
    """A bowl's wall: (its tilt from vertical in radians, its base's radius) for its rim ``radius``."""
    base = BOWL_BASE_SHARE * radius
    return float(np.arctan2(radius - base, 2 * half_height)), base


def _bowl_geoms(obj: ObjectSpec, common: str) -> List[str]:
    """A bowl's geoms: a ``CUP_BASE`` thick bottom disc and ``BOWL_WALLS`` plates flaring out to its rim.

    Each plate leans out by :func:`bowl_wall`'s tilt from the base's edge; their heights follow
    ``BOWL_SCALLOPS`` scallops round the rim (+-``BOWL_SCALLOP_DEPTH``), as a scalloped bowl's.
    """
    radius, half_height, _ = obj.geom_size
    tilt, base = bowl_wall(radius, half_height)
    return _vessel_geoms(obj, common, BOWL_WALLS, tilt, base, BOWL_SCALLOP_DEPTH)


def _vessel_geoms(obj: ObjectSpec, common: str, walls: int, tilt: float, base: float,
                  scallop_depth: float) -> List[str]:
    """An open vessel's geoms: a bottom disc of radius ``base`` and ``walls`` plates standing on its edge.

    Each plate leans out by ``tilt`` (radians from vertical; 0: a cup's upright wall) and reaches
    ``2 half_height`` up, more or less ``scallop_depth`` along ``BOWL_SCALLOPS`` scallops round the rim;
    neighbouring plates overlap, so the wall is closed.
    """
    _, half_height, wall = obj.geom_size
    mass = obj.mass / (walls + 1)
    lines = [f'      <geom name="{obj.name}" type="cylinder" size="{base:.5f} {CUP_BASE / 2:.5f}" '
             f'pos="0 0 {CUP_BASE / 2 - half_height:.5f}" mass="{mass:.4f}" {common}/>']
    for k in range(walls):
        angle = 2 * np.pi * k / walls
        height = 2 * half_height + scallop_depth * np.cos(BOWL_SCALLOPS * angle)  # base to rim
        length = height / np.cos(tilt)  # along the slanted wall
        mid = base + 0.5 * height * np.tan(tilt) - wall / 2  # the plate's centre, its outer face on the cone
        half_width = (mid + length / 2 * np.sin(tilt)) * np.tan(np.pi / walls) + wall / 2  # wide at the rim
        z = height / 2 - half_height
        # Turn by ``angle`` about z, then lean out by ``tilt`` about the plate's own tangent (y) axis.
        c, s = np.cos(angle / 2), np.sin(angle / 2)
        ct, st = np.cos(tilt / 2), np.sin(tilt / 2)
        quat = (c * ct, -s * st, c * st, s * ct)
        lines.append(f'      <geom name="{obj.name}_wall{k}" type="box" '
                     f'size="{wall / 2:.5f} {half_width:.5f} {length / 2:.5f}" '
                     f'pos="{mid * np.cos(angle):.5f} {mid * np.sin(angle):.5f} {z:.5f}" '
                     f'quat="{" ".join(f"{q:.6f}" for q in quat)}" mass="{mass:.4f}" {common}/>')
    return lines
