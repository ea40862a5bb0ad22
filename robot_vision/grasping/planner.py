"""Model-free parallel-jaw grasp planning on object point clouds, collision-checked against the scene.

Pipeline (vectorised over the candidates; details and numbers in docs/grasping.md):

1. clean and voxel-downsample the object cloud, estimate surface normals (k-NN PCA) oriented
   towards the sensor;
2. all-pairs antipodal search on a subset: point pairs that fit the opening with both normals
   inside the friction cone give the closing axis x; approach directions z are rotated about x
   around the preferred approach (top-down onto the support, or along the camera ray);
3. per candidate, push the hand in until the palm clearance (or the fingertips' height above
   the support plane) stops it, take the object points in the finger footprint, centre the grasp
   between the extremes along x, and keep it when the width fits and both contact patches are
   antipodal (signed normals, so an unobserved back face cannot pass);
4. best first by score: fingers, palm and the closing region against a voxel occupancy grid of
   the whole scene cloud, clearance, NMS against the grasps already accepted, then an exact
   point-in-box check against the raw scene points and a re-check of width and contacts on the
   raw object points, until top-K grasps are accepted.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree

from robot_vision.errors import ConfigError, InputError
from robot_vision.grasping.gripper import GripperModel
from robot_vision.types import Grasps, Objects3D

#: Objects with at least twice this many (thinned) points pre-screen the palm depth rule on a
#: strided subset of about this many points before checking every point.
PRESCREEN_POINTS = 100


@dataclass(frozen=True)
class GraspSettings:
    """Settings of :func:`plan_grasps` (lengths in metres, angles in degrees); see docs/grasping.md.

    ``num_candidates`` (500): candidates sampled and evaluated per object.
    ``approach_samples`` (6): approach directions per antipodal pair, spread over
    +-``max_approach_deviation_deg`` (90) about the preferred approach.
    ``mu`` (1.0): friction coefficient; contact normals must lie within atan(mu) (45 deg) of
    the closing axis. ``cone_margin_deg`` (0): extra strictness subtracted from that angle.
    ``min_width`` (0.015 m): thinner parts are not grasped (one depth view rarely shows both
    faces of a thin part). ``top_k`` (10): grasps returned per object.
    ``nms_distance`` (0.02 m) / ``nms_angle_deg`` (30): a grasp closer than both to a better one
    is suppressed. ``approach_direction`` (None): preferred approach vector in the scene frame;
    None means "towards the support" (-support normal) when a support plane/normal is given,
    else along the camera ray to the object. ``approach_weight`` (0.3), ``antipodal_weight``
    (1.0), ``contact_weight`` (0.5), ``clearance_weight`` (0.3): score weights (the score is
    their weighted mean, in [0, 1]). ``seed`` (0): the output is deterministic for a seed.
    ``object_voxel`` (0.004 m): object downsampling. ``collision_voxel`` (0.005 m): occupancy
    grid cell. ``normal_neighbours`` (10): k of the k-NN normals on the voxel cloud;
    ``raw_neighbours`` (20): k of the k-NN normals on the raw points at the final contacts.
    ``min_object_points`` (30): fewer finite object points give an empty result.
    ``max_object_points`` (800): the voxel cloud is randomly thinned to this many points.
    ``pair_points`` (400): points of the all-pairs antipodal search that seeds the candidates.
    ``min_object_thickness`` (0.005 m): thinner along the thinnest principal axis = planar.
    ``contact_band`` (0.005 m): object points this close to an extreme along x are contact
    points. ``min_contact_points`` (2): contact points per finger whose normal must lie in the
    friction cone. ``finger_gap`` (0.002 m): least free space between each finger and the object
    at the pre-grasp opening. ``clearance_margin`` (0.01 m): distance around the fingers in which
    scene points lower the clearance score. ``min_insertion`` (0.01 m): the contact pair must lie
    at least this far behind the fingertips once the hand is pushed in as far as allowed.
    ``max_objects`` (8): :func:`plan_scene_grasps` plans at most this many objects per call, those
    with the most points first (on real scenes the certified grasps are on the well observed
    objects, rarely on fragments); 0 plans every object. Each object costs a few milliseconds even
    when nothing fits, so this bounds the time per frame in clutter.
    ``reuse_distance`` (0.03 m) applies to streams
    (:class:`robot_vision.grasping.stream.StreamGraspPlanner`: the nodes and bag replay): an object
    whose centroid moved less than this since the previous frame keeps its grasps, moved with it
    and checked again on the new frame (every check after the search: collisions, clearance, NMS,
    the exact point-in-box test and the raw contacts), instead of a new search; one such object
    per frame, the one searched longest ago, is searched again. 0 searches every object in every
    frame.
    """

    num_candidates: int = 500
    approach_samples: int = 6
    max_approach_deviation_deg: float = 90.0
    mu: float = 1.0
    cone_margin_deg: float = 0.0
    min_width: float = 0.015
    top_k: int = 10
    nms_distance: float = 0.02
    nms_angle_deg: float = 30.0
    approach_direction: Optional[Tuple[float, float, float]] = None
    approach_weight: float = 0.3
    antipodal_weight: float = 1.0
    contact_weight: float = 0.5
    clearance_weight: float = 0.3
    seed: int = 0
    object_voxel: float = 0.004
    collision_voxel: float = 0.005
    normal_neighbours: int = 10
    raw_neighbours: int = 20
    min_object_points: int = 30
    max_object_points: int = 800
    pair_points: int = 400
    min_object_thickness: float = 0.005
    contact_band: float = 0.005
    min_contact_points: int = 2
    finger_gap: float = 0.002
    clearance_margin: float = 0.01
    min_insertion: float = 0.01
    max_objects: int = 8
    reuse_distance: float = 0.03

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        for name, low in (('num_candidates', 1), ('approach_samples', 1), ('top_k', 1),
                          ('normal_neighbours', 3), ('raw_neighbours', 3), ('min_object_points', 3),
                          ('max_object_points', 10), ('pair_points', 10), ('min_contact_points', 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f'GraspSettings.{name}: expected an integer >= {low}, got {value!r}')
        for name in ('seed', 'max_objects'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f'GraspSettings.{name}: expected a non-negative integer, got {value!r}')
        positive = ('mu', 'nms_distance', 'object_voxel', 'collision_voxel', 'contact_band')
        non_negative = ('approach_weight', 'antipodal_weight', 'contact_weight', 'clearance_weight',
                        'min_object_thickness', 'finger_gap', 'clearance_margin', 'nms_angle_deg',
                        'min_insertion', 'cone_margin_deg', 'min_width', 'reuse_distance')
        for name in positive + non_negative:
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
            ok = ok and np.isfinite(value) and (value > 0 if name in positive else value >= 0)
            if not ok:
                kind = 'positive' if name in positive else 'non-negative'
                raise ConfigError(f'GraspSettings.{name}: expected a {kind} number, got {value!r}')
        if not 0 < self.max_approach_deviation_deg <= 180:
            raise ConfigError(f'GraspSettings.max_approach_deviation_deg: expected (0, 180], '
                              f'got {self.max_approach_deviation_deg!r}')
        if self.antipodal_weight + self.contact_weight + self.clearance_weight + self.approach_weight <= 0:
            raise ConfigError('GraspSettings: expected at least one positive score weight, got all zero')
        if not (self.collision_voxel <= 0.05 and self.object_voxel <= 0.05):
            raise ConfigError(f'GraspSettings.collision_voxel/object_voxel: expected <= 0.05 m, '
                              f'got {self.collision_voxel} / {self.object_voxel}')
        if self.approach_direction is not None:
            vec = np.asarray(self.approach_direction, np.float64)
            if vec.shape != (3,) or not np.all(np.isfinite(vec)) or np.linalg.norm(vec) < 1e-9:
                raise ConfigError(f'GraspSettings.approach_direction: expected None or a non-zero '
                                  f'3-vector, got {self.approach_direction!r}')
            object.__setattr__(self, 'approach_direction', tuple(float(v) for v in vec))


@dataclass
class GraspResult:
    """Output of the planner.

    ``grasps``: the accepted grasps, best first per object (poses are TCP poses in the scene
    frame, i.e. grasp frame @ ``gripper.tcp_offset``; ``width`` is the object width between the
    contacts in metres). ``reason``: 'ok', or why no grasp was found. ``candidates_evaluated``:
    candidates sampled and checked. ``timings_ms``: wall time per stage. ``rejected``: how many
    candidates each check removed. ``skipped_objects``: rows that :func:`plan_scene_grasps` did
    not plan because of ``max_objects``.
    """

    grasps: Grasps
    reason: str
    candidates_evaluated: int = 0
    timings_ms: Dict[str, float] = field(default_factory=dict)
    rejected: Dict[str, int] = field(default_factory=dict)
    skipped_objects: List[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when at least one grasp was found."""
        return len(self.grasps) > 0


