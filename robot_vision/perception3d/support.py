"""Depth preparation and support estimation of the 'clutter' segmentation method.

The working image (block-averaged depth, holes filled, bilateral smoothing, normals), "up" without a
gravity prior (the dominant surface normal), the support plane (largest connected horizontal region;
under gravity, the floor beside a flat object rather than the object's top), the grown and
quadratically corrected support region, and the tests of resting on a support (the support's hull in
3D and in the image). :mod:`robot_vision.perception3d.clutter` composes them.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import cv2
import numpy as np

from robot_vision.perception3d.plane import plane_basis
from robot_vision.types import CameraIntrinsics

#: Soft preference for image-up (optical -y) when the view has no gravity prior.
IMAGE_UP = np.array([0.0, -1.0, 0.0], np.float32)
#: Heights (metres) below a support plane in which a lower support is looked for: a flat object's thickness.
LOWER_BAND = (0.015, 0.06)
#: Up-facing pixels in that band, as a share of the plane's up-facing inliers, that make it a flat object's top.
LOWER_SHARE = 0.015
#: A plane whose up-facing inliers fill this share of the pixels with depth is the support in view, not an object.
LOWER_MAX_TOP = 0.1
#: Under gravity, a region beyond the support's outline whose lowest point lies within this height (metres)
#: above the support plane stands on the part of the support that shows no depth.
STANDING_HEIGHT = 0.01


def working_factor(width: int, max_width: int) -> int:
    """Integer downsampling factor that brings ``width`` to at most ``max_width`` pixels."""
    return max(1, int(math.ceil(width / max(max_width, 1))))


def downsample_depth(depth: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean of the valid depths of each ``factor`` x ``factor`` block (NaN where none is valid)."""
    if factor == 1:
        return depth.copy()
    h, w = depth.shape[0] // factor, depth.shape[1] // factor
    valid = np.isfinite(depth[:h * factor, :w * factor])
    values = np.where(valid, depth[:h * factor, :w * factor], np.float32(0))
    # INTER_AREA at an integer factor is the block mean: of the values (zero where invalid) and of
    # the valid flags; their ratio is the mean of the valid depths.
    total = cv2.resize(values, (w, h), interpolation=cv2.INTER_AREA)
    count = cv2.resize(valid.view(np.uint8).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(count > 0, total / count, np.float32(np.nan)).astype(np.float32)


def scaled_intrinsics(intrinsics: CameraIntrinsics, factor: int, shape: Tuple[int, int]) -> CameraIntrinsics:
    """Intrinsics of an image downsampled by block means of ``factor`` (pixel centres move by (f-1)/2)."""
    if factor == 1:
        return intrinsics
    return CameraIntrinsics(shape[1], shape[0], intrinsics.fx / factor, intrinsics.fy / factor,
                            (intrinsics.cx - (factor - 1) / 2) / factor, (intrinsics.cy - (factor - 1) / 2) / factor)


def fill_holes(depth: np.ndarray, settings, passes: int = 2) -> np.ndarray:
    """Fill missing pixels whose valid 5x5 neighbours agree in depth (in place; returns ``depth``)."""
    kernel = np.ones((5, 5), np.uint8)
    for _ in range(passes):
        valid = np.isfinite(depth)
        if valid.all():
            break
        zero = np.where(valid, depth, np.float32(0))
        total = cv2.boxFilter(zero, -1, (5, 5), normalize=False, borderType=cv2.BORDER_CONSTANT)
        count = cv2.boxFilter(valid.astype(np.float32), -1, (5, 5), normalize=False,
                              borderType=cv2.BORDER_CONSTANT)
        high = cv2.dilate(np.where(valid, depth, np.float32(-np.inf)), kernel)
        low = cv2.erode(np.where(valid, depth, np.float32(np.inf)), kernel)
        with np.errstate(invalid='ignore', divide='ignore', over='ignore'):
            mean = total / count
            fill = ~valid & (count >= 3) & (high - low < settings.step_threshold(mean))
        depth[fill] = mean[fill]
    return depth


def smooth_depth(depth: np.ndarray, settings) -> np.ndarray:
    """Edge-preserving smoothing of a depth image (NaN kept): a bilateral filter in metres.

    Neighbours within ``settings.smoothing_radius`` pixels are averaged with weights that fall off
    with depth difference (sigma = the depth-jump threshold at 1 m), so surfaces lose their sensor
    speckle while depth discontinuities stay sharp.
    """
    if settings.smoothing_radius <= 0:
        return depth
    valid = np.isfinite(depth)
    filled = np.where(valid, depth, np.float32(0))
    sigma = float(settings.step_threshold(np.float32(1.0)))
    out = cv2.bilateralFilter(filled, 2 * settings.smoothing_radius + 1, sigma, settings.smoothing_radius)
    out[~valid] = np.nan
    return out


def smoothed_normals(cloud: np.ndarray, step: int = 3) -> np.ndarray:
    """(H, W, 3) float32 unit normals facing the camera (NaN where undefined) of an organized cloud.

    The cloud is box-averaged over 3x3 valid neighbours; the normal is the cross product of its
    differences ``step`` pixels to either side along rows and columns.
    """
    valid = np.isfinite(cloud[..., 2])
    weight = cv2.boxFilter(valid.view(np.uint8).astype(np.float32), -1, (3, 3), normalize=False)
    weight[~valid] = np.nan  # a pixel without depth has no smoothed point
    filled = np.where(valid[..., None], cloud, np.float32(0))
    with np.errstate(invalid='ignore', divide='ignore'):
        smooth = cv2.boxFilter(filled, -1, (3, 3), normalize=False) / weight[..., None]
    s = step
    inner = (slice(s, -s), slice(s, -s))
    dx = smooth[s:-s, 2 * s:] - smooth[s:-s, :-2 * s]
    dy = smooth[2 * s:, s:-s] - smooth[:-2 * s, s:-s]
    ax, ay, az = dx[..., 0], dx[..., 1], dx[..., 2]
    bx, by, bz = dy[..., 0], dy[..., 1], dy[..., 2]
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    point = cloud[inner]
    with np.errstate(invalid='ignore', divide='ignore'):
        # Unit length, and facing the camera (n . p < 0): one scale per pixel does both.
        scale = np.float32(1) / np.sqrt(nx * nx + ny * ny + nz * nz)
        scale = np.where(nx * point[..., 0] + ny * point[..., 1] + nz * point[..., 2] > 0, -scale, scale)
    normals = np.full(cloud.shape, np.nan, np.float32)
    inside = normals[inner]
    inside[..., 0], inside[..., 1], inside[..., 2] = nx * scale, ny * scale, nz * scale
    normals[~valid] = np.nan
    return normals


def dominant_up(normals: np.ndarray, prefer_weight: float) -> Optional[np.ndarray]:
    """The most common surface normal of the view (pixel-weighted, image-up preferred), or None."""
    flat = normals.reshape(-1, 3)
    flat = flat[np.isfinite(flat[:, 0])]
    if flat.shape[0] < 50:
        return None
    if flat.shape[0] > 20000:
        flat = flat[:: flat.shape[0] // 20000]
    # 2D histogram of the normal's x, y (z < 0: facing the camera) in 0.1 bins.
    bins = 20
    ix = np.clip(((flat[:, 0] + 1) * bins / 2).astype(int), 0, bins - 1)
    iy = np.clip(((flat[:, 1] + 1) * bins / 2).astype(int), 0, bins - 1)
    weights = np.maximum(0.0, 1.0 + prefer_weight * (flat @ IMAGE_UP))
    hist = np.bincount(ix * bins + iy, weights=weights, minlength=bins * bins).reshape(bins, bins)
    hist = cv2.boxFilter(hist.astype(np.float32), -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    peak = np.unravel_index(int(np.argmax(hist)), hist.shape)
    guess = np.array([(peak[0] + 0.5) * 2 / bins - 1, (peak[1] + 0.5) * 2 / bins - 1, 0.0])
    guess[2] = -math.sqrt(max(0.0, 1 - guess[0] ** 2 - guess[1] ** 2))
    for _ in range(3):  # mean shift towards the mode
        near = flat[flat @ guess > math.cos(math.radians(12))]
        if near.shape[0] == 0:
            break
        guess = near.mean(axis=0).astype(np.float64)
        guess /= np.linalg.norm(guess)
    return guess  # facing the camera: the outward normal of the dominant surface, its "up"


def support_plane(cloud: np.ndarray, normals: np.ndarray, up: np.ndarray, settings,
                  hypotheses: int = 6) -> Optional[np.ndarray]:
    """The support plane [a, b, c, d] (normal towards the camera) for gravity ``up``, or None.

    Plane hypotheses come from triples of up-facing pixels (normal within ``max_plane_tilt_deg`` of
    ``up``); the few with the most up-facing inliers among a sample are then judged by the pixel
    count of their largest *connected* region of up-facing inliers (at half resolution), so
    the winner is the largest continuous horizontal surface (a table rather than a plane that
    strings box tops, a far table edge and the robot's base together). It is refined by least
    squares on that region. The plane may tilt from ``up`` by ``max_plane_tilt_deg``: real depth
    is often warped by a few degrees. The region must hold ``min_plane_fraction`` of the up-facing
    pixels; one smaller than a tenth of that fraction of all valid pixels (a bin floor between its
    objects can be 0.1 % of the view) must also have less than 10 % of the valid points more than
    2 cm below it (the bottom of the scene); else there is no support (None).
    """
    up = np.asarray(up, np.float32)
    with np.errstate(invalid='ignore'):
        facing = (normals @ up) > math.cos(math.radians(settings.max_plane_tilt_deg))
    if np.count_nonzero(facing) < 20:
        return None
    facing_index = np.flatnonzero(facing)
    rng = np.random.default_rng(settings.seed)
    n = min(settings.max_plane_samples, facing_index.size)
    sample = cloud.reshape(-1, 3)[facing_index[rng.integers(0, facing_index.size, n)]]
    threshold = settings.inlier_threshold(sample[:, 2])
    picks = rng.integers(0, n, size=(settings.ransac_iterations, 3))
    p0, p1, p2 = sample[picks[:, 0]], sample[picks[:, 1]], sample[picks[:, 2]]
    normal = np.cross(p1 - p0, p2 - p0)
    length = np.linalg.norm(normal, axis=1)
    ok = length > 1e-9
    normal, p0 = normal[ok] / length[ok, None], p0[ok]
    normal *= np.where(normal @ up < 0, -1.0, 1.0)[:, None].astype(np.float32)
    ok = normal @ up > math.cos(math.radians(settings.max_plane_tilt_deg))
    normal, p0 = normal[ok], p0[ok]
    if normal.shape[0] == 0:
        return None
    offset = -np.einsum('ij,ij->i', normal, p0)
    score = np.count_nonzero(np.abs(normal @ sample.T + offset[:, None]) < threshold[None, :], axis=1)
    candidates = np.concatenate([normal, offset[:, None]], axis=1)
    # Near copies (offsets within 1 cm, normals within 3.6 deg) of a hypothesis already judged are skipped.
    near_copy = (np.abs(offset[:, None] - offset[None, :]) < 0.01) & (normal @ normal.T > 0.998)
    skip = np.zeros(offset.size, bool)
    best_area, best = 0.0, None
    half, facing_half = cloud[::2, ::2], facing[::2, ::2]  # connectivity is judged at half resolution
    z = half[..., 2]
    pixel_threshold = settings.inlier_threshold(z)
    judged = 0
    for index in np.argsort(-score, kind='stable'):
        if judged == hypotheses:
            break
        if skip[index]:
            continue
        skip |= near_copy[index]
        judged += 1
        candidate = candidates[index]
        with np.errstate(invalid='ignore'):
            inliers = facing_half & (np.abs(half @ candidate[:3].astype(np.float32) + np.float32(candidate[3]))
                                     < pixel_threshold)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(inliers.view(np.uint8), connectivity=8)
        if count <= 1:
            continue
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[largest, cv2.CC_STAT_AREA] > best_area:
            best_area, best = stats[largest, cv2.CC_STAT_AREA], labels == largest
    # Nothing to stand on: no continuous surface among the up-facing pixels, or one too small in the
    # view unless it is the bottom of the scene (a bin floor seen between its objects).
    valid_half = np.isfinite(z)
    if best is None or best_area < max(3.0, settings.min_plane_fraction * np.count_nonzero(facing_half)):
        return None
    small = best_area < 0.1 * settings.min_plane_fraction * np.count_nonzero(valid_half)
    sel = half[best].astype(np.float64)
    if sel.shape[0] > 5000:
        sel = sel[:: sel.shape[0] // 5000]
    centre = sel.mean(axis=0)
    _, _, vt = np.linalg.svd(sel - centre, full_matrices=False)
    plane_normal = vt[-1] if abs(vt[-1] @ up) > math.cos(math.radians(settings.max_plane_tilt_deg)) else up
    plane = np.r_[plane_normal, -plane_normal @ centre]
    plane = plane if plane[3] > 0 else -plane
    if small:
        with np.errstate(invalid='ignore'):
            below = np.count_nonzero(half[valid_half] @ plane[:3].astype(np.float32) + np.float32(plane[3]) < -0.02)
        if below > 0.1 * np.count_nonzero(valid_half):
            return None
    return plane


def support_below(plane: np.ndarray, cloud: np.ndarray, normals: np.ndarray, fx: float, settings) -> np.ndarray:
    """``plane``, or the support under it when ``plane`` is the top of a flat object lying on it.

    Under gravity a support is the bottom of what stands on it: nothing horizontal lies just below
    a table. The floor under a flat object shows right beside it: up-facing pixels ``LOWER_BAND``
    below ``plane`` (1.5 to 6 cm, and beyond its inlier threshold), within the image span of a 6 cm
    side (``fx`` the working focal length) of its up-facing inliers and not joined to them by
    up-facing pixels (a warped table's lower part is). When they number at least
    ``LOWER_SHARE`` of those inliers (and 20), ``plane`` is the top of something lying on that
    floor (a pack of chenille stems on a shelf whose glossy floor shows little depth, a book lying flat),
    and the support is ``plane`` lowered to the floor's median height. A shelf board's front edge
    over a lower board is not such a top: the lower board lies beyond the span. Nor is a plane whose
    up-facing inliers fill ``LOWER_MAX_TOP`` of the pixels with depth: that is the surface the camera
    looks at (a table whose near part sags out of reach of its inliers must keep its plane, or the
    whole table would rise into an object).
    """
    up = plane[:3].astype(np.float32)
    with np.errstate(invalid='ignore'):
        height = cloud @ up + np.float32(plane[3])
        threshold = settings.inlier_threshold(cloud[..., 2])
        facing = normals @ up > math.cos(math.radians(settings.max_plane_tilt_deg))
        top = facing & (np.abs(height) < threshold)
        floor = facing & (height < -np.maximum(threshold, np.float32(LOWER_BAND[0]))) & (height > -LOWER_BAND[1])
    top_count = np.count_nonzero(top)
    need = max(20.0, LOWER_SHARE * top_count)
    if np.count_nonzero(floor) < need or top_count > LOWER_MAX_TOP * np.count_nonzero(np.isfinite(height)):
        return plane
    count, parts = cv2.connectedComponents(facing.view(np.uint8), connectivity=8)
    joined = np.zeros(count, bool)
    joined[parts[top]] = True
    floor &= ~joined[parts]
    distance = cv2.distanceTransform((~top).view(np.uint8), cv2.DIST_L2, 3)
    with np.errstate(invalid='ignore'):
        floor &= distance <= np.float32(LOWER_BAND[1] * fx) / cloud[..., 2] + 2
    if np.count_nonzero(floor) < need:
        return plane
    lowered = np.array(plane, np.float64)
    lowered[3] -= float(np.median(height[floor]))
    return lowered


def grow_support(cloud: np.ndarray, normals: np.ndarray, height: np.ndarray, edges: np.ndarray,
                 settings) -> Tuple[np.ndarray, np.ndarray]:
    """Support region and a quadratically corrected height image.

    Seeds are plane inliers; the region is every connected pixel (no depth jump between them)
    whose normal is within ``support_normal_tolerance_deg`` of the plane's and whose height is
    below ``support_grow_distance``. A quadratic height model fitted to the region (two passes,
    outliers dropped), clamped to +-``support_grow_distance`` so that it never extrapolates far
    from the support, is subtracted from ``height``; pixels within the inlier threshold of the
    corrected height join the region.
    """
    thr = settings.inlier_threshold(cloud[..., 2])
    with np.errstate(invalid='ignore'):
        strict = np.abs(height) < thr
        plane_n = _mean_normal(normals[strict])
        flat = (normals @ plane_n.astype(np.float32)) > math.cos(math.radians(settings.support_normal_tolerance_deg))
        soft = (strict | (flat & (np.abs(height) < settings.support_grow_distance))) & ~edges
    region = _components_touching(soft, strict)
    corrected = height
    for _ in range(2):
        model = _quadratic_fit(cloud, height, region, plane_n)
        if model is None:
            break
        corrected = height - np.clip(model, -settings.support_grow_distance, settings.support_grow_distance)
        with np.errstate(invalid='ignore'):
            region = _components_touching((np.abs(corrected) < thr) & ~edges, np.abs(corrected) < thr)
    with np.errstate(invalid='ignore'):
        region |= np.abs(corrected) < thr
    return region, corrected


def _mean_normal(normals: np.ndarray) -> np.ndarray:
    normals = normals[np.isfinite(normals[:, 0])]
    mean = normals.mean(axis=0) if normals.shape[0] else np.array([0.0, 0.0, -1.0])
    return mean / max(np.linalg.norm(mean), 1e-9)


def _components_touching(mask: np.ndarray, seeds: np.ndarray, min_seeds: int = 20) -> np.ndarray:
    """The connected components of ``mask`` (4-connected) that hold at least ``min_seeds`` seed pixels."""
    count, labels = cv2.connectedComponents(mask.view(np.uint8) if mask.dtype == bool else mask, connectivity=4)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    hits = np.bincount(labels[seeds & mask], minlength=count)
    keep = hits >= min_seeds
    keep[0] = False
    return keep[labels]


def _least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares coefficients by the normal equations (a few columns, thousands of rows; ridge 1e-9)."""
    gram = design.T @ design
    gram[np.diag_indices_from(gram)] += 1e-9
    return np.linalg.solve(gram, design.T @ target)


def _quadratic_fit(cloud: np.ndarray, height: np.ndarray, region: np.ndarray, normal: np.ndarray):
    """Height model h(u, v) = quadratic in the plane coordinates, fitted to ``region``; (H, W) or None."""
    ys, xs = np.nonzero(region)
    if ys.size < 200:
        return None
    stride = max(1, ys.size // 6000)
    ys, xs = ys[::stride], xs[::stride]
    e1, e2 = plane_basis(normal)
    pts = cloud[ys, xs].astype(np.float64)
    u, v = pts @ e1, pts @ e2
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    target = height[ys, xs].astype(np.float64)
    coef = _least_squares(design, target)
    resid = np.abs(design @ coef - target)
    keep = resid < max(3 * np.median(resid), 1e-3)
    coef = _least_squares(design[keep], target[keep])
    uu = cloud @ e1.astype(np.float32)
    vv = cloud @ e2.astype(np.float32)
    c = coef.astype(np.float32)
    return c[0] + c[1] * uu + c[2] * vv + c[3] * uu * uu + c[4] * uu * vv + c[5] * vv * vv


def over_support(cloud: np.ndarray, support: np.ndarray, plane: np.ndarray, margin: float,
                 candidates: Optional[np.ndarray] = None, cell: float = 0.005) -> np.ndarray:
    """(H, W) bool: pixels whose point projects (along the plane normal) into the support's convex hull.

    The hull of the support region's points in plane coordinates is rasterised on a ``cell``-metre
    grid and grown by ``margin`` metres; objects rest on the support, so what lies beyond its
    outline (a table edge's frame, the floor past the table, the room) is not an object. Only the
    ``candidates`` pixels (a bool mask; all when None) are tested, the rest are False.
    """
    # The grid axes are plane_basis's turned by half a turn: the raster the settings were tuned on.
    basis = -np.stack(plane_basis(plane[:3]), axis=1).astype(np.float32)
    ys, xs = np.nonzero(support)
    stride = max(1, ys.size // 20000)
    footprint = cloud[ys[::stride], xs[::stride]] @ basis
    footprint = footprint[np.isfinite(footprint[:, 0])]
    out = np.zeros(support.shape, bool)
    if footprint.shape[0] < 3:
        return out
    origin = footprint.min(axis=0) - margin
    size = np.ceil((footprint.max(axis=0) + margin - origin) / cell).astype(int) + 1
    index = np.arange(out.size) if candidates is None else np.flatnonzero(candidates)
    if size[0] * size[1] > 16_000_000:  # a support larger than 20 m across: do not restrict
        out.reshape(-1)[index] = True
        return out
    grid = np.zeros((size[1], size[0]), np.uint8)
    hull = cv2.convexHull(np.round((footprint - origin) / cell).astype(np.int32))
    cv2.fillConvexPoly(grid, hull, 1)
    if margin > 0:
        radius = int(round(margin / cell))
        grid = cv2.dilate(grid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    with np.errstate(invalid='ignore'):
        uv = np.round((cloud.reshape(-1, 3)[index] @ basis - origin) / cell)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < size[0]) & (uv[:, 1] >= 0) & (uv[:, 1] < size[1])
    index, uv = index[inside], uv[inside].astype(np.int64)
    out.reshape(-1)[index] = grid[uv[:, 1], uv[:, 0]] > 0
    return out


def standing_beyond(beyond: np.ndarray, regions: np.ndarray, height: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ``regions`` that reach down to the support plane at one of their ``beyond`` pixels.

    ``regions`` (bool) are split into 8-connected parts (the candidates above the support, without
    the pixels of depth steps); ``beyond`` marks those outside the support's outline
    (:func:`over_support`); ``height`` is the height above the support plane. A glossy shelf floor
    returns depth in patches only, so an object standing on a patch that shows none lies beyond the
    outline of what shows; its lowest pixels still touch the plane (within ``STANDING_HEIGHT``), where
    the room behind a table shows past the table's edge, well above it. Used under gravity only
    (the TF prior or ``up_vector``), where the plane's extension is known to be level.
    """
    count, parts = cv2.connectedComponents(regions.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    standing = np.zeros(count, bool)
    with np.errstate(invalid='ignore'):
        standing[parts[beyond & (height < STANDING_HEIGHT)]] = True
    standing[0] = False
    return standing[parts]


def image_hull(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the convex hull of a mask's pixels in the image (objects on a desk the floor surrounds)."""
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, np.uint8)
    if ys.size >= 3:
        stride = max(1, ys.size // 20000)
        cv2.fillConvexPoly(out, cv2.convexHull(np.stack([xs[::stride], ys[::stride]], axis=1).astype(np.int32)), 1)
    return out > 0
