"""Oriented bounding boxes (pose + size) of object clouds resting on a support plane."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import cv2
import numpy as np

from robot_vision.errors import InputError
from robot_vision.perception3d.plane import cross3, plane_basis

#: Boxes are fitted to at most about this many points, which bounds the cost.
MAX_BOX_POINTS = 2500
_HASH = np.uint32(2654435761)  # Knuth's multiplicative hash (mod 2^32): a pseudo-random, fixed choice per pixel


def box_sample(indices: np.ndarray, mask: np.ndarray, depth: np.ndarray,
               step_threshold: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(M,) bool: which points of a region to fit its box to.

    ``indices`` (M,) are the flat pixel indices of the region's points, ``mask`` (H, W) bool the
    region, ``depth`` (H, W) metres, ``step_threshold(z)`` the depth step that separates two
    surfaces. A point is left out unless a left or right neighbour and an upper or lower
    neighbour in the region lie within that step of it: a flying pixel at a depth edge (one
    alone widened a bottle's box by 10 cm), or a one-pixel streak of mixed pixels along the edge
    (30 such points widened a cracker box by 1.3 cm). A region with no such point keeps all.

    Above ``MAX_BOX_POINTS`` points, only a pseudo-random set of about that many pixels is
    looked at, each chosen by its own index. A pixel is in or out whatever the rest of the region
    is, so a few pixels more or less at the region's edge (depth noise, a lossy codec) move the
    box only by what those pixels hold. Every k-th point of the list picks another set after one
    more pixel, which moved a far (1.5 m) background box by 16 mm.
    """
    count = indices.size
    if count > MAX_BOX_POINTS:
        chosen = indices.astype(np.uint32) * _HASH < np.uint32(MAX_BOX_POINTS / count * 0xFFFFFFFF)
    else:
        chosen = np.ones(count, bool)
    h, w = mask.shape
    pixels = indices[chosen]
    rows, cols = np.divmod(pixels, w)
    z = depth.reshape(-1)[pixels]
    neighbours = pixels + np.array([[1], [-1], [w], [-w]])  # right, left, below, above
    with np.errstate(invalid='ignore'):
        close = np.take(mask.reshape(-1), neighbours, mode='clip') & (
            np.abs(np.take(depth.reshape(-1), neighbours, mode='clip') - z) <= step_threshold(z))
    close[0] &= cols + 1 < w
    close[1] &= cols > 0
    close[2] &= rows + 1 < h
    close[3] &= rows > 0
    joined = (close[0] | close[1]) & (close[2] | close[3])
    if joined.any():
        chosen[chosen] = joined
    return chosen


def oriented_box(points: np.ndarray, up: np.ndarray, plane: Optional[np.ndarray] = None,
                 contact_tolerance: float = 0.03,
                 sample: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Fit an oriented bounding box whose z axis is ``up`` to (M, 3) points (metres).

    The footprint is the minimum-area rectangle of the points projected on the plane normal
    to ``up`` (``cv2.minAreaRect``); x is its longer side, z = ``up``, y = z cross x.
    ``sample`` (M,) bool selects the points the box is fitted to (see ``box_sample``);
    without it, at most ``MAX_BOX_POINTS`` evenly strided points are used. When ``plane``
    [a, b, c, d] (unit normal = ``up``) is given and the lowest point is within
    ``contact_tolerance`` metres of it, the box is extended down to the plane (the hidden
    underside of a resting object).

    Returns (pose, size): pose (4, 4) float64 object->camera with the origin at the box
    centre, size (3,) float64 extents along x, y, z in metres. The sign of x is chosen so
    that x points away from the camera's side as little as possible (x . camera-x >= 0),
    which makes the pose deterministic; boxes are symmetric under 180 deg yaw anyway.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise InputError(f'points: expected a non-empty (M, 3) array, got {points.shape}')
    up = np.asarray(up, np.float64)
    up = up / np.linalg.norm(up)
    e1, e2 = plane_basis(up)
    if sample is not None:
        points = points[sample]
    elif points.shape[0] > MAX_BOX_POINTS:
        points = points[:: int(np.ceil(points.shape[0] / MAX_BOX_POINTS))]
    projected = points.astype(np.float32, copy=False) @ np.stack([e1, e2, up], axis=1).astype(np.float32)
    uv = np.ascontiguousarray(projected[:, :2])
    heights = projected[:, 2]
    (cu, cv), (w, h), _ = cv2.minAreaRect(uv)
    corners = cv2.boxPoints(((cu, cv), (w, h), _)).astype(np.float64)
    edge_a, edge_b = corners[1] - corners[0], corners[2] - corners[1]
    len_a, len_b = np.linalg.norm(edge_a), np.linalg.norm(edge_b)
    long_edge = edge_a if len_a >= len_b else edge_b
    long_len, short_len = max(len_a, len_b), min(len_a, len_b)
    if long_len < 1e-9:
        long_edge = np.array([1.0, 0.0])
    direction = long_edge / max(np.linalg.norm(long_edge), 1e-12)
    x_axis = direction[0] * e1 + direction[1] * e2
    if x_axis[0] < 0:
        x_axis = -x_axis
    y_axis = cross3(up, x_axis)
    bottom, top = float(heights.min()), float(heights.max())
    if plane is not None:
        plane_height = -float(plane[3])  # height (along up) of the plane itself
        if bottom - plane_height <= contact_tolerance:
            bottom = min(bottom, plane_height)
    centre = cu * e1 + cv * e2 + 0.5 * (bottom + top) * up
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x_axis, y_axis, up, centre
    return pose, np.array([long_len, short_len, top - bottom])
