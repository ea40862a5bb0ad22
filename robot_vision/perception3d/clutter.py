"""The 'clutter' segmentation method: unknown objects on tables, in piles and in bins, from depth.

Steps (all on a working image at most ``settings.working_width`` pixels wide, labels upsampled at
the end):

1. **Holes.** Depth registered to a higher-resolution colour camera leaves a grid of missing
   pixels; each missing pixel takes the mean of its valid 5x5 neighbours when they agree (their
   spread is below the depth-jump threshold), twice.
2. **Normals** from central differences of the 3x3-smoothed organized cloud.
3. **Support.** "Up" is the gravity prior when the frame has one (``camera_to_fixed``) or the
   dominant surface normal of the view (pixel-weighted, with a soft preference for image-up). The
   support is the height level (along up) with the largest metric area of up-facing pixels; its
   plane is refined on those pixels. The support *region* grows from its inliers over every pixel
   whose normal stays within ``support_normal_tolerance_deg`` of up and whose height stays within
   ``support_grow_distance`` without a depth jump, and a quadratic height correction fitted to that
   region follows a table that is not quite flat (stereo noise, curvature far away).
4. **Structure.** Large planar surfaces facing sideways (bin and shelf walls, a back wall) are
   background, not objects: connected regions of one normal (within 15 degrees), at least 60 degrees
   from up, larger than ``max_object_size`` in extent.
5. **Instances.** Pixels above the (corrected) support are cut at depth discontinuities (far
   side) and at concave creases, where the normals of two pixels a short step apart turn towards
   each other (touching objects, and objects on objects, meet at concave edges; an object's own
   surface is convex), then labelled as connected components; cut pixels rejoin the neighbouring
   label at a similar depth.
"""

from __future__ import annotations

import math
import time
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from robot_vision.camera import deproject
from robot_vision.perception3d.planar import secondary_supports
from robot_vision.perception3d.segmentation import (SceneSegmentation, SegmentationSettings, objects_from_labels,
                                                    up_prior)
from robot_vision.types import CameraIntrinsics, Objects3D, RGBDFrame

#: Soft preference for image-up (optical -y) when the view has no gravity prior.
IMAGE_UP = np.array([0.0, -1.0, 0.0], np.float32)


def working_factor(width: int, max_width: int) -> int:
    """Integer downsampling factor that brings ``width`` to at most ``max_width`` pixels."""
    return max(1, int(math.ceil(width / max(max_width, 1))))


