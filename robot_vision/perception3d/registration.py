"""Model-based 6-DoF pose: FPFH + RANSAC global registration, then point-to-plane ICP (open3d)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from robot_vision.errors import ConfigError, InputError


@dataclass(frozen=True)
class RegistrationSettings:
    """Settings of :func:`register_model` (metres unless noted).

    ``voxel_size`` (0.01 m): voxel grid for features and RANSAC; normals use a radius of
    ``normal_radius_factor`` (2.5) voxels, FPFH ``feature_radius_factor`` (5) voxels with at
    most ``feature_max_neighbours`` (60) neighbours.
    ``ransac_distance_factor`` (1.5): RANSAC inlier distance in voxels;
    ``ransac_max_iterations`` (20000) and ``ransac_confidence`` (0.999) bound RANSAC;
    ``attempts`` (3): at most this many RANSAC runs, with seeds ``seed``, ``seed + 1``, ...;
    the first accepted result ends the search, else the best after ICP wins.
    ``icp_voxel_size`` (0.005 m): finer grid for ICP refinement (point-to-plane), with
    correspondences up to ``icp_distance_factor`` (2) ICP voxels and ``icp_iterations`` (30).
    Acceptance, on the ICP grid with matches up to ``inlier_distance`` (0.005 m):
    ``min_fitness`` (0.6) of the model points that face the camera after alignment must have
    a scene point; ``min_coverage`` (0.7) of the scene points inside the aligned model's box
    must have a model point; ``max_rmse`` (0.004 m) bounds the RMS distance of the matches.
    A result failing any of these is returned with status 'poor_fit'.
    ``max_points`` (60000): larger inputs are randomly thinned first (seeded).
    ``fallback_rotations`` (False): when no RANSAC candidate is accepted, also try the 24
    axis-aligned orientations about the scene centroid (coarse ICP each, the best 3 refined);
    this rescues some sparse-model cases at a cost of ~100-300 ms per failing object.
    """

    voxel_size: float = 0.01
    normal_radius_factor: float = 2.5
    feature_radius_factor: float = 5.0
    feature_max_neighbours: int = 60
    ransac_distance_factor: float = 1.5
    ransac_max_iterations: int = 20000
    ransac_confidence: float = 0.999
    attempts: int = 3
    icp_voxel_size: float = 0.005
    icp_distance_factor: float = 2.0
    icp_iterations: int = 30
    inlier_distance: float = 0.005
    min_fitness: float = 0.6
    min_coverage: float = 0.7
    max_rmse: float = 0.004
    max_points: int = 60000
    fallback_rotations: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        for name in ('voxel_size', 'normal_radius_factor', 'feature_radius_factor', 'ransac_distance_factor',
                     'icp_voxel_size', 'icp_distance_factor', 'inlier_distance', 'max_rmse'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ConfigError(f'RegistrationSettings.{name}: expected a positive number, got {value!r}')
        for name, low in (('ransac_max_iterations', 1), ('feature_max_neighbours', 5), ('attempts', 1),
                          ('icp_iterations', 1),
                          ('max_points', 100), ('seed', 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ConfigError(f'RegistrationSettings.{name}: expected an integer >= {low}, got {value!r}')
        for name in ('ransac_confidence', 'min_fitness', 'min_coverage'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ConfigError(f'RegistrationSettings.{name}: expected a number in [0, 1], got {value!r}')


@dataclass
class RegistrationResult:
    """Result of :func:`register_model`.

    ``pose`` (4, 4) float64 maps model points into the scene frame (p_scene = pose @ p_model);
    ``fitness`` in [0, 1] is the fraction of the model points that face the camera (the scene
    frame's origin) after alignment and have a scene point within the ICP distance, and
    ``rmse`` (metres) the RMS distance of those matches, both on the ICP grid;
    ``coverage`` in [0, 1] is the fraction of the scene points inside the aligned model's box
    that the model explains; ``status`` is 'ok', 'poor_fit', 'too_few_model_points' or
    'too_few_scene_points'; ``accepted`` is True only for 'ok'.
    """

    pose: np.ndarray
    fitness: float
    rmse: float
    status: str
    accepted: bool
    coverage: float = 0.0


def _clean(points: np.ndarray, name: str, max_points: int, rng: np.random.Generator) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f'{name}: expected an (N, 3) array of metres, got shape {points.shape}')
    if points.dtype.kind not in 'fiu':
        raise InputError(f'{name}: expected a numeric array, got dtype {points.dtype}')
    points = points[np.isfinite(points).all(axis=1)].astype(np.float64)
    if points.shape[0] > max_points:
        points = points[rng.choice(points.shape[0], max_points, replace=False)]
    return points


def _cloud(points: np.ndarray, voxel: float, normal_radius: float, towards: Optional[np.ndarray]):
    import open3d as o3d
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd = pcd.voxel_down_sample(voxel)
    if len(pcd.points) >= 3:
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=normal_radius, max_nn=30))
        pts = np.asarray(pcd.points)
        normals = np.asarray(pcd.normals)
        # Orient normals outwards: towards the viewpoint for a scene, away from the centroid for a model.
        ref = (towards - pts) if towards is not None else (pts - pts.mean(axis=0))
        flip = np.einsum('ij,ij->i', normals, ref) < 0
        normals[flip] *= -1
        pcd.normals = o3d.utility.Vector3dVector(normals)
    return pcd


def _cube_rotations() -> np.ndarray:
    """The 24 rotations of the cube group, (24, 3, 3) float64."""
    from itertools import permutations, product
    out = []
    for perm in permutations(range(3)):
        for signs in product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return np.stack(out)


_CUBE_ROTATIONS = _cube_rotations()

_MODEL_CACHE: OrderedDict[tuple, tuple] = OrderedDict()
_MODEL_CACHE_SIZE = 8


def _feature_param(settings: RegistrationSettings):
    import open3d as o3d
    return o3d.geometry.KDTreeSearchParamHybrid(radius=settings.feature_radius_factor * settings.voxel_size,
                                                max_nn=settings.feature_max_neighbours)


def _prepared_model(model: np.ndarray, settings: RegistrationSettings):
    """Downsampled model clouds (ICP grid, feature grid) and FPFH features, cached per model and settings.

    A robot registers the same few models every frame, so their preprocessing is done once;
    the cache holds the last ``_MODEL_CACHE_SIZE`` (model, settings) pairs, keyed by content.
    """
    import open3d as o3d
    v, vi = settings.voxel_size, settings.icp_voxel_size
    key = (model.shape, hash(model.tobytes()), v, vi, settings.normal_radius_factor,
           settings.feature_radius_factor, settings.feature_max_neighbours)
    hit = _MODEL_CACHE.get(key)
    if hit is not None:
        _MODEL_CACHE.move_to_end(key)
        return hit
    fine = _cloud(model, vi, settings.normal_radius_factor * max(vi, v / 2), None)
    down = _cloud(model, v, settings.normal_radius_factor * v, None)
    fpfh = (o3d.pipelines.registration.compute_fpfh_feature(down, _feature_param(settings))
            if len(down.points) >= 10 else None)
    _MODEL_CACHE[key] = (fine, down, fpfh)
    if len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return fine, down, fpfh


def register_model(model_points: np.ndarray, scene_points: np.ndarray,
                   settings: RegistrationSettings = RegistrationSettings(),
                   init: Optional[np.ndarray] = None) -> RegistrationResult:
    """Estimate the pose of a model (point cloud) in a scene cloud, without an initial guess.

    ``model_points`` (N, 3) metres in the model's own frame; ``scene_points`` (M, 3) metres in
    the scene (camera) frame, ideally the object's instance cloud (e.g. from
    :func:`segment_scene`) or the scene without its support plane; non-finite rows are
    dropped. Without ``init``: both clouds are voxel-downsampled, FPFH features are matched
    and RANSAC (3-point, edge-length and distance checks) finds a coarse pose, which is
    refined by point-to-plane ICP (coarse grid, then the finer ICP grid). Up to
    ``settings.attempts`` RANSAC runs with consecutive seeds are made until one result is
    accepted; otherwise the best (fitness + coverage, then RMSE) is returned. With ``init``
    (4, 4) only ICP runs, starting from it.

    Symmetric objects: the returned pose is one of the equivalent poses (whichever the
    features and ICP settle on, deterministic for a given seed and input); it is not
    canonicalised. Compare poses modulo the object's symmetry group (e.g. a can's axis).

    The model's downsampled clouds and features are cached (by content and settings), so
    repeated registration of the same model only pays for the scene side.

    Returns a :class:`RegistrationResult`; poor or impossible fits are reported by
    ``status``/``accepted``, never raised. Scene normals are oriented towards the camera
    origin, model normals away from the model centroid.
    """
    import open3d as o3d
    reg = o3d.pipelines.registration
    rng = np.random.default_rng(settings.seed)
    model = _clean(model_points, 'model_points', settings.max_points, rng)
    scene = _clean(scene_points, 'scene_points', settings.max_points, rng)
    if init is not None:
        init = np.asarray(init, np.float64)
        if init.shape != (4, 4) or not np.all(np.isfinite(init)):
            raise InputError(f'init: expected a finite (4, 4) transform, got shape {init.shape}')
    identity = np.eye(4) if init is None else init
    if model.shape[0] < 10:
        return RegistrationResult(identity, 0.0, np.inf, 'too_few_model_points', False)
    if scene.shape[0] < 10:
        return RegistrationResult(identity, 0.0, np.inf, 'too_few_scene_points', False)

    v, vi = settings.voxel_size, settings.icp_voxel_size
    origin = np.zeros(3)
    model_fine, model_down, model_fpfh = _prepared_model(model, settings)
    scene_fine = _cloud(scene, vi, settings.normal_radius_factor * max(vi, v / 2), origin)
    icp_distance = settings.icp_distance_factor * vi
    if init is None:
        scene_down = _cloud(scene, v, settings.normal_radius_factor * v, origin)
        if len(model_down.points) < 10 or len(scene_down.points) < 10:
            status = 'too_few_model_points' if len(model_down.points) < 10 else 'too_few_scene_points'
            return RegistrationResult(identity, 0.0, np.inf, status, False)
        scene_fpfh = reg.compute_fpfh_feature(scene_down, _feature_param(settings))
        distance = settings.ransac_distance_factor * v
        checkers = [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9),
                    reg.CorrespondenceCheckerBasedOnDistance(distance)]
        criteria = reg.RANSACConvergenceCriteria(settings.ransac_max_iterations, settings.ransac_confidence)
        best = None
        for attempt in range(settings.attempts):
            o3d.utility.random.seed(settings.seed + attempt)
            # Scoped: Open3D warns on stdout when the mutual filter leaves few matches.
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                coarse = reg.registration_ransac_based_on_feature_matching(
                    model_down, scene_down, model_fpfh, scene_fpfh, True, distance,
                    reg.TransformationEstimationPointToPoint(False), 3, checkers, criteria)
            # A first ICP pass on the coarse grid widens the basin before the fine pass.
            mid = reg.registration_icp(model_down, scene_down, 2.0 * v, coarse.transformation,
                                       reg.TransformationEstimationPointToPlane(),
                                       reg.ICPConvergenceCriteria(max_iteration=settings.icp_iterations))
            refined = _best_refined([mid.transformation], model_fine, scene_fine, icp_distance, settings)
            if best is None or _rank(refined) > _rank(best):
                best = refined
            if best[3]:
                break  # accepted: further attempts only cost time
    else:
        best = _best_refined([init], model_fine, scene_fine, icp_distance, settings)

    if init is None and not best[3] and settings.fallback_rotations:
        # Features found nothing acceptable (sparse or noisy model vs a partial view): try the
        # 24 axis-aligned orientations about the scene centroid, ICP each on the coarse grid,
        # and refine the best few.
        hypotheses = []
        scene_centre = np.asarray(scene_down.points).mean(axis=0)
        model_centre = np.asarray(model_down.points).mean(axis=0)
        extent = np.ptp(np.asarray(model_down.points), axis=0)
        # The visible surface is in front of the object's centre: push the guess back along the ray.
        ray = scene_centre / max(float(np.linalg.norm(scene_centre)), 1e-9)
        centre = scene_centre + 0.25 * float(np.min(extent)) * ray
        for rotation in _CUBE_ROTATIONS:
            start = np.eye(4)
            start[:3, :3] = rotation
            start[:3, 3] = centre - rotation @ model_centre
            coarse = reg.registration_icp(model_down, scene_down, 3.0 * v, start,
                                          reg.TransformationEstimationPointToPlane(),
                                          reg.ICPConvergenceCriteria(max_iteration=settings.icp_iterations))
            hypotheses.append((coarse.fitness, -coarse.inlier_rmse, coarse.transformation))
        hypotheses.sort(key=lambda h: (h[0], h[1]), reverse=True)
        fallback = _best_refined([h[2] for h in hypotheses[:3]], model_fine, scene_fine, icp_distance,
                                 settings)
        if _rank(fallback) > _rank(best):
            best = fallback
    pose, fitness, coverage, rmse, accepted = best[0], best[1], best[2], best[4], best[3]
    return RegistrationResult(pose, fitness, rmse, 'ok' if accepted else 'poor_fit', accepted, coverage)


def _rank(result) -> tuple:
    """Order refined results: accepted first, then by fitness + coverage, then lower RMSE."""
    _, fitness, coverage, accepted, rmse = result
    return (accepted, fitness + coverage, -rmse)


def _best_refined(starts, model_fine, scene_fine, icp_distance: float, settings: RegistrationSettings):
    """Fine point-to-plane ICP from each start; the best as (pose, fitness, coverage, accepted, rmse)."""
    import open3d as o3d
    reg = o3d.pipelines.registration
    best = None
    for start in starts:
        fine = reg.registration_icp(model_fine, scene_fine, icp_distance, start,
                                    reg.TransformationEstimationPointToPlane(),
                                    reg.ICPConvergenceCriteria(max_iteration=settings.icp_iterations))
        pose = np.asarray(fine.transformation, np.float64).copy()
        fitness, coverage, rmse = _fit_quality(model_fine, scene_fine, pose, settings.inlier_distance)
        accepted = (fitness >= settings.min_fitness and coverage >= settings.min_coverage
                    and rmse <= settings.max_rmse)
        result = (pose, fitness, coverage, accepted, rmse)
        if best is None or _rank(result) > _rank(best):
            best = result
    return best


def _fit_quality(model_pcd, scene_pcd, pose: np.ndarray, distance: float):
    """Return (fitness, coverage, rmse) of an aligned model.

    fitness: fraction of the model points facing the camera (origin) with a scene point within
    ``distance`` (a full 360-degree model can only match its visible side); coverage: fraction
    of the scene points inside the aligned model's bounding box (model frame, axis-aligned)
    with a model point within ``distance`` (a wrong model leaves scene surface unexplained);
    rmse: RMS distance of the matched model points.
    """
    from scipy.spatial import cKDTree
    model = np.asarray(model_pcd.points)
    scene = np.asarray(scene_pcd.points)
    pts = model @ pose[:3, :3].T + pose[:3, 3]
    normals = np.asarray(model_pcd.normals) @ pose[:3, :3].T
    facing = np.einsum('ij,ij->i', normals, -pts) > 0
    if not facing.any():
        return 0.0, 0.0, float('inf')
    dist, _ = cKDTree(scene).query(pts[facing], distance_upper_bound=distance)
    matched = np.isfinite(dist)
    if not matched.any():
        return 0.0, 0.0, float('inf')
    scene_in_model = (scene - pose[:3, 3]) @ pose[:3, :3]
    inside = np.all((scene_in_model >= model.min(axis=0)) & (scene_in_model <= model.max(axis=0)), axis=1)
    coverage = 0.0
    if inside.any():
        back, _ = cKDTree(pts).query(scene[inside], distance_upper_bound=distance)
        coverage = float(np.isfinite(back).mean())
    return float(matched.mean()), coverage, float(np.sqrt(np.mean(dist[matched] ** 2)))