def plan_grasps(object_points: np.ndarray, scene_points: np.ndarray,
                gripper: GripperModel = GripperModel(), settings: GraspSettings = GraspSettings(),
                support_normal: Optional[np.ndarray] = None,
                viewpoint: Optional[np.ndarray] = (0.0, 0.0, 0.0)) -> GraspResult:
    """Plan parallel-jaw grasps for one object.

    ``object_points``: (N, 3) float points of the object (metres, scene/camera frame; NaN rows
    are dropped). ``scene_points``: (M, 3) or organized (H, W, 3) points of the whole scene in the
    same frame (support surface and neighbours included; NaN allowed); the object points are
    treated as obstacles too. ``support_normal``: optional unit 3-vector of the support plane's
    normal pointing away from the surface ("up"), e.g. ``plane[:3]`` of a segmentation.
    Returns a :class:`GraspResult` whose ``grasps`` have ``object_index`` 0. Degenerate input
    (empty, too few points, planar, all NaN, nothing fits) gives an empty result with a reason;
    arrays of the wrong shape raise InputError.
    """
    obj = _as_points(object_points, 'object_points')
    scene = _as_points(scene_points, 'scene_points')
    normal = _as_direction(support_normal, 'support_normal')
    view = _as_viewpoint(viewpoint)
    return _planner(gripper, settings).plan(obj, scene, normal, view)


def plan_scene_grasps(objects: Objects3D, scene_points: np.ndarray,
                      gripper: GripperModel = GripperModel(), settings: GraspSettings = GraspSettings(),
                      support_normal: Optional[np.ndarray] = None,
                      object_indices: Optional[Sequence[int]] = None,
                      viewpoint: Optional[np.ndarray] = (0.0, 0.0, 0.0)) -> GraspResult:
    """Plan grasps for every object of ``objects`` (or the rows in ``object_indices``).

    Uses each object's ``points`` cloud; other arguments as in :func:`plan_grasps`. Grasps are
    ordered by object row, then by descending score, and carry their row in ``object_index``.
    At most ``settings.max_objects`` rows are planned (when non-zero): those with the most
    points (ties: the lower row); the others are listed in ``skipped_objects``. ``reason`` is
    'ok' when any object got a grasp, otherwise the per-object reasons joined. ``timings_ms``
    and ``rejected`` are summed over the objects.
    """
    scene = _as_points(scene_points, 'scene_points')
    normal = _as_direction(support_normal, 'support_normal')
    view = _as_viewpoint(viewpoint)
    rows, skipped = planned_rows(objects, object_indices, settings)
    planner = _planner(gripper, settings)
    results = [planner.plan(_as_points(objects.points[row], f'objects.points[{row}]'), scene, normal, view)
               for row in rows]
    return scene_result(rows, results, skipped, settings)


def planned_rows(objects: Objects3D, object_indices: Optional[Sequence[int]],
                 settings: GraspSettings) -> Tuple[List[int], List[int]]:
    """The rows of ``objects`` to plan (``object_indices`` or all, at most ``max_objects``) and those skipped."""
    if not isinstance(objects, Objects3D):
        raise InputError(f'objects: expected Objects3D, got {type(objects).__name__}')
    if object_indices is None:
        rows = list(range(len(objects)))
    else:
        rows = [int(i) for i in object_indices]
        bad = [i for i in rows if not 0 <= i < len(objects)]
        if bad:
            raise InputError(f'object_indices: expected rows in [0, {len(objects)}), got {bad}')
    if settings.max_objects and len(rows) > settings.max_objects:
        return _select_objects(objects, rows, settings.max_objects)
    return rows, []


def scene_result(rows: Sequence[int], results: Sequence[GraspResult], skipped: List[int],
                 settings: GraspSettings) -> GraspResult:
    """Combine the per-object results of ``rows`` as :func:`plan_scene_grasps` returns them."""
    parts: List[Grasps] = []
    reasons: List[str] = []
    timings: Dict[str, float] = {}
    rejected: Dict[str, int] = {}
    evaluated = 0
    for row, result in zip(rows, results):
        grasps = result.grasps
        parts.append(Grasps(grasps.pose, grasps.width, grasps.score, np.full(len(grasps), row, np.int32)))
        if not result.ok:
            reasons.append(f'object {row}: {result.reason}')
        evaluated += result.candidates_evaluated
        for key, value in result.timings_ms.items():
            timings[key] = timings.get(key, 0.0) + value
        for key, value in result.rejected.items():
            rejected[key] = rejected.get(key, 0) + value
    grasps = Grasps.concatenate(parts) if parts else Grasps.empty()
    if not rows:
        reason = 'no objects selected'
    elif len(grasps):
        reason = 'ok'
    else:
        reason = '; '.join(reasons)
        if skipped:
            reason += f'; objects {skipped} not planned (max_objects {settings.max_objects})'
    return GraspResult(grasps, reason, evaluated, timings, rejected, skipped)


def _select_objects(objects: Objects3D, rows: List[int], count: int) -> Tuple[List[int], List[int]]:
    """Split ``rows`` into the ``count`` with the most points (to plan) and the rest, each in row order."""
    index = np.asarray(rows)
    sizes = np.array([len(objects.points[row]) for row in rows])
    order = np.lexsort((index, -sizes))
    return sorted(index[order[:count]].tolist()), sorted(index[order[count:]].tolist())


