"""Objects joined to the wall they stand against, for the 'clutter' method.

A book leaning on a bin's back wall, or standing against a cardboard divider, often shows no depth
step or crease along the edge where it meets the wall: the two come out as one segment, too large to
match the book and, as a whole, not background either (the book part hides what lies behind it).
Under gravity such a segment is two upright planes. :func:`upright_parts` proposes the split;
:mod:`robot_vision.perception3d.clutter` keeps it only where the background rules then drop exactly
one of the two parts (the wall), so that an object's own faces never come apart.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import cv2
import numpy as np

from robot_vision.perception3d.background import SIDEWAYS_DEG, label_normals

#: Segments smaller than this (m^2, the footprint of their pixels) are not split: a wall is large.
MIN_AREA = 0.01
#: Each plane's largest connected set of inliers holds at least this share of the segment's points.
MIN_SHARE = 0.2
#: The two planes differ by at least this angle (degrees).
MIN_ANGLE_DEG = 8.0
#: Where the two parts meet, their normals turn towards each other by at most this (2 sin(a / 2)): a
#: convex edge (a box's two faces, 1.41 at a right angle) is one object.
MAX_TURN = 0.2
#: The RANSAC inlier distance, as a share of the support plane's inlier threshold at that depth.
INLIER_SCALE = 0.5
#: RANSAC hypotheses per plane.
HYPOTHESES = 64


def upright_parts(labels: np.ndarray, windows, cloud: np.ndarray, normals: np.ndarray, footprint: np.ndarray,
                  up: np.ndarray, settings, candidates: np.ndarray) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
    """Split the ``candidates`` (a bool per label) that are two upright planes meeting without a convex edge.

    A segment of at least ``MIN_AREA`` whose mean normal is upright (two upright planes make one) is
    split when its points hold a plane (RANSAC, refined by least squares) whose largest connected
    set of inliers has ``MIN_SHARE`` of them, and the rest a second such plane; both planes are
    upright (their normals at least ``SIDEWAYS_DEG`` from ``up``), at least ``MIN_ANGLE_DEG``
    apart, and not joined by a convex edge (``MAX_TURN``). Each pixel of the segment goes to the
    plane nearer to its point (one without depth: to the nearer of the two inlier sets in the
    image). ``windows`` are the labels' ``find_objects`` slices. Returns a copy of ``labels`` in
    which the second part of each split segment has a new label, and the (label, new label) pairs.
    """
    out = labels.copy()
    pairs: List[Tuple[int, int]] = []
    following = int(labels.max()) + 1
    sideways = math.cos(math.radians(SIDEWAYS_DEG))
    up = np.asarray(up, np.float64)
    _, mean, _ = label_normals(labels.reshape(-1), normals.reshape(-1, 3), candidates.size)
    with np.errstate(invalid='ignore'):  # a label without normals has a NaN mean: not upright
        candidates = candidates & (np.abs(mean @ up) < sideways)
    for label in np.flatnonzero(candidates):
        window = windows[label - 1]
        if window is None:
            continue
        segment = labels[window] == label
        if footprint[window][segment].sum() < MIN_AREA:
            continue
        points = cloud[window]
        valid = segment & np.isfinite(points[..., 2])
        count = np.count_nonzero(valid)
        threshold = INLIER_SCALE * float(np.median(settings.inlier_threshold(points[valid][:, 2])))
        rng = np.random.default_rng(int(label))  # the same segment gives the same split, whatever else is in view
        first = _plane_part(points, valid, threshold, rng)
        if first is None or np.count_nonzero(first[2]) < MIN_SHARE * count:
            continue
        rest = valid & ~cv2.dilate(first[2].view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        second = _plane_part(points, rest, threshold, rng) if np.count_nonzero(rest) >= MIN_SHARE * count else None
        if second is None or np.count_nonzero(second[2]) < MIN_SHARE * count:
            continue
        (n1, d1, part1), (n2, d2, part2) = first, second
        if (abs(n1 @ up) > sideways or abs(n2 @ up) > sideways
                or abs(float(n1 @ n2)) > math.cos(math.radians(MIN_ANGLE_DEG))):
            continue
        with np.errstate(invalid='ignore'):
            nearer = (np.abs(points @ n2.astype(np.float32) + np.float32(d2))
                      < np.abs(points @ n1.astype(np.float32) + np.float32(d1)))
        to_second = segment & np.where(valid, nearer, cv2.distanceTransform((~part2).view(np.uint8), cv2.DIST_L2, 3)
                                       < cv2.distanceTransform((~part1).view(np.uint8), cv2.DIST_L2, 3))
        if _turn(points, segment & ~to_second, to_second, n1, n2) > MAX_TURN:
            continue
        out[window][to_second] = following
        pairs.append((label, following))
        following += 1
    return out, pairs


def _plane_part(points: np.ndarray, mask: np.ndarray, threshold: float, rng: np.random.Generator):
    """(normal towards the camera, offset, largest connected inlier set) of the dominant plane of ``points[mask]``."""
    pts = points[mask].astype(np.float64)
    if pts.shape[0] < 3:
        return None
    picks = rng.integers(0, pts.shape[0], size=(HYPOTHESES, 3))
    normal = np.cross(pts[picks[:, 1]] - pts[picks[:, 0]], pts[picks[:, 2]] - pts[picks[:, 0]])
    length = np.linalg.norm(normal, axis=1)
    ok = length > 1e-12
    if not ok.any():
        return None
    normal = normal[ok] / length[ok, None]
    offset = -np.einsum('ij,ij->i', normal, pts[picks[ok, 0]])
    sample = pts[rng.integers(0, pts.shape[0], min(pts.shape[0], 1500))]
    best = int(np.argmax(np.count_nonzero(np.abs(sample @ normal.T + offset) < threshold, axis=0)))
    inliers = pts[np.abs(pts @ normal[best] + offset[best]) < threshold]
    centre = inliers.mean(axis=0)
    plane_normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
    if plane_normal @ centre > 0:  # towards the camera at the origin
        plane_normal = -plane_normal
    plane_offset = -float(plane_normal @ centre)
    with np.errstate(invalid='ignore'):
        near = mask & (np.abs(points @ plane_normal.astype(np.float32) + np.float32(plane_offset)) < threshold)
    count, parts, stats, _ = cv2.connectedComponentsWithStats(near.view(np.uint8), connectivity=8)
    if count <= 1:
        return None
    return plane_normal, plane_offset, parts == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _turn(points: np.ndarray, part1: np.ndarray, part2: np.ndarray, n1: np.ndarray, n2: np.ndarray,
          step: int = 2) -> float:
    """The median turn (n2 - n1) . (q - p) / |q - p| over pixels p of ``part1`` and q of ``part2`` ``step`` apart.

    ``n1``, ``n2``: the parts' plane normals (towards the camera); the parts touch in the image.

    Positive where the parts meet at a ridge (convex), negative in a valley, about 0 where one
    stands in front of the other (see :func:`~robot_vision.perception3d.clutter.concavity`).
    """
    dn = (n2 - n1).astype(np.float32)
    values = []
    h, w = part1.shape
    for dy, dx in ((0, step), (step, 0), (0, -step), (-step, 0)):
        ys1, ys2 = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
        xs1, xs2 = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
        both = part1[ys1, xs1] & part2[ys2, xs2]
        d = points[ys2, xs2][both] - points[ys1, xs1][both]
        length = np.linalg.norm(d, axis=1)
        ok = np.isfinite(length) & (length > 0)
        values.append(d[ok] @ dn / length[ok])
    values = np.concatenate(values)
    return float(np.median(values)) if values.size else 0.0
