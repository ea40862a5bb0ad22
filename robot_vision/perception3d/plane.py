"""Vectorised RANSAC plane fitting with an optional up-vector prior, and plane utilities."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from robot_vision.errors import InputError

#: Preemptive RANSAC: all hypotheses are scored on this many random points, and only the
#: ``PREEMPTIVE_KEEP`` best are scored on every point.
PREEMPTIVE_POINTS = 400
PREEMPTIVE_KEEP = 8


def orient_plane(plane: np.ndarray, viewpoint: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Return ``plane`` [a, b, c, d] with a unit normal pointing towards ``viewpoint`` (camera origin)."""
    plane = np.asarray(plane, np.float64).reshape(4).copy()
    norm = np.linalg.norm(plane[:3])
    if not (np.isfinite(norm) and norm > 0):
        raise InputError(f'plane: expected [a, b, c, d] with a non-zero normal, got {plane}')
    plane /= norm
    if plane[:3] @ np.asarray(viewpoint, np.float64) + plane[3] < 0:
        plane = -plane
    return plane


def plane_distance(points: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """Signed distances (metres) of (..., 3) points to ``plane``; positive on the normal's side."""
    plane = np.asarray(plane, np.float64)
    points = np.asarray(points)
    dtype = points.dtype if points.dtype.kind == 'f' else np.dtype(np.float64)
    return points.astype(dtype, copy=False) @ plane[:3].astype(dtype) + dtype.type(plane[3])


def fit_plane_lsq(points: np.ndarray) -> np.ndarray:
    """Least-squares plane [a, b, c, d] (unit normal) through (N >= 3, 3) points, via SVD."""
    points = np.asarray(points, np.float64)
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    normal = vt[-1]
    return np.r_[normal, -normal @ centre]


def ransac_plane(points: np.ndarray, threshold, iterations: int = 200,
                 up: Optional[Sequence[float]] = None, max_angle_deg: float = 90.0,
                 rng: Optional[np.random.Generator] = None, prefer: Optional[Sequence[float]] = None,
                 prefer_weight: float = 0.0) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """Fit the plane with the most inliers to (N, 3) points (metres) by vectorised RANSAC.

    ``threshold`` is the inlier distance in metres, a scalar or an (N,) array (e.g. growing
    with depth). All ``iterations`` hypotheses are scored at once as an (iterations, N)
    matrix on ``PREEMPTIVE_POINTS`` random points (preemptive RANSAC); the ``PREEMPTIVE_KEEP``
    best are then scored on all N points, so keep N to a few thousand (subsample first).
    When ``up`` (3,) is given, only planes whose normal is within ``max_angle_deg`` of it are
    accepted (normal sign is ignored for the test). ``prefer`` (3,) with ``prefer_weight`` w
    is a soft preference instead: a hypothesis's inlier count is multiplied by
    max(0, 1 + w * (n . prefer)) with n its unit normal oriented towards the origin. The
    winner is refined by least squares on its inliers.

    Returns (plane, inliers): plane is (4,) float64 [a, b, c, d] with a unit normal pointing
    towards the origin (the camera) and inliers an (N,) bool mask, or (None, all-False) when
    no hypothesis passed.
    """
    points = np.asarray(points, np.float32)
    n = points.shape[0]
    none = (None, np.zeros(n, bool))
    if n < 3:
        return none
    rng = np.random.default_rng(0) if rng is None else rng
    threshold = np.broadcast_to(np.asarray(threshold, np.float32), (n,))
    picks = rng.integers(0, n, size=(int(iterations), 3))
    p0, p1, p2 = points[picks[:, 0]], points[picks[:, 1]], points[picks[:, 2]]
    normals = np.cross(p1 - p0, p2 - p0)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    normals = normals[ok] / norms[ok, None]
    p0 = p0[ok]
    if up is not None:
        up = np.asarray(up, np.float32)
        up = up / np.linalg.norm(up)
        ok = np.abs(normals @ up) >= np.cos(np.deg2rad(max_angle_deg)) - 1e-6
        normals, p0 = normals[ok], p0[ok]
    if normals.shape[0] == 0:
        return none
    offsets = -np.einsum('ij,ij->i', normals, p0)
    weights = np.ones(normals.shape[0], np.float32)
    if prefer is not None and prefer_weight:
        towards = np.where(offsets[:, None] < 0, -normals, normals)  # oriented towards the origin
        weights = np.maximum(0.0, 1.0 + prefer_weight * (towards @ np.asarray(prefer, np.float32)))
    # Preemptive scoring: every hypothesis on a random subset, the best few on all points.
    order = rng.permutation(n)
    first = order[:min(n, PREEMPTIVE_POINTS)]
    first_dist = np.abs(normals @ points[first].T + offsets[:, None])
    counts = np.count_nonzero(first_dist < threshold[first][None, :], axis=1) * weights
    top = np.argsort(-counts, kind='stable')[:PREEMPTIVE_KEEP]
    normals, offsets, weights = normals[top], offsets[top], weights[top]
    dist = np.abs(normals @ points.T + offsets[:, None])
    counts = np.count_nonzero(dist < threshold[None, :], axis=1) * weights
    best = int(np.argmax(counts))
    inliers = dist[best] < threshold
    if inliers.sum() < 3:
        return none
    plane = fit_plane_lsq(points[inliers])
    if up is not None and abs(plane[:3] @ up) < np.cos(np.deg2rad(max_angle_deg)) - 1e-6:
        plane = np.r_[normals[best], offsets[best]].astype(np.float64)
    plane = orient_plane(plane)
    inliers = np.abs(points @ plane[:3].astype(np.float32) + np.float32(plane[3])) < threshold
    return plane, inliers


def cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (float64), without np.cross's per-call overhead."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def plane_basis(normal: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (3,) that with the unit ``normal`` form a right-handed orthonormal basis."""
    normal = np.asarray(normal, np.float64)
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = cross3(helper, normal)
    e1 /= np.sqrt(e1 @ e1)
    e2 = cross3(normal, e1)
    return e1, e2