# ----------------------------------------------------------------------------------------------
# Input helpers


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(points)
    if array.dtype.kind not in 'fiu':
        raise InputError(f'{name}: expected a float array of points, got dtype {array.dtype}')
    if array.size == 0:
        return np.zeros((0, 3), np.float32)
    if array.ndim == 3 and array.shape[2] == 3:
        array = array.reshape(-1, 3)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f'{name}: expected shape (N, 3) or (H, W, 3), got {array.shape}')
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_direction(vector: Optional[np.ndarray], name: str) -> Optional[np.ndarray]:
    """Return None, a unit normal (3,) or a normalised plane (4,) [n, d] with |n| = 1."""
    if vector is None:
        return None
    vec = np.asarray(vector, np.float64).reshape(-1)
    if vec.shape not in ((3,), (4,)) or not np.all(np.isfinite(vec)) or np.linalg.norm(vec[:3]) < 1e-9:
        raise InputError(f'{name}: expected a finite non-zero 3-vector or a plane [a, b, c, d], '
                         f'got {vector!r}')
    return vec / np.linalg.norm(vec[:3])


def _as_viewpoint(viewpoint: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if viewpoint is None:
        return None
    view = np.asarray(viewpoint, np.float64).reshape(-1)
    if view.shape != (3,) or not np.all(np.isfinite(view)):
        raise InputError(f'viewpoint: expected None or a finite 3-vector, got {viewpoint!r}')
    return view


def _empty(reason: str, evaluated: int = 0, timings: Optional[Dict[str, float]] = None,
           rejected: Optional[Dict[str, int]] = None) -> GraspResult:
    return GraspResult(Grasps.empty(), reason, evaluated, dict(timings or {}), dict(rejected or {}))


def _voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """Keep the first point of each occupied voxel, in a deterministic (cell) order.

    The grid starts at the cloud's minimum corner. Column by column (reductions along axis 0 of
    an (N, 3) array are slow) around a stable sort of the packed cell keys.
    """
    flat = np.zeros(len(points), np.int64)
    for column in points.T:
        cell = np.floor((column - column.min()) / voxel).astype(np.int64)
        flat *= int(cell.max()) + 1
        flat += cell
    order = np.argsort(flat, kind='stable')
    ordered = flat[order]
    first = np.empty(len(order), bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return points[order[first]]


def _column_counts(mask: np.ndarray) -> np.ndarray:
    """True values per column of a 2D bool array (2x faster than ``np.count_nonzero(axis=0)``)."""
    return mask.view(np.uint8).sum(axis=0, dtype=np.int32)


def _kdtree(points: np.ndarray) -> cKDTree:
    """k-d tree for a few nearest-neighbour queries: unbalanced, uncompacted nodes build 2x faster."""
    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def _normals(points: np.ndarray, support: np.ndarray, k: int, viewpoint: Optional[np.ndarray],
             tree: cKDTree) -> np.ndarray:
    """Unit normals at ``points`` by PCA of their k nearest ``support`` points, towards ``viewpoint``.

    ``tree`` is a k-d tree of ``support``.

    A single depth view only sees surfaces that face the sensor, so orienting towards it is
    right for every observed point; without a viewpoint they point away from the centroid.

    The smallest eigenvector of each 3x3 covariance comes in closed form (trigonometric
    eigenvalue, then the cross product of two rows of C - lambda I) on the six covariance entries
    as separate arrays, which is several times faster than a batched ``eigh`` on a thousand
    matrices.
    """
    k = min(k, len(support))
    _, idx = tree.query(points, k=k)
    # Covariance entries from the neighbours' coordinates one axis at a time ((N, k) each):
    # 3x faster than an (N, k, 3) x (N, k, 3) einsum.
    centred = []
    for axis in range(3):
        coord = support[:, axis][idx]
        centred.append(coord - coord.mean(axis=1, keepdims=True))
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    normals = _smallest_eigenvector(*(np.einsum('nk,nk->n', centred[i], centred[j]) / k for i, j in pairs))
    outward = points - support.mean(0) if viewpoint is None else viewpoint - points
    flip = np.einsum('ij,ij->i', normals, outward) < 0
    normals[flip] *= -1
    return normals


def _smallest_eigenvector(a00: np.ndarray, a11: np.ndarray, a22: np.ndarray, a01: np.ndarray, a02: np.ndarray,
                          a12: np.ndarray) -> np.ndarray:
    """Unit eigenvector (N, 3) of the smallest eigenvalue of symmetric 3x3 matrices given by their entries (N,)."""
    q = (a00 + a11 + a22) / 3
    d0, d1, d2 = a00 - q, a11 - q, a22 - q
    p = np.sqrt((d0 ** 2 + d1 ** 2 + d2 ** 2 + 2 * (a01 ** 2 + a02 ** 2 + a12 ** 2)) / 6)
    inv = 1.0 / np.where(p > 1e-18, p, 1.0)
    # det(B) / 2 with B = (A - q I) / p gives the angle of the eigenvalues.
    b00, b11, b22, b01, b02, b12 = d0 * inv, d1 * inv, d2 * inv, a01 * inv, a02 * inv, a12 * inv
    det = b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)
    smallest = q + 2 * p * np.cos(np.arccos(np.clip(det / 2, -1.0, 1.0)) / 3 + 2 * np.pi / 3)
    m00, m11, m22 = a00 - smallest, a11 - smallest, a22 - smallest
    # Rows r0 = (m00, a01, a02), r1 = (a01, m11, a12), r2 = (a02, a12, m22) of A - lambda I: the
    # eigenvector is the longest of their pairwise cross products.
    cross = np.stack([np.stack([a01 * a12 - a02 * m11, a02 * a01 - m00 * a12, m00 * m11 - a01 * a01]),
                      np.stack([a01 * m22 - a02 * a12, a02 * a02 - m00 * m22, m00 * a12 - a01 * a02]),
                      np.stack([m11 * m22 - a12 * a12, a12 * a02 - a01 * m22, a01 * a12 - m11 * a02])])
    norms = np.sqrt((cross ** 2).sum(axis=1))  # (3, N)
    best = np.argmax(norms, axis=0)
    columns = np.arange(len(a00))
    vec = cross[best, :, columns]
    length = norms[best, columns]
    degenerate = length < 1e-30
    vec[degenerate] = (0.0, 0.0, 1.0)
    length[degenerate] = 1.0
    return vec / length[:, None]


def _box_lattice(lo: Sequence[float], hi: Sequence[float], step: float, surface: bool = False) -> np.ndarray:
    """Points of a regular lattice filling the box [lo, hi] (or only its faces) with spacing <= step."""
    axes = [np.linspace(a, b, max(2, int(math.ceil((b - a) / step)) + 1)) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1).reshape(-1, 3)
    if surface:
        on = np.zeros(len(grid), bool)
        for axis in range(3):
            on |= np.isclose(grid[:, axis], lo[axis]) | np.isclose(grid[:, axis], hi[axis])
        grid = grid[on]
    return grid


def _to_local(points_t: np.ndarray, rot: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Coordinates (3, N) float32 in the grasp frame (axes = columns of ``rot``, at ``origin``) of points (3, N)."""
    diff = points_t - origin.astype(np.float32)[:, None]
    return np.einsum('ji,jn->in', rot.astype(np.float32), diff)


class _LazyNormals:
    """Normals of the raw object points (as :func:`_normals`), computed on first use and kept."""

    def __init__(self, points: np.ndarray, k: int, viewpoint: Optional[np.ndarray]) -> None:
        self.points, self.k, self.viewpoint = points, k, viewpoint
        self.tree = _kdtree(points)
        self.normals = np.zeros_like(points)
        self.known = np.zeros(len(points), bool)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Unit normals (len(rows), 3) of the points at ``rows``."""
        missing = rows[~self.known[rows]]
        if len(missing):
            self.normals[missing] = _normals(self.points[missing], self.points, self.k, self.viewpoint, self.tree)
            self.known[missing] = True
        return self.normals[rows]


class _Grid:
    """Dense boolean voxel occupancy over an axis-aligned box of the scene."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, voxel: float) -> None:
        self.voxel = voxel
        self.lo = lo.astype(np.float32)
        self.dims = np.maximum(np.ceil((hi - lo) / voxel).astype(np.int64), 1)
        self.occupied = np.zeros(int(np.prod(self.dims)), bool)

    @property
    def hi(self) -> np.ndarray:
        """The box's upper corner (exclusive)."""
        return self.lo + self.dims * self.voxel

    def crop(self, points: np.ndarray) -> np.ndarray:
        """Return the points inside the grid box, in their order (NaN rows drop out).

        The depth slab is tested first, so x and y are only tested on the points inside it.
        """
        hi = self.hi
        z = points[:, 2]
        slab = z >= self.lo[2]
        slab &= z < hi[2]
        points = np.compress(slab, points, axis=0)  # faster than boolean indexing of an (N, 3) array
        x, y = points[:, 0], points[:, 1]
        mask = x >= self.lo[0]
        mask &= x < hi[0]
        mask &= y >= self.lo[1]
        mask &= y < hi[1]
        return np.compress(mask, points, axis=0)

    def flat(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Flat cell index of each point (..., 3) and whether the point lies inside the grid (column by column)."""
        flat = np.zeros(points.shape[:-1], np.int64)
        inside = np.ones(points.shape[:-1], bool)
        for axis in range(3):
            cell = np.floor((points[..., axis] - self.lo[axis]) * (1.0 / self.voxel)).astype(np.int64)
            size = int(self.dims[axis])
            inside &= cell >= 0
            inside &= cell < size
            np.clip(cell, 0, size - 1, out=cell)
            flat *= size
            flat += cell
        return flat, inside

    def mark_inside(self, points: np.ndarray) -> None:
        """Mark the cells of ``points`` that are known to lie inside the box (see :meth:`crop`)."""
        idx = ((points - self.lo) * np.float32(1.0 / self.voxel)).astype(np.int64)
        np.minimum(idx, self.dims - 1, out=idx)
        self.occupied[(idx[:, 0] * self.dims[1] + idx[:, 1]) * self.dims[2] + idx[:, 2]] = True

    def mark(self, points: np.ndarray) -> np.ndarray:
        """Mark the cells of the ``points`` inside the box as occupied; returns their flat indices."""
        flat, inside = self.flat(points)
        cells = flat[inside]
        self.occupied[cells] = True
        return cells


@lru_cache(maxsize=4)
def _upper_triangle(m: int) -> np.ndarray:
    """(m, m) bool, True above the diagonal (read-only, shared)."""
    upper = np.triu(np.ones((m, m), bool), 1)
    upper.setflags(write=False)
    return upper


@lru_cache(maxsize=8)
def _cached_planner(gripper: GripperModel, settings: GraspSettings) -> _Planner:
    return _Planner(gripper, settings)


def _planner(gripper: GripperModel, settings: GraspSettings) -> _Planner:
    """Planner for a (gripper, settings) pair; cached because building the lattices takes time."""
    if not isinstance(gripper, GripperModel):
        raise ConfigError(f'gripper: expected GripperModel, got {type(gripper).__name__}')
    if not isinstance(settings, GraspSettings):
        raise ConfigError(f'settings: expected GraspSettings, got {type(settings).__name__}')
    return _cached_planner(gripper, settings)


class _Planner:
    """One planner configuration; ``plan`` handles one object."""

    def __init__(self, gripper: GripperModel, settings: GraspSettings) -> None:
        self.g = gripper
        self.s = settings
        g, v = gripper, settings.collision_voxel
        fd = g.finger_depth
        # Finger lattice for one finger with its inner face at x = 0, extending to +x.
        finger_lo = (0.0, -g.finger_width / 2, -fd)
        finger_hi = (g.finger_thickness, g.finger_width / 2, 0.0)
        self.finger = _box_lattice(finger_lo, finger_hi, v)
        # Palm plus clearance slab in front of it plus the approach corridor behind it.
        self.palm_lo = np.array([-g.palm_width / 2, -g.palm_thickness / 2,
                                 -fd - g.palm_depth - g.approach_clearance])
        # The palm box itself (the clearance in front of it is enforced on the object when the
        # grasp depth is chosen; one voxel of it is also in the grid check below).
        self.palm_hi = np.array([g.palm_width / 2, g.palm_thickness / 2, -fd])
        self.palm = _box_lattice(self.palm_lo, self.palm_hi, 4 * v, surface=True)  # coarse: a filter only
        # Closing region, x in units of the half opening (scaled per candidate).
        # (a coarse 2-voxel spacing: it looks for neighbours or the support between the fingers)
        nx = max(2, int(math.ceil(g.max_opening / (2 * v))) + 1)
        ny = max(2, int(math.ceil(g.finger_width / (2 * v))) + 1)
        ys = np.linspace(-g.finger_width / 2, g.finger_width / 2, ny)
        zs = np.linspace(-fd, 0.0, max(2, int(math.ceil(fd / (2 * v))) + 1))
        xs = np.linspace(-1.0, 1.0, nx)
        self.closing = np.stack(np.meshgrid(xs, ys, zs, indexing='ij'), axis=-1).reshape(-1, 3)
        # Clearance shell: coarse finger lattice shifted outward / sideways / beyond the tip.
        coarse = _box_lattice(finger_lo, finger_hi, 0.01)
        m = settings.clearance_margin
        self.shell = np.concatenate([coarse + [m, 0, 0], coarse + [0, m, 0], coarse - [0, m, 0],
                                     coarse + [0, 0, m]])
        self.cos_cone = math.cos(max(math.atan(settings.mu) - math.radians(settings.cone_margin_deg), 0.0))

    # ------------------------------------------------------------------------------------------
    def plan(self, obj: np.ndarray, scene: Any, support_normal: Optional[np.ndarray],
             viewpoint: Optional[np.ndarray]) -> GraspResult:
        """Plan grasps for one object cloud against one scene (see :func:`plan_grasps`).

        ``scene``: (N, 3) points, or a :class:`~robot_vision.grasping.workers.SceneCloud`.
        """
        g, s = self.g, self.s
        timings: Dict[str, float] = {}
        rejected: Dict[str, int] = {}
        t0 = start_time = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t0
            now = time.perf_counter()
            timings[name] = (now - t0) * 1e3
            t0 = now

        if len(obj) == 0:
            return _empty('object cloud is empty')
        obj = np.compress(np.isfinite(obj[:, 0]) & np.isfinite(obj[:, 1]) & np.isfinite(obj[:, 2]), obj, axis=0)
        if len(obj) < s.min_object_points:
            return _empty(f'too few object points: {len(obj)} finite points, need at least '
                          f'{s.min_object_points} (min_object_points)')
        dense = pts = _voxel_downsample(obj.astype(np.float64), s.object_voxel)
        if len(pts) > s.max_object_points:
            thin = np.random.default_rng(s.seed).choice(len(pts), s.max_object_points, replace=False)
            pts = pts[np.sort(thin)]
        if len(pts) < max(3, s.min_object_points // 4):
            return _empty(f'object cloud too small: {len(pts)} voxels of {s.object_voxel} m')
        centroid = pts.mean(0)
        centred = pts - centroid
        _, axes = np.linalg.eigh(np.einsum('ni,nj->ij', centred, centred))
        thickness = float(np.ptp(np.einsum('ni,i->n', centred, axes[:, 0])))
        if thickness < s.min_object_thickness:
            return _empty(f'object cloud is planar: {thickness:.4f} m thick along its thinnest axis, '
                          f'less than min_object_thickness {s.min_object_thickness} m')
        tree = _kdtree(dense)
        normals = _normals(pts, dense, s.normal_neighbours, viewpoint, tree)
        lap('normals')

        # ---- candidates
        if s.approach_direction is not None:
            preferred = np.asarray(s.approach_direction, np.float64)
            preferred = preferred / np.linalg.norm(preferred)
        elif support_normal is not None:
            preferred = -support_normal[:3]
        else:
            preferred = centroid / max(np.linalg.norm(centroid), 1e-9)
        rng = np.random.default_rng(s.seed)
        n_rot = s.approach_samples
        n_anchor = int(math.ceil(s.num_candidates / n_rot))
        axis, centre, half, pairs, too_wide = self._antipodal_axes(pts, normals, n_anchor, rng, preferred)
        if pairs == 0 and too_wide > 0:
            return _empty(f'object wider than the gripper: {too_wide} antipodal point pairs, all wider '
                          f'than max_opening {g.max_opening} m minus 2 finger_gap', 0, timings, rejected)
        x = np.repeat(axis, n_rot, axis=0)[:s.num_candidates]
        p = np.repeat(centre, n_rot, axis=0)[:s.num_candidates]
        half = np.repeat(half, n_rot)[:s.num_candidates]
        k_total = len(x)
        z0 = preferred - np.einsum('ki,i->k', x, preferred)[:, None] * x
        weak = np.linalg.norm(z0, axis=1) < 0.2
        if np.any(weak):
            helper = np.eye(3)[np.argmin(np.abs(x[weak]), axis=1)]
            z0[weak] = helper - np.einsum('ij,ij->i', helper, x[weak])[:, None] * x[weak]
        z0 /= np.linalg.norm(z0, axis=1, keepdims=True)
        y0 = np.cross(z0, x)
        dev = math.radians(s.max_approach_deviation_deg)
        base = np.linspace(-dev, dev, n_rot) if n_rot > 1 else np.zeros(1)
        step = 2 * dev / max(n_rot - 1, 1)
        phi = np.tile(base, n_anchor)[:k_total] + rng.uniform(-step / 2, step / 2, k_total) * (n_rot > 1)
        phi = np.clip(phi, -dev, dev)
        z = np.cos(phi)[:, None] * z0 + np.sin(phi)[:, None] * y0
        y = np.cross(z, x)
        rot = np.stack([x, y, z], axis=-1)  # columns = grasp axes in the scene frame
        need = None
        if support_normal is not None and len(support_normal) == 4:
            # Stop the fingertips a voxel above the support plane when approaching it: the hand
            # must retreat at least ``need`` along -z. Candidates that the support alone keeps
            # from reaching min_insertion are rejected before the (points x candidates) work.
            n_up = support_normal[:3]
            height = np.einsum('kc,c->k', p, n_up) + support_normal[3]
            zn = np.einsum('kc,c->k', z, n_up)
            outer = np.minimum(half + g.opening_margin / 2 + 0.01, g.max_opening / 2) + g.finger_thickness
            lateral = (np.abs(np.einsum('kc,c->k', x, n_up)) * outer
                       + np.abs(np.einsum('kc,c->k', y, n_up)) * g.finger_width / 2)
            need = np.where(zn < -1e-3, (s.collision_voxel + 1e-3 + lateral - height) / np.maximum(-zn, 1e-9),
                            -np.inf)
            possible = need <= -s.min_insertion
            rejected['beyond_fingertips'] = int(np.sum(~possible))
            if not possible.all():
                x, y, z, p, half, rot, need = (a[possible] for a in (x, y, z, p, half, rot, need))
        lap('candidates')

        # ---- finger footprint on the object: depth, width, centring, antipodality
        # Layout (N, K): object points along axis 0, candidates along axis 1, float32. einsum
        # rather than matmul: BLAS threading costs milliseconds on these small products.
        homog = np.concatenate([pts, np.ones((len(pts), 1))], axis=1).astype(np.float32)
        proj = np.empty((3, 4, len(x)), np.float32)
        proj[:, :3, :] = rot.transpose(2, 1, 0)
        proj[:, 3, :] = -np.einsum('kj,kjc->ck', p, rot)
        # Depth: push the hand in until the object point nearest to the palm (inside the palm's
        # x-y outline) touches the palm clearance plane; the pair must then sit at least
        # min_insertion behind the fingertips, else the fingers cannot reach it. The hand
        # retreats back = palm_back - top along -z, where top is that point's z.
        palm_back = -g.finger_depth + max(g.palm_clearance, s.collision_voxel) + 1e-3
        stride = len(pts) // PRESCREEN_POINTS
        if stride >= 2:
            # Exact pre-screen on a strided subset: its nearest point bounds top from above, so
            # a candidate whose subset already pushes the pair beyond the fingertips is out.
            top_sub = self._palm_top(homog[::stride], proj)[3]
            ok = palm_back - top_sub <= -s.min_insertion
            rejected['beyond_fingertips'] = rejected.get('beyond_fingertips', 0) + int(np.sum(~ok))
            if not ok.all():
                x, y, z, p, half, rot = (a[ok] for a in (x, y, z, p, half, rot))
                need = None if need is None else need[ok]
                proj = np.ascontiguousarray(proj[:, :, ok])
        if not len(x):
            return _empty(self._reason(rejected, np.zeros(0), k_total), k_total, timings, rejected)
        lx, abs_ly, lz, top = self._palm_top(homog, proj)  # pair centre at 0
        back = palm_back - top
        if need is not None:
            back = np.maximum(back, need)
        reach = back <= -s.min_insertion
        rejected['beyond_fingertips'] = rejected.get('beyond_fingertips', 0) + int(np.sum(~reach))
        back = np.where(reach, back, 0.0)
        origin = p - z * back[:, None]
        lz += (back + g.finger_depth / 2).astype(np.float32)[None, :]  # from the finger middle
        foot = abs_ly <= np.float32(g.finger_width / 2)
        foot &= np.abs(lz) <= np.float32(g.finger_depth / 2)
        foot &= reach[None, :]
        count = _column_counts(foot)
        big = (~foot) * np.float32(1e6)
        xmin = (lx + big).min(axis=0).astype(np.float64)
        xmax = (lx - big).max(axis=0).astype(np.float64)
        width = np.where(count > 0, xmax - xmin, np.inf)
        keep = reach & (count >= 2 * s.min_contact_points)
        rejected['no_points_between_fingers'] = int(np.sum(reach & ~keep))
        # The two contact patches must not overlap (width >= 2 contact_band): a noisy single face
        # looks a few millimetres thick and would otherwise pass as a thin object.
        min_width = max(g.min_opening, 2 * s.contact_band, s.min_width)
        fits = keep & (width >= min_width) & (width <= g.max_opening - 2 * s.finger_gap)
        rejected['width'] = int(np.sum(keep & ~fits))
        keep = fits
        band = np.float32(s.contact_band)
        side_a = foot & (lx <= np.where(keep, xmin, -np.inf).astype(np.float32) + band)
        side_b = foot & (lx >= np.where(keep, xmax, np.inf).astype(np.float32) - band)
        # A contact point is in the friction cone when its outward normal lies within atan(mu)
        # of -x (at the -x contact) or +x (at the +x contact). Signed, so a single visible face
        # whose hidden back side was never observed cannot pass as a thin object.
        x_t = np.ascontiguousarray(x.T, np.float32)
        align = np.einsum('nc,ck->nk', normals.astype(np.float32), x_t)  # (N, K) cos(normal, x)
        n_a, n_b = _column_counts(side_a), _column_counts(side_b)
        cone = np.float32(self.cos_cone)
        good_a = _column_counts(side_a & (align <= -cone))
        good_b = _column_counts(side_b & (align >= cone))
        quality = np.minimum(good_a / np.maximum(n_a, 1), good_b / np.maximum(n_b, 1))
        # ... and the mean normal of each patch must be inside the cone too (robust to a few
        # noisy normals that fall into the cone by chance).
        n_cols = np.ascontiguousarray(normals.T, np.float32)
        fa, fb = side_a.astype(np.float32), side_b.astype(np.float32)
        mean_a = np.stack([np.einsum('nk,n->k', fa, n_cols[c]) for c in range(3)], axis=1)
        mean_b = np.stack([np.einsum('nk,n->k', fb, n_cols[c]) for c in range(3)], axis=1)
        cos_a = -np.einsum('kc,kc->k', mean_a, x) / np.maximum(np.linalg.norm(mean_a, axis=1), 1e-9)
        cos_b = np.einsum('kc,kc->k', mean_b, x) / np.maximum(np.linalg.norm(mean_b, axis=1), 1e-9)
        antipodal = keep & (np.minimum(good_a, good_b) >= s.min_contact_points)
        antipodal &= np.minimum(cos_a, cos_b) >= self.cos_cone
        rejected['friction_cone'] = int(np.sum(keep & ~antipodal))
        keep = antipodal
        shift = np.where(keep, (xmin + xmax) / 2, 0.0)
        origin = origin + x * shift[:, None]
        opening = g.pregrasp_opening(np.where(keep, width, 0.0))
        lap('footprint')

        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            return _empty(self._reason(rejected, width, k_total), k_total, timings, rejected)

        # ---- pre-score (everything but clearance), best first
        r_all, o_all, op_all = rot[idx], origin[idx], opening[idx]
        q_anti = np.clip(quality[idx], 0, 1)
        expected = g.finger_width * g.finger_depth / (s.object_voxel ** 2)
        q_contact = np.clip(np.minimum(n_a[idx], n_b[idx]) / max(0.25 * expected, 1.0), 0, 1)
        q_approach = (1.0 + np.einsum('ki,i->k', r_all[:, :, 2], preferred)) / 2
        weights = np.array([s.antipodal_weight, s.contact_weight, s.clearance_weight, s.approach_weight])
        partial = (weights[0] * q_anti + weights[1] * q_contact + weights[3] * q_approach) / weights.sum()

        acc = self._accept(obj, scene, viewpoint, r_all, o_all, op_all, partial, idx, True, rejected, lap)
        if acc is None:
            return _empty(self._reason(rejected, width, k_total), k_total, timings, rejected)
        timings['total'] = (time.perf_counter() - start_time) * 1e3
        return GraspResult(self._grasps(*acc), 'ok', k_total, timings, rejected)

    def reverify(self, obj: np.ndarray, scene: Any, grasps: Grasps,
                 viewpoint: Optional[np.ndarray]) -> GraspResult:
        """Re-run the final checks of :meth:`plan` on given grasps (e.g. last frame's, moved with the object).

        ``grasps``: TCP poses and widths as :meth:`plan` returns them; each is checked with the
        pre-grasp opening of its width against the occupancy grid (fingers, palm, closing region),
        NMS, the exact point-in-box test on ``scene`` and the raw contacts on ``obj``, best score
        first, and keeps its score. Returns the grasps that pass (up to ``top_k``), best first.
        """
        timings: Dict[str, float] = {}
        rejected: Dict[str, int] = {}
        start_time = time.perf_counter()
        obj = np.compress(np.isfinite(obj).all(axis=1), obj, axis=0)
        if not len(grasps) or len(obj) < self.s.min_object_points:
            return _empty('nothing to re-verify', len(grasps))
        frames = np.einsum('kij,jl->kil', grasps.pose, np.linalg.inv(self.g.tcp_offset))
        acc = self._accept(obj, scene, viewpoint, frames[:, :3, :3], frames[:, :3, 3],
                           self.g.pregrasp_opening(grasps.width), grasps.score.astype(np.float64),
                           np.arange(len(grasps)), False, rejected, lambda name: None)
        timings['total'] = (time.perf_counter() - start_time) * 1e3
        if acc is None:
            return _empty(f'none of {len(grasps)} grasps passed again (rejected: '
                          + ', '.join(f'{k} {v}' for k, v in rejected.items() if v) + ')',
                          len(grasps), timings, rejected)
        return GraspResult(self._grasps(*acc), 'ok', len(grasps), timings, rejected)

    def _grasps(self, rot: List[np.ndarray], origin: List[np.ndarray], width: List[float], score: List[float],
                key: List[int]) -> Grasps:
        """Accepted grasps as TCP poses, best first (ties: lower key)."""
        final = np.lexsort((np.asarray(key), -np.asarray(score)))
        poses = np.zeros((len(final), 4, 4))
        poses[:, :3, :3] = np.asarray(rot)[final]
        poses[:, :3, 3] = np.asarray(origin)[final]
        poses[:, 3, 3] = 1.0
        poses = np.einsum('kij,jl->kil', poses, self.g.tcp_offset)
        return Grasps(poses, np.asarray(width)[final], np.asarray(score, np.float32)[final],
                      np.zeros(len(final), np.int32))

    def _accept(self, obj: np.ndarray, scene: Any, viewpoint: Optional[np.ndarray], r_all: np.ndarray,
                o_all: np.ndarray, op_all: np.ndarray, partial: np.ndarray, keys: np.ndarray, rescore: bool,
                rejected: Dict[str, int], lap) -> Optional[Tuple[List, List, List, List, List]]:
        """Candidates (grasp-frame rotations, origins, openings) best first until ``top_k`` pass every check.

        ``partial``: each candidate's score without clearance, to which the clearance term is
        added when ``rescore`` (else it is the final score); ``keys`` break score ties. Adds the
        rejections to ``rejected``; returns (rot, origin, width, score, key) lists, or None when
        nothing passed.
        """
        g, s = self.g, self.s
        weights = np.array([s.antipodal_weight, s.contact_weight, s.clearance_weight, s.approach_weight])
        order = np.lexsort((keys, -partial))  # stable: ties broken by candidate key
        # ---- occupancy grid over the boxes of every surviving candidate (corners only)
        m = s.clearance_margin + s.collision_voxel
        outer = op_all / 2 + g.finger_thickness + m
        corners_lo = np.stack([-outer, np.full_like(op_all, -g.finger_width / 2 - m),
                               np.full_like(op_all, self.palm_lo[2])], -1)
        corners_hi = np.stack([outer, np.full_like(op_all, g.finger_width / 2 + m),
                               np.full_like(op_all, m)], -1)
        corners_lo = np.minimum(corners_lo, self.palm_lo - s.collision_voxel)
        corners_hi = np.maximum(corners_hi, self.palm_hi + s.collision_voxel)
        signs = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
        local = corners_lo[:, None, :] + signs[None] * (corners_hi - corners_lo)[:, None, :]
        world = np.einsum('kbc,kjc->kbj', local, r_all) + o_all[:, None, :]
        box_lo, box_hi = world.reshape(-1, 3).min(0), world.reshape(-1, 3).max(0)
        grid = _Grid(box_lo, box_hi, s.collision_voxel)
        # a SceneCloud hands over only the part of its depth image that can hold points in the box
        near = grid.crop(scene if isinstance(scene, np.ndarray) else scene.window(grid.lo, grid.hi))
        lap('crop')
        grid.mark_inside(near)
        own = _Grid(box_lo, box_hi, s.collision_voxel)  # same box, so the same cell indices
        own.occupied[grid.mark(obj)] = True
        lap('grid')

        # ---- chunks in pre-score order: grid collision, clearance, NMS against the accepted
        # grasps, then an exact point-in-box check against the raw scene points and a re-check
        # of width and contacts on the raw object points. Stops once top_k are accepted.
        chunk = 2 * s.top_k  # grows x2 per round: most objects are done after the first
        acc_rot: List[np.ndarray] = []
        acc_org: List[np.ndarray] = []
        acc_width: List[float] = []
        acc_score: List[float] = []
        acc_key: List[int] = []
        cos_nms = math.cos(math.radians(s.nms_angle_deg))
        counts = dict(scene_collision=0, neighbour_in_closing_region=0, nms=0, exact_collision=0,
                      raw_contacts=0)
        raw_normals: Optional[_LazyNormals] = None
        # Rows of coordinates (3, N): the exact checks transform every point per candidate.
        near_t, obj_t = np.ascontiguousarray(near.T), np.ascontiguousarray(obj.T)
        begin = 0
        while begin < len(order):
            rows = order[begin:begin + chunk]
            begin += chunk
            chunk *= 2
            r, o, op = r_all[rows], o_all[rows], op_all[rows]
            palm = np.broadcast_to(self.palm, (len(rows),) + self.palm.shape)
            body = np.concatenate([self._fingers(op), palm], axis=1)
            closing_local = np.broadcast_to(self.closing, (len(rows),) + self.closing.shape).copy()
            closing_local[..., 0] *= (op[:, None] / 2 - s.finger_gap)
            # The object's own points are checked against the body exactly (depth rule, footprint,
            # raw verification), so the grid only looks for other occupancy; cells the object
            # shares with its neighbours or support are caught by the exact check.
            flat, inside = grid.flat(np.einsum('kbc,kjc->kbj', body, r) + o[:, None, :])
            hit = (grid.occupied[flat] & ~own.occupied[flat] & inside).any(axis=1)
            flat, inside = grid.flat(np.einsum('kbc,kjc->kbj', closing_local, r) + o[:, None, :])
            intruder = (grid.occupied[flat] & ~own.occupied[flat] & inside).any(axis=1)
            flat, inside = grid.flat(np.einsum('kbc,kjc->kbj', self._shell(op), r) + o[:, None, :])
            crowd = (grid.occupied[flat] & inside).mean(axis=1)
            counts['scene_collision'] += int(np.sum(hit))
            counts['neighbour_in_closing_region'] += int(np.sum(intruder & ~hit))
            score = partial[rows] + weights[2] * (1.0 - crowd) / weights.sum() if rescore else partial[rows]
            for j in np.lexsort((keys[rows], -score)):
                if hit[j] or intruder[j]:
                    continue
                if acc_org:
                    prev_o, prev_r = np.asarray(acc_org), np.asarray(acc_rot)
                    gap = prev_o - o[j]
                    close = np.einsum('ac,ac->a', gap, gap) < s.nms_distance ** 2
                    same_x = np.abs(np.einsum('ac,c->a', prev_r[:, :, 0], r[j][:, 0])) >= cos_nms
                    same_z = np.einsum('ac,c->a', prev_r[:, :, 2], r[j][:, 2]) >= cos_nms
                    if np.any(close & same_x & same_z):
                        counts['nms'] += 1
                        continue
                free = self._exact_free(near_t, r[j], o[j], op[j]) and self._exact_free(obj_t, r[j], o[j], op[j])
                if not free:
                    counts['exact_collision'] += 1
                    continue
                if raw_normals is None:
                    raw_normals = _LazyNormals(obj.astype(np.float64), s.raw_neighbours, viewpoint)
                raw = self._raw_contacts(obj_t, raw_normals, r[j], o[j], op[j])
                if raw is None:
                    counts['raw_contacts'] += 1
                    continue
                acc_rot.append(r[j])
                acc_org.append(o[j])
                acc_width.append(raw)
                acc_score.append(float(score[j]))
                acc_key.append(int(keys[rows[j]]))
                if len(acc_org) == s.top_k:
                    break
            if len(acc_org) == s.top_k:
                break
        rejected.update(counts)
        lap('verify')
        if not acc_org:
            return None
        return acc_rot, acc_org, acc_width, acc_score, acc_key

    # ------------------------------------------------------------------------------------------
    def _palm_top(self, homog: np.ndarray, proj: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Object points in each candidate frame and the z of the nearest one under the palm.

        ``homog`` (N, 4) float32 homogeneous points, ``proj`` (3, 4, K) the candidates' scene ->
        grasp-frame rows. Returns lx, |ly|, lz as (N, K) float32 and top (K,) float64 (1e6 when
        no point lies inside the palm's x-y outline).
        """
        g = self.g
        lx, ly, lz = (homog @ proj[i] for i in range(3))  # BLAS: 5x faster than einsum here
        abs_ly = np.abs(ly)
        outside = abs_ly > np.float32(g.palm_thickness / 2)
        outside |= np.abs(lx) > np.float32(g.palm_width / 2)
        top = (lz + outside * np.float32(1e6)).min(axis=0).astype(np.float64)
        return lx, abs_ly, lz, top

    # ------------------------------------------------------------------------------------------
    def _antipodal_axes(self, pts: np.ndarray, normals: np.ndarray, count: int, rng: np.random.Generator,
                        preferred: Optional[np.ndarray] = None
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        """Sample ``count`` closing axes, centres and half widths from antipodal point pairs.

        Also returns how many valid pairs fit the opening and how many were too wide.

        On a seeded subset of ``pair_points`` points every pair (i, j) is tested: the distance
        must fit the opening, and with u = (p_j - p_i) / |p_j - p_i| the outward normal at i must
        lie in the friction cone of -u and the one at j in that of +u. Pairs are drawn (with
        replacement when there are fewer than ``count``) with probability growing with their
        quality. Without any valid pair, random points with the axis along their normal are
        used (such candidates rarely pass the later checks, and the result then says why).
        """
        g, s = self.g, self.s
        m = min(len(pts), s.pair_points)
        sub = np.sort(rng.choice(len(pts), m, replace=False)) if m < len(pts) else np.arange(len(pts))
        p32, n32 = pts[sub].astype(np.float32), normals[sub].astype(np.float32)
        # All pairwise products as (M, 3) x (3, M) einsums (no (M, M, 3) temporaries, no BLAS).
        pn = np.einsum('ic,cj->ij', n32, np.ascontiguousarray(p32.T))  # n_i . p_j
        pp = np.einsum('ic,cj->ij', p32, np.ascontiguousarray(p32.T))  # p_i . p_j
        sq = np.einsum('ic,ic->i', p32, p32)
        own = np.einsum('ic,ic->i', n32, p32)  # n_i . p_i
        pp *= 2
        dist = np.add.outer(sq, sq)
        dist -= pp
        np.maximum(dist, 0, out=dist)
        np.sqrt(dist, out=dist)
        inv = np.maximum(dist, np.float32(1e-9))
        np.divide(1.0, inv, out=inv)
        quality = own[:, None] - pn
        quality *= inv  # cos_i = -n_i . (p_j - p_i) / |p_j - p_i|; cos_j = n_j . (p_j - p_i) / |.| is its transpose
        np.minimum(quality, quality.T.copy(), out=quality)
        valid = quality >= np.float32(self.cos_cone)
        valid &= dist >= np.float32(max(g.min_opening, 2 * s.contact_band, s.min_width))
        valid &= _upper_triangle(m)
        wide = np.count_nonzero(valid)
        valid &= dist <= np.float32(g.max_opening - 2 * s.finger_gap)
        ii, jj = np.nonzero(valid)
        if len(ii) == 0:
            anchors = rng.choice(len(pts), count, replace=len(pts) < count)
            return -normals[anchors], pts[anchors], np.zeros(count), 0, wide
        weight = quality[ii, jj].astype(np.float64) - self.cos_cone + 0.02
        if preferred is not None:
            # Favour pairs near the side the hand comes from (e.g. the top for top-down grasps):
            # deeper pairs are mostly out of the fingers' reach.
            height = -np.einsum('kc,c->k', (pts[sub[ii]] + pts[sub[jj]]) / 2, preferred)
            weight *= 0.05 + np.exp(-3.0 * (height.max() - height) / g.finger_depth)
        pick = rng.choice(len(ii), count, replace=len(ii) < count, p=weight / weight.sum())
        a, b = sub[ii[pick]], sub[jj[pick]]
        axis = pts[b] - pts[a]
        length = np.linalg.norm(axis, axis=1)
        return axis / length[:, None], (pts[a] + pts[b]) / 2, length / 2, len(ii), wide - len(ii)

    def _fingers(self, opening: np.ndarray) -> np.ndarray:
        """Lattice of both fingers at ``opening`` (S,) -> (S, 2F, 3) in the grasp frame."""
        right = self.finger[None, :, :] + np.stack([opening / 2, 0 * opening, 0 * opening], -1)[:, None, :]
        left = right * np.array([-1.0, 1.0, 1.0])
        return np.concatenate([left, right], axis=1)

    def _shell(self, opening: np.ndarray) -> np.ndarray:
        right = self.shell[None, :, :] + np.stack([opening / 2, 0 * opening, 0 * opening], -1)[:, None, :]
        left = right * np.array([-1.0, 1.0, 1.0])
        return np.concatenate([left, right], axis=1)

    def _raw_contacts(self, obj_t: np.ndarray, normals: _LazyNormals, rot: np.ndarray, origin: np.ndarray,
                      opening: float) -> Optional[float]:
        """Re-check width and antipodality on the raw object points; return the width or None.

        The candidate checks ran on a thinned cloud; here every finite object point (``obj_t``,
        3 rows of coordinates) between the fingers counts, the contact patches are the raw points
        within ``contact_band`` of the two extremes, and their normals come from their
        ``raw_neighbours`` nearest raw points.
        """
        g, s = self.g, self.s
        x, y, z = _to_local(obj_t, rot, origin)
        between = np.abs(x) < opening / 2
        between &= np.abs(y) <= g.finger_width / 2
        between &= z >= -g.finger_depth
        between &= z <= 0
        rows = np.flatnonzero(between)
        if len(rows) < 2 * s.min_contact_points:
            return None
        xs = x[rows]
        lo, hi = float(xs.min()), float(xs.max())
        if not (max(g.min_opening, s.min_width) <= hi - lo <= g.max_opening - 2 * s.finger_gap):
            return None
        for side in (xs <= lo + s.contact_band, xs >= hi - s.contact_band):
            # Unsigned here: at a silhouette the estimated normal is nearly perpendicular to the
            # view ray and its orientation is arbitrary; an extreme contact faces outwards anyway.
            cos = np.abs(np.einsum('nc,c->n', normals(rows[side]), rot[:, 0]))
            if np.count_nonzero(cos >= self.cos_cone) < s.min_contact_points:
                return None
        return hi - lo

    def _exact_free(self, points_t: np.ndarray, rot: np.ndarray, origin: np.ndarray, opening: float) -> bool:
        """True when no point (``points_t``: 3 rows of coordinates) lies inside either finger or the palm box."""
        g = self.g
        x, y, z = _to_local(points_t, rot, origin)
        ax, ay = np.abs(x), np.abs(y)
        fingers = ax >= opening / 2
        fingers &= ax <= opening / 2 + g.finger_thickness
        fingers &= ay <= g.finger_width / 2
        fingers &= z >= -g.finger_depth
        fingers &= z <= 0
        palm = ax <= self.palm_hi[0]
        palm &= ay <= self.palm_hi[1]
        palm &= z >= self.palm_lo[2]
        palm &= z <= self.palm_hi[2]
        return not bool(np.any(fingers | palm))

    def _reason(self, rejected: Dict[str, int], width: np.ndarray, total: int) -> str:
        g = self.g
        stages = ', '.join(f'{k} {v}' for k, v in rejected.items() if v)
        finite = width[np.isfinite(width)]
        if rejected.get('width', 0) and finite.size and rejected['width'] >= total - rejected.get(
                'no_points_between_fingers', 0):
            narrowest = float(finite.min())
            if narrowest > g.max_opening - 2 * self.s.finger_gap:
                return (f'object wider than the gripper: narrowest width found {narrowest:.3f} m, '
                        f'max_opening {g.max_opening} m (rejected: {stages})')
        return f'no collision-free antipodal grasp among {total} candidates (rejected: {stages})'


def _nms(origin: np.ndarray, rot: np.ndarray, distance: float, angle: float) -> np.ndarray:
    """Greedy suppression over grasps sorted best first; returns the kept row indices."""
    n = len(origin)
    if n == 0:
        return np.zeros(0, np.int64)
    d = np.linalg.norm(origin[:, None, :] - origin[None, :, :], axis=-1)
    cos = math.cos(angle)
    same_x = np.abs(np.einsum('ai,bi->ab', rot[:, :, 0], rot[:, :, 0])) >= cos  # the closing axis has no sign
    same_z = np.einsum('ai,bi->ab', rot[:, :, 2], rot[:, :, 2]) >= cos
    similar = (d < distance) & same_x & same_z
    alive = np.ones(n, bool)
    kept = []
    for i in range(n):
        if alive[i]:
            kept.append(i)
            alive &= ~similar[i]
    return np.asarray(kept, np.int64)
