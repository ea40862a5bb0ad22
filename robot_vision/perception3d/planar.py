"""The 'planar' segmentation method (``SegmentationSettings.method = 'planar'``, the algorithm before 'clutter').

One global support plane by RANSAC, objects as the depth-connected components above it. It is fast and
exact where objects stand apart on a floor or table (the PCL Kinect scenes), and fails in dense clutter,
top-down views and bins (see docs/perception3d.md). ``fit_support_plane``, ``far_side_edges`` and the
label growing also serve the detection-driven 3D boxes (``detections3d``) and the grasp planner's support.
"""

from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from robot_vision.perception3d.filtering import voxel_downsample
from robot_vision.perception3d.plane import plane_basis, ransac_plane
from robot_vision.perception3d.segmentation import (IMAGE_UP, SceneSegmentation, SegmentationSettings, grow_labels,
                                                    objects_from_labels, up_prior)
from robot_vision.types import Objects3D, RGBDFrame


def fit_support_plane(cloud: np.ndarray, valid: np.ndarray, settings: SegmentationSettings,
                      up: Optional[np.ndarray] = None) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """Find the support plane of an organized cloud; returns (plane or None, (H, W) inlier mask).

    ``cloud`` (H, W, 3) float32 metres in the camera frame with ``valid`` (H, W) bool; ``up``
    an optional (3,) gravity prior. RANSAC runs on a strided (``plane_stride``), voxel-thinned
    (``voxel_size``) subsample of at most ``max_plane_samples`` points; the final inlier mask
    is evaluated on every valid pixel with the depth-dependent threshold of ``settings``.
    The plane is (4,) float64 [a, b, c, d] with a unit normal pointing towards the camera.
    """
    plane, plane_mask, _ = _fit_support_plane(cloud, valid, settings, up)
    return plane, plane_mask


def _fit_support_plane(cloud: np.ndarray, valid: np.ndarray, settings: SegmentationSettings,
                       up: Optional[np.ndarray], depth: Optional[np.ndarray] = None):
    """:func:`fit_support_plane`, also returning the (H, W) float32 signed height above the plane."""
    stride = settings.plane_stride
    sub = cloud[::stride, ::stride].reshape(-1, 3)
    sub = sub[valid[::stride, ::stride].reshape(-1)]
    if settings.voxel_size > 0 and sub.shape[0] > 0:
        sub = voxel_downsample(sub, settings.voxel_size)
    plane_mask = np.zeros(valid.shape, bool)
    if sub.shape[0] < 3:
        return None, plane_mask, None
    rng = np.random.default_rng(settings.seed)
    if sub.shape[0] > settings.max_plane_samples:
        sub = sub[rng.choice(sub.shape[0], settings.max_plane_samples, replace=False)]
    plane, inliers = ransac_plane(sub, settings.inlier_threshold(sub[:, 2]), settings.ransac_iterations,
                                  up, settings.max_plane_tilt_deg, rng, prefer=IMAGE_UP,
                                  prefer_weight=settings.image_up_weight if up is None else 0.0)
    if plane is None or inliers.sum() < max(3, settings.min_plane_fraction * sub.shape[0]):
        return None, plane_mask, None
    with np.errstate(invalid='ignore'):
        height = cloud @ plane[:3].astype(np.float32) + np.float32(plane[3])
        plane_mask = np.abs(height) < settings.inlier_threshold(cloud[..., 2] if depth is None else depth)
    return plane, plane_mask, height