def downsample_depth(depth: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean of the valid depths of each ``factor`` x ``factor`` block (NaN where none is valid)."""
    if factor == 1:
        return depth.copy()
    h, w = depth.shape[0] // factor * factor, depth.shape[1] // factor * factor
    blocks = depth[:h, :w].reshape(h // factor, factor, w // factor, factor)
    valid = np.isfinite(blocks)
    total = np.where(valid, blocks, 0).sum(axis=(1, 3), dtype=np.float32)
    count = valid.sum(axis=(1, 3))
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def scaled_intrinsics(intrinsics: CameraIntrinsics, factor: int, shape: Tuple[int, int]) -> CameraIntrinsics:
    """Intrinsics of an image downsampled by block means of ``factor`` (pixel centres move by (f-1)/2)."""
    if factor == 1:
        return intrinsics
    return CameraIntrinsics(shape[1], shape[0], intrinsics.fx / factor, intrinsics.fy / factor,
                            (intrinsics.cx - (factor - 1) / 2) / factor, (intrinsics.cy - (factor - 1) / 2) / factor)


def jump_threshold(z: np.ndarray, settings) -> np.ndarray:
    """Depth step (metres) between neighbouring working pixels that separates two surfaces."""
    return settings.edge_depth_jump + settings.edge_depth_jump_relative * z


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
            fill = ~valid & (count >= 3) & (high - low < jump_threshold(mean, settings))
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
    sigma = float(jump_threshold(np.float32(1.0), settings))
    out = cv2.bilateralFilter(filled, 2 * settings.smoothing_radius + 1, sigma, settings.smoothing_radius)
    out[~valid] = np.nan
    return out


def smoothed_normals(cloud: np.ndarray, step: int = 3) -> np.ndarray:
    """(H, W, 3) float32 unit normals facing the camera (NaN where undefined) of an organized cloud."""
    valid = np.isfinite(cloud[..., 2])
    weight = cv2.boxFilter(valid.astype(np.float32), -1, (3, 3), normalize=False)
    smooth = np.empty_like(cloud)
    for k in range(3):
        channel = np.where(valid, cloud[..., k], np.float32(0))
        with np.errstate(invalid='ignore', divide='ignore'):
            smooth[..., k] = cv2.boxFilter(channel, -1, (3, 3), normalize=False) / weight
    smooth[~valid] = np.nan
    normals = np.full(cloud.shape, np.nan, np.float32)
    s = step
    dx = smooth[s:-s, 2 * s:] - smooth[s:-s, :-2 * s]
    dy = smooth[2 * s:, s:-s] - smooth[:-2 * s, s:-s]
    n = np.cross(dx, dy)
    with np.errstate(invalid='ignore', divide='ignore'):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        flip = np.einsum('ijk,ijk->ij', n, cloud[s:-s, s:-s]) > 0
    n[flip] *= -1
    normals[s:-s, s:-s] = n
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
    pts = cloud[facing]
    rng = np.random.default_rng(settings.seed)
    n = min(settings.max_plane_samples, pts.shape[0])
    sample = pts[rng.integers(0, pts.shape[0], n)]
    threshold = settings.plane_distance + settings.plane_distance_quadratic * sample[:, 2] ** 2
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
    best_area, best = 0.0, None
    half, facing_half = cloud[::2, ::2], facing[::2, ::2]  # connectivity is judged at half resolution
    z = half[..., 2]
    pixel_threshold = settings.plane_distance + settings.plane_distance_quadratic * z * z
    tried = []
    for index in np.argsort(-score, kind='stable'):
        if len(tried) == hypotheses:
            break
        candidate = np.r_[normal[index], offset[index]]
        if any(abs(candidate[3] - t[3]) < 0.01 and candidate[:3] @ t[:3] > 0.998 for t in tried):
            continue  # a near copy of one already judged
        tried.append(candidate)
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
    z = cloud[..., 2]
    thr = settings.plane_distance + settings.plane_distance_quadratic * z * z
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
    e1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
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
                 cell: float = 0.005) -> np.ndarray:
    """(H, W) bool: pixels whose point projects (along the plane normal) into the support's convex hull.

    The hull of the support region's points in plane coordinates is rasterised on a ``cell``-metre
    grid and grown by ``margin`` metres; objects rest on the support, so what lies beyond its
    outline (a table edge's frame, the floor past the table, the room) is not an object.
    """
    normal = plane[:3]
    e1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    basis = np.stack([e1, np.cross(normal, e1)], axis=1).astype(np.float32)
    ys, xs = np.nonzero(support)
    stride = max(1, ys.size // 20000)
    footprint = cloud[ys[::stride], xs[::stride]] @ basis
    footprint = footprint[np.isfinite(footprint[:, 0])]
    out = np.zeros(support.shape, bool)
    if footprint.shape[0] < 3:
        return out
    origin = footprint.min(axis=0) - margin
    size = np.ceil((footprint.max(axis=0) + margin - origin) / cell).astype(int) + 1
    if size[0] * size[1] > 16_000_000:  # a support larger than 20 m across: do not restrict
        return ~out
    grid = np.zeros((size[1], size[0]), np.uint8)
    hull = cv2.convexHull(np.round((footprint - origin) / cell).astype(np.int32))
    cv2.fillConvexPoly(grid, hull, 1)
    if margin > 0:
        radius = int(round(margin / cell))
        grid = cv2.dilate(grid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    with np.errstate(invalid='ignore'):
        uv = np.round((cloud @ basis - origin) / cell)
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < size[0]) & (uv[..., 1] >= 0) & (uv[..., 1] < size[1])
    u = np.where(inside, uv[..., 0], 0).astype(np.int64)
    v = np.where(inside, uv[..., 1], 0).astype(np.int64)
    return inside & (grid[v, u] > 0)


def image_hull(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the convex hull of a mask's pixels in the image (objects on a desk the floor surrounds)."""
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, np.uint8)
    if ys.size >= 3:
        stride = max(1, ys.size // 20000)
        cv2.fillConvexPoly(out, cv2.convexHull(np.stack([xs[::stride], ys[::stride]], axis=1).astype(np.int32)), 1)
    return out > 0


def depth_edges(depth: np.ndarray, settings, scale: float = 1.0) -> np.ndarray:
    """(H, W) bool: far side of every depth discontinuity, over 1 and 2 pixels (sensors blur steps).

    A step counts when the depth difference exceeds ``scale`` times the jump threshold at that
    depth (over one pixel) or twice that (over two pixels).
    """
    thr = jump_threshold(depth, settings) * np.float32(scale)
    far = np.zeros(depth.shape, bool)
    with np.errstate(invalid='ignore'):
        for k, factor in ((1, 1.0), (2, 2.0)):
            limit = thr * np.float32(factor)
            dx = depth[:, k:] - depth[:, :-k]
            far[:, k:] |= dx > limit[:, k:]
            far[:, :-k] |= -dx > limit[:, :-k]
            dy = depth[k:, :] - depth[:-k, :]
            far[k:, :] |= dy > limit[k:, :]
            far[:-k, :] |= -dy > limit[:-k, :]
    return far


def color_edges(color: np.ndarray, shape: Tuple[int, int], settings) -> np.ndarray:
    """(H, W) bool at the working size: strong colour gradients (CIE Lab, Scharr, max over channels)."""
    small = cv2.resize(color, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) if color.shape[:2] != shape \
        else color
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    magnitude = np.zeros(shape, np.float32)
    for k in range(3):
        gx = cv2.Scharr(lab[..., k], cv2.CV_32F, 1, 0)
        gy = cv2.Scharr(lab[..., k], cv2.CV_32F, 0, 1)
        np.maximum(magnitude, cv2.magnitude(gx, gy) / 16.0, out=magnitude)
    edges = (magnitude > settings.color_edge_threshold).view(np.uint8)
    return cv2.dilate(edges, np.ones((3, 3), np.uint8)) > 0


def concavity(cloud: np.ndarray, normals: np.ndarray, step: int = 3) -> np.ndarray:
    """(H, W) float32: the most concave turn of the normals towards any neighbour ``step`` pixels away.

    For neighbours p, q with normals n_p, n_q (facing the camera) the turn is
    (n_q - n_p) . (q - p) / |q - p|: negative where the surfaces meet in a valley (two planes
    meeting at an angle a give -2 sin(a / 2)), positive on a ridge. Each pixel keeps the minimum
    over rows, columns and both diagonals, on both pixels of the pair.
    """
    h, w = cloud.shape[:2]
    out = np.full((h, w), np.inf, np.float32)
    s = step
    for dy, dx in ((0, s), (s, 0), (s, s), (s, -s)):
        ys0, ys1 = slice(0, h - dy), slice(dy, h)
        xs0, xs1 = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        d = cloud[ys1, xs1] - cloud[ys0, xs0]
        dn = normals[ys1, xs1] - normals[ys0, xs0]
        with np.errstate(invalid='ignore', divide='ignore'):
            value = np.einsum('ijk,ijk->ij', dn, d) / np.sqrt(np.einsum('ijk,ijk->ij', d, d))
        value = np.where(np.isfinite(value), value, np.float32(np.inf))
        np.minimum(out[ys0, xs0], value, out=out[ys0, xs0])
        np.minimum(out[ys1, xs1], value, out=out[ys1, xs1])
    return out


def concave_creases(turn: np.ndarray, angle_deg: float, min_pixels: int) -> np.ndarray:
    """(H, W) bool: concave creases sharper than ``angle_deg``, as curves of at least ``min_pixels`` pixels."""
    crease = turn < -2 * math.sin(math.radians(angle_deg) / 2)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(crease.view(np.uint8), connectivity=8)
    long = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    long[0] = False
    return long[labels]


def structure_mask(labels: np.ndarray, count: int, normals: np.ndarray, cloud: np.ndarray, up: np.ndarray,
                   settings) -> np.ndarray:
    """(count,) bool: components that are large sideways-facing planes (walls), not objects.

    A wall's normal is at least 60 degrees from up, 85 % of its normals lie within 15 degrees of
    their mean, and its extent (2nd to 98th percentile of its points) exceeds ``max_object_size``.
    """
    out = np.zeros(count, bool)
    if count <= 1:
        return out
    flat = labels.reshape(-1)
    n = normals.reshape(-1, 3)
    ok = np.isfinite(n[:, 0]) & (flat > 0)
    idx, n = flat[ok], n[ok]
    pixels = np.bincount(idx, minlength=count)
    sums = np.stack([np.bincount(idx, weights=n[:, k], minlength=count) for k in range(3)], axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        aligned = np.bincount(idx, weights=(np.einsum('ij,ij->i', n, mean[idx]) > math.cos(math.radians(15))),
                              minlength=count) / pixels
    sideways = np.abs(mean @ np.asarray(up, np.float64)) < math.cos(math.radians(60))
    candidates = np.flatnonzero((pixels >= 50) & sideways & (aligned >= 0.85))
    if candidates.size == 0:
        return out
    points = cloud.reshape(-1, 3)
    order = np.argsort(flat, kind='stable')
    starts = np.searchsorted(flat[order], candidates)
    ends = np.searchsorted(flat[order], candidates, side='right')
    for label, start, end in zip(candidates, starts, ends):
        pts = points[order[start:end]]
        pts = pts[np.isfinite(pts[:, 2])]
        extent = np.percentile(pts, 98, axis=0) - np.percentile(pts, 2, axis=0)
        out[label] = np.linalg.norm(extent) > settings.max_object_size
    return out


def segment_clutter(frame: RGBDFrame, cloud: np.ndarray, valid: np.ndarray, settings: SegmentationSettings,
                    t0: float, timings: Dict[str, float]) -> SceneSegmentation:
    """The 'clutter' method of :func:`~robot_vision.perception3d.segmentation.segment_scene`.

    ``cloud``/``valid`` come from ``prepare_cloud`` (workspace applied). Runs :func:`segment_labels`
    on the workspace depth, upsamples its labels to the frame, keeps segments within the size limits
    (in full-resolution pixels, with at least 10 valid points) and fits their boxes. ``plane_mask``
    is the grown support region (upsampled); ``support_mask`` holds the secondary supports (desks,
    trays above the main support, ``split_supports``) or is None.
    """
    h, w = valid.shape
    depth = cloud[..., 2]
    result = segment_labels(depth, frame.intrinsics, up_prior(frame, settings), settings, frame.color)
    t1 = time.perf_counter()
    factor = result['factor']
    empty = Objects3D.empty(mask=np.zeros((0, h, w), bool))
    if result['plane'] is None:
        timings['plane'] = (t1 - t0) * 1e3 - timings['prepare']
        timings['total'] = (t1 - t0) * 1e3
        return SceneSegmentation(cloud, None, np.zeros((h, w), bool), empty, 'no_plane', timings)
    labels = _upsample(result['labels'], factor, (h, w))
    if factor > 1:
        work_depth = _upsample(result['cloud'][..., 2], factor, (h, w))
        labels = _refine_outlines(labels, cloud, valid, work_depth, result['plane'], settings, factor)
    # Pixels without depth take the hole labels; the labels of pixels with depth (the points) stay.
    labels = np.where(valid, labels, _upsample(result['hole_labels'], factor, (h, w)))
    plane_mask = _upsample(result['support'].view(np.uint8), factor, (h, w)) > 0
    plane_mask &= valid
    support_mask = None
    if result['secondary'] is not None:
        support_mask = (_upsample(result['secondary'].view(np.uint8), factor, (h, w)) > 0) & valid
    areas = np.bincount(labels.reshape(-1))
    points = np.bincount(labels[valid], minlength=areas.size)
    keep = np.flatnonzero((areas >= settings.min_object_points) & (areas <= settings.max_object_points)
                          & (points >= 10))
    keep = keep[keep > 0]
    keep = keep[np.argsort(-areas[keep], kind='stable')]
    boxes = _boxes(labels, keep)
    t2 = time.perf_counter()
    timings['plane'] = result['support_ms']
    timings['cluster'] = (t2 - t0) * 1e3 - timings['prepare'] - timings['plane']
    objects = objects_from_labels(labels, keep, boxes, cloud, valid, result['plane'], settings)
    t3 = time.perf_counter()
    timings['boxes'] = (t3 - t2) * 1e3
    timings['total'] = (t3 - t0) * 1e3
    return SceneSegmentation(cloud, result['plane'], plane_mask, objects, 'ok', timings, support_mask)


def _refine_outlines(labels: np.ndarray, cloud: np.ndarray, valid: np.ndarray, work_depth: np.ndarray,
                     plane: np.ndarray, settings: SegmentationSettings, factor: int) -> np.ndarray:
    """Full-resolution outlines for labels upsampled by ``factor``.

    Near an outline (within ``factor`` pixels of another label), a labelled pixel is cleared when
    its own point lies on the support (below ``min_height``) or off its block's depth
    (``work_depth``, the upsampled working depth) by more than the depth-step threshold (the
    background behind an object's rim); then unlabelled pixels above the support take the label
    of a depth-continuous neighbour (up to ``2 factor`` pixels out).
    """
    depth = cloud[..., 2]
    with np.errstate(invalid='ignore'):
        above = valid & (cloud @ plane[:3].astype(np.float32) + np.float32(plane[3]) > settings.min_height)
        off = np.abs(depth - work_depth) > jump_threshold(depth, settings)
    kernel = np.ones((2 * factor + 1, 2 * factor + 1), np.uint8)
    labelled = (labels > 0).view(np.uint8)
    band = (cv2.dilate(labelled, kernel) > 0) & (cv2.erode(labelled, kernel) == 0)
    labels = np.where(band & valid & (~above | off), 0, labels)
    return _grow_into(labels, band & above, cloud[..., 2], settings, iterations=2 * factor)


def _upsample(image: np.ndarray, factor: int, shape: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a working image by ``factor``, cropped or zero-padded to ``shape``."""
    if factor > 1:
        image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    out = np.zeros(shape, image.dtype)
    hh, ww = min(shape[0], image.shape[0]), min(shape[1], image.shape[1])
    out[:hh, :ww] = image[:hh, :ww]
    return out


def _boxes(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(K, 4) int (x, y, w, h) bounding boxes of the labels in ``keep``."""
    from scipy.ndimage import find_objects
    slices = find_objects(labels)
    boxes = np.zeros((keep.size, 4), np.int64)
    for row, label in enumerate(keep):
        ys, xs = slices[label - 1]
        boxes[row] = (xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    return boxes


def segment_labels(depth_full: np.ndarray, intrinsics: CameraIntrinsics, gravity_up: Optional[np.ndarray],
                   settings: SegmentationSettings, color: Optional[np.ndarray] = None, support_only: bool = False):
    """Run steps 1-5 on the working image; returns a dict of working-resolution results.

    Keys: ``factor``, ``cloud``, ``labels`` (int32, 0 none), ``hole_labels`` (``labels`` spread into
    the pixels without depth, :func:`labels_into_holes`), ``support`` (bool), ``height``
    (corrected, metres), ``plane`` (4,) or None, ``up`` (3,) or None, ``support_ms`` (the time of
    steps 1-3). With ``support_only`` it stops after the support plane (step 3, without growing).
    """
    t0 = time.perf_counter()
    factor = working_factor(depth_full.shape[1], settings.working_width)
    depth = downsample_depth(depth_full, factor)
    intr = scaled_intrinsics(intrinsics, factor, depth.shape)
    if settings.fill_holes:
        fill_holes(depth, settings)
    depth = smooth_depth(depth, settings)
    cloud = deproject(depth, intr)
    normals = smoothed_normals(cloud)
    up = gravity_up if gravity_up is not None else dominant_up(normals, settings.image_up_weight)
    result = {'factor': factor, 'cloud': cloud, 'labels': None, 'hole_labels': None, 'support': None,
              'secondary': None, 'height': None, 'plane': None, 'up': up, 'support_ms': 0.0}
    if up is None:
        return result
    plane = support_plane(cloud, normals, up, settings)
    if plane is None or support_only:
        result['plane'] = plane
        return result
    edges = depth_edges(depth, settings)
    height = cloud @ plane[:3].astype(np.float32) + np.float32(plane[3])
    support, corrected = grow_support(cloud, normals, height, edges, settings)
    result['support_ms'] = (time.perf_counter() - t0) * 1e3
    turn = concavity(cloud, normals)
    cuts = edges | concave_creases(turn, settings.crease_angle_deg, settings.min_crease_pixels)
    if color is not None and settings.color_edge_threshold > 0:
        weak = depth_edges(depth, settings, settings.weak_edge_fraction) | concave_creases(
            turn, settings.crease_angle_deg * settings.weak_edge_fraction, settings.min_crease_pixels)
        cuts |= weak & color_edges(color, depth.shape, settings)
    with np.errstate(invalid='ignore'):
        above = (corrected > settings.min_height) & (corrected < settings.max_height) & ~support
    secondary = None
    supports = support
    if settings.split_supports:
        secondary = secondary_supports(cloud, corrected, above & ~edges, plane, intr, settings)
        above &= ~secondary
        supports = support | secondary
    above &= over_support(cloud, supports, plane, settings.support_margin) | image_hull(supports)
    seeds = above & ~cuts
    count, labels = cv2.connectedComponents(seeds.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    walls = structure_mask(labels, count, normals, cloud, np.asarray(up, np.float32), settings)
    if walls.any():
        labels[walls[labels]] = 0
        above &= ~walls[labels] | (labels == 0)
    labels = _grow_into(labels, above, depth, settings, iterations=8)
    labels = absorb_fragments(labels, above, depth, intr, settings)
    result['hole_labels'] = labels_into_holes(labels, np.isfinite(depth), settings.hole_label_distance)
    result.update(labels=labels, support=support, secondary=secondary, height=corrected, plane=plane)
    return result


def labels_into_holes(labels: np.ndarray, valid: np.ndarray, max_distance: float) -> np.ndarray:
    """Pixels without depth take the label (or the background) of the nearest pixel with depth.

    Only within ``max_distance`` working pixels: a mask then covers the parts of its object the
    sensor saw no depth on (dark, shiny or grazing surfaces, the grid of a registered depth image),
    as a silhouette should, while the points stay those with depth.
    """
    missing = ~valid
    if max_distance <= 0 or not missing.any() or not valid.any():
        return labels
    distance, nearest = cv2.distanceTransformWithLabels(missing.view(np.uint8), cv2.DIST_L2, 3,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
    source = labels.reshape(-1)[np.flatnonzero(valid)]  # the labels of the valid pixels, in raster order
    take = missing & (distance <= max_distance)
    out = labels.copy()
    out[take] = source[nearest[take] - 1]
    return out


def absorb_fragments(labels: np.ndarray, allowed: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics,
                     settings) -> np.ndarray:
    """Hand segments smaller than ``fragment_area`` to the neighbour they continue at a similar depth.

    Slivers between two cuts and the cap of a bottle are pieces of a neighbour, not objects: their
    pixels are cleared and re-grown from the neighbouring labels (depth-continuous 4-neighbours).
    A segment's area is the sum of its pixels' footprints, z^2 / (fx fy) (seen face-on), so the
    limit means the same near and far. Fragments with no such neighbour stay as they are.
    """
    footprint = np.nan_to_num(depth * depth / np.float32(intrinsics.fx * intrinsics.fy))
    areas = np.bincount(labels.reshape(-1), weights=footprint.reshape(-1))
    small = areas < settings.fragment_area
    small[0] = False
    if not small.any():
        return labels
    pixels = np.bincount(labels.reshape(-1))
    cleared = np.where(small[labels], 0, labels)
    reach = int(math.sqrt(pixels[small].max())) + 2
    grown = _grow_into(cleared, allowed & small[labels], depth, settings, iterations=reach)
    return np.where((grown == 0) & small[labels], labels, grown)


def _grow_into(labels: np.ndarray, allowed: np.ndarray, depth: np.ndarray, settings, iterations: int) -> np.ndarray:
    """Give unlabelled ``allowed`` pixels the label of a 4-neighbour at a similar depth, repeatedly.

    Works on the list of candidate pixels only, so the cost follows the outlines, not the image.
    """
    h, w = labels.shape
    todo = np.flatnonzero(allowed & (labels == 0))
    if todo.size == 0:
        return labels
    labels = labels.copy()
    flat_labels = labels.reshape(-1)
    flat_depth = depth.reshape(-1)
    rows, cols = np.divmod(todo, w)
    z = flat_depth[todo]
    thr = jump_threshold(z, settings)
    neighbours = []
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        inside = (rows + dy >= 0) & (rows + dy < h) & (cols + dx >= 0) & (cols + dx < w)
        nb = np.where(inside, todo + dy * w + dx, todo)
        with np.errstate(invalid='ignore'):
            neighbours.append((nb, inside & (np.abs(flat_depth[nb] - z) < thr)))
    for _ in range(iterations):
        current = flat_labels[todo]
        new = current.copy()
        for nb, close in neighbours:
            nb_label = flat_labels[nb]
            take = (new == 0) & close & (nb_label > 0)
            new[take] = nb_label[take]
        changed = np.flatnonzero(new != current)
        if changed.size == 0:
            break
        flat_labels[todo[changed]] = new[changed]
        keep = new == 0  # only pixels still unlabelled need another look
        todo, neighbours = todo[keep], [(nb[keep], close[keep]) for nb, close in neighbours]
        if todo.size == 0:
            break
    return labels