def far_side_edges(depth: np.ndarray, settings: SegmentationSettings, scale: float = 1.0,
                   spans=(1,)) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour nearer by more than the depth-step threshold.

    Marking only the far side of each discontinuity keeps the nearer (occluding) surface whole
    while cutting it off from what lies behind it. The threshold is ``scale`` times
    :meth:`SegmentationSettings.step_threshold`, and ``k`` times that between pixels ``k`` apart for
    each ``k`` in ``spans`` (the clutter method also looks 2 pixels apart: sensors blur steps).
    """
    thr = settings.step_threshold(depth) * np.float32(scale)
    far = np.zeros(depth.shape, bool)
    with np.errstate(invalid='ignore'):
        for k in spans:
            limit = thr * np.float32(k)
            dx = depth[:, k:] - depth[:, :-k]
            far[:, k:] |= dx > limit[:, k:]
            far[:, :-k] |= -dx > limit[:, :-k]
            dy = depth[k:, :] - depth[:-k, :]
            far[k:, :] |= dy > limit[k:, :]
            far[:-k, :] |= -dy > limit[:-k, :]
    return far


def _grow_labels(labels: np.ndarray, candidates: np.ndarray, depth: np.ndarray,
                 settings: SegmentationSettings, iterations: int) -> np.ndarray:
    """Give unlabelled candidate pixels the label of a 4-neighbour at a similar depth, repeatedly.

    Works on the sparse set of candidate pixels within ``iterations`` pixels of a label
    (:func:`~robot_vision.perception3d.segmentation.grow_labels`). Returns (labels, the labels that
    the newly labelled pixels received), the second for updating per-label areas.
    """
    near = cv2.dilate((labels > 0).view(np.uint8) if labels.dtype == np.uint8 else
                      (labels > 0).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=iterations)
    todo = np.flatnonzero((near > 0) & candidates & (labels == 0))
    grown = grow_labels(labels, todo, depth, settings, iterations)
    return labels, labels.reshape(-1)[grown].astype(np.int64)


def segment_planar(frame: RGBDFrame, cloud: np.ndarray, valid: np.ndarray, settings: SegmentationSettings,
                   t0: float, timings: Dict[str, float]) -> SceneSegmentation:
    """The 'planar' method of :func:`~robot_vision.perception3d.segmentation.segment_scene`.

    One RANSAC support plane on a subsample (with the up prior when known); pixels between
    ``min_height`` and ``max_height`` above it, cut at depth discontinuities (far side of each
    jump), are labelled as 4-connected components (``cv2.connectedComponents``), grown back into
    border pixels at equal depth and kept within the size limits. Secondary horizontal supports
    (``split_supports``) are removed first. ``cloud``/``valid`` come from ``prepare_cloud``.
    """
    empty = Objects3D.empty(mask=np.zeros((0,) + valid.shape, bool))
    t1 = t0 + timings['prepare'] / 1e3
    up = up_prior(frame, settings)
    depth = np.ascontiguousarray(cloud[..., 2])  # contiguous: the per-pixel passes below run faster
    plane, plane_mask, height = _fit_support_plane(cloud, valid, settings, up, depth)
    t2 = time.perf_counter()
    timings['plane'] = (t2 - t1) * 1e3
    if plane is None:
        timings['total'] = (t2 - t0) * 1e3
        return SceneSegmentation(cloud, None, plane_mask, empty, 'no_plane', timings)

    with np.errstate(invalid='ignore'):
        candidates = (height > 0) & (height < settings.max_height)
        candidates &= ~plane_mask
        above = candidates & (height > settings.min_height)
    far = far_side_edges(depth, settings)
    support_mask = None
    if settings.split_supports:
        support_mask = secondary_supports(cloud, height, candidates & ~far, plane, frame.intrinsics,
                                          settings)
        not_support = ~support_mask
        above &= not_support
        candidates &= not_support
    seeds = above & ~far
    count, labels, stats, _ = cv2.connectedComponentsWithStats(seeds.view(np.uint8), connectivity=4,
                                                                 ltype=cv2.CV_32S)
    areas = stats[:, cv2.CC_STAT_AREA]
    grow = settings.grow_iterations
    if grow and count > 1:
        labels, grown = _grow_labels(labels, candidates, depth, settings, grow)
        areas = areas + np.bincount(grown, minlength=count)
    keep = np.flatnonzero((areas >= settings.min_object_points) & (areas <= settings.max_object_points))
    keep = keep[keep > 0]
    keep = keep[np.argsort(-areas[keep], kind='stable')]
    boxes = stats[keep, :4].copy()
    boxes[:, :2] -= grow
    boxes[:, 2:] += 2 * grow
    t3 = time.perf_counter()
    timings['cluster'] = (t3 - t2) * 1e3

    objects = objects_from_labels(labels, keep, boxes, cloud, valid, plane, settings)
    t4 = time.perf_counter()
    timings['boxes'] = (t4 - t3) * 1e3
    timings['total'] = (t4 - t0) * 1e3
    return SceneSegmentation(cloud, plane, plane_mask, objects, 'ok', timings, support_mask)




def horizontal_samples(cloud: np.ndarray, up: np.ndarray, max_angle_deg: float, step: int = 2) -> np.ndarray:
    """Bool mask of the ``step``-subsampled organized cloud: samples whose surface is horizontal.

    The normal at a sample is the cross product of central differences over +-2 samples
    (+-2 * ``step`` pixels) along the rows and the columns; a sample is horizontal when that
    normal is within ``max_angle_deg`` of ``up`` (either sign). Computed component-wise on the
    interior (a 2-sample border stays False), without forming the normal image.
    """
    small = cloud[::step, ::step]
    flat = np.zeros(small.shape[:2], bool)
    if small.shape[0] < 5 or small.shape[1] < 5:
        return flat
    # Contiguous component planes make the element-wise work below several times faster.
    x, y, z = (np.ascontiguousarray(small[..., k]) for k in range(3))
    dx = [c[2:-2, 4:] - c[2:-2, :-4] for c in (x, y, z)]
    dy = [c[4:, 2:-2] - c[:-4, 2:-2] for c in (x, y, z)]
    c0 = dx[1] * dy[2] - dx[2] * dy[1]
    c1 = dx[2] * dy[0] - dx[0] * dy[2]
    c2 = dx[0] * dy[1] - dx[1] * dy[0]
    u = np.asarray(up, np.float32)
    cos2 = np.float32(np.cos(np.deg2rad(max_angle_deg)) ** 2)
    with np.errstate(invalid='ignore'):
        along = c0 * u[0] + c1 * u[1] + c2 * u[2]
        flat[2:-2, 2:-2] = along * along > cos2 * (c0 * c0 + c1 * c1 + c2 * c2)
    return flat


def _points_over_footprint(footprint: np.ndarray, others: np.ndarray, cell: float = 0.01) -> int:
    """Count the (K, 2) plane points ``others`` inside the convex hull of the (M, 2) ``footprint``.

    The hull is rasterised on a ``cell``-metre grid (cv2.fillConvexPoly) and the points looked up.
    """
    if footprint.shape[0] < 3 or others.shape[0] == 0:
        return 0
    origin = footprint.min(axis=0)
    size = np.ceil((footprint.max(axis=0) - origin) / cell).astype(int) + 1
    if size[0] * size[1] > 4_000_000:  # a hull larger than 20 m x 20 m: not a tabletop
        return 0
    hull = cv2.convexHull(np.round((footprint - origin) / cell).astype(np.int32))
    grid = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(grid, hull, 1)
    cells = np.round((others - origin) / cell).astype(np.int64)
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < size[0]) & (cells[:, 1] >= 0) & (cells[:, 1] < size[1])
    cells = cells[inside]
    return int(np.count_nonzero(grid[cells[:, 1], cells[:, 0]]))


#: Height (metres above the main support) below which a level needs only ``min_floor_area``.
FLOOR_LEVEL = 0.02


def secondary_supports(cloud: np.ndarray, height: np.ndarray, candidates: np.ndarray, plane: np.ndarray,
                       intrinsics, settings: SegmentationSettings) -> np.ndarray:
    """(H, W) bool: large horizontal surfaces among ``candidates`` (pixels above the main plane).

    ``height`` (H, W) is the signed distance of each pixel's point to ``plane`` (metres).
    Surface normals come from central differences (+-2 samples, i.e. +-4 pixels) on the
    2x-subsampled organized cloud. Pixels whose normal is within
    ``support_normal_tolerance_deg`` of the plane normal are binned by height (1 cm bins,
    summed over 3 neighbouring bins); a height band whose metric area (pixel footprint
    z^2 / (fx fy) divided by the cosine between the viewing ray and the normal) reaches
    ``min_support_area`` is a support level, even when the objects on it cut it into pieces; a
    level less than ``FLOOR_LEVEL`` (2 cm) above the main support (a tote's or tray's floor, seen
    between the objects in it) needs only ``min_floor_area``.
    The support mask is the horizontal samples of those bands dilated by one sample (3x3) to
    absorb normal noise, upsampled, and limited to the pixels within the band. A band counts
    only when it carries something: at least ``min_object_points`` pixels of candidates
    higher than the band must lie over the convex hull of its footprint on the plane (so the
    top of a large flat box is not taken for a tray).
    """
    h, w = candidates.shape
    none = np.zeros((h, w), bool)
    step = 2
    small = cloud[::step, ::step]
    flat_small = horizontal_samples(cloud, plane[:3], settings.support_normal_tolerance_deg, step)
    flat_small &= candidates[::step, ::step]
    if np.count_nonzero(flat_small) < 10:
        return none
    # Area per height bin, on the subsampled grid (each sample stands for step^2 pixels).
    pts = small[flat_small].astype(np.float64)
    heights = height[::step, ::step][flat_small]
    cos_view = np.abs(pts @ plane[:3]) / np.maximum(np.linalg.norm(pts, axis=1), 1e-9)
    footprint = step * step * pts[:, 2] ** 2 / (intrinsics.fx * intrinsics.fy) / np.maximum(cos_view, 0.2)
    bin_size = 0.01
    bins = np.clip((heights / bin_size).astype(np.int64), 0, None)
    hist = np.bincount(bins, weights=footprint)
    padded = np.r_[0.0, hist, 0.0]
    summed = padded[:-2] + padded[1:-1] + padded[2:]
    level = summed >= settings.min_support_area
    floor_bins = np.arange(summed.size) < int(round(FLOOR_LEVEL / bin_size))
    floor = floor_bins & ~level & (summed >= settings.min_floor_area) if settings.min_floor_area > 0 else None
    if not level.any() and (floor is None or not floor.any()):
        return none
    # A level bin takes its neighbours along, so the whole (noisy) surface falls in the band; a floor
    # level (a tote's floor, just above the surface it stands on) only those below FLOOR_LEVEL, so that
    # a flat object lying on it stays an object.
    band_bins = level | np.r_[level[1:], False] | np.r_[False, level[:-1]]
    if floor is not None:
        band_bins |= floor_bins & (floor | np.r_[floor[1:], False] | np.r_[False, floor[:-1]])
    # Contiguous runs of band bins -> height intervals [lo, hi).
    edges = np.flatnonzero(np.diff(np.r_[0, band_bins.astype(np.int8), 0]))
    in_band = np.zeros((h, w), bool)
    e1, e2 = plane_basis(plane[:3])
    basis = np.stack([e1, e2], axis=1)
    height_small = height[::step, ::step]
    for lo, hi in zip(edges[::2] * bin_size, edges[1::2] * bin_size, strict=True):
        band = (heights >= lo) & (heights < hi)
        with np.errstate(invalid='ignore'):
            higher = candidates[::step, ::step] & (height_small > hi + settings.min_height)
        carried = _points_over_footprint(pts[band] @ basis, small[higher].astype(np.float64) @ basis)
        if carried * step * step < settings.min_object_points:
            continue  # nothing stands on it: the top of a flat object, not a support
        with np.errstate(invalid='ignore'):
            in_band |= (height >= np.float32(lo)) & (height < np.float32(hi))
    in_band &= candidates
    band_small = flat_small & in_band[::step, ::step]
    grown = cv2.dilate(band_small.view(np.uint8), np.ones((3, 3), np.uint8))
    closed = cv2.resize(grown, (grown.shape[1] * step, grown.shape[0] * step),
                        interpolation=cv2.INTER_NEAREST)[:h, :w] > 0
    return closed & in_band
