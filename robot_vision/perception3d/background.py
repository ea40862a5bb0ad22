"""Background and remnants among the segments of the 'clutter' method: which segments are not objects.

Walls (large sideways planes), table rims (the edges of secondary supports), low depth-noise bumps
without a colour outline, containers (a tote's walls around its floor, a shelf's frame around its
board), segments that hide nothing behind them (bin walls, shelf lips, the room), and fragments that
an occluder cut off from the rest of what they belong to. :mod:`robot_vision.perception3d.clutter`
applies them; docs/perception3d.md describes each with its measured effect.
"""

from __future__ import annotations

import math
from typing import Tuple

import cv2
import numpy as np
from scipy.ndimage import find_objects

from robot_vision.perception3d.segmentation import nearest_depth, padded_window
from robot_vision.perception3d.support import image_hull

#: A segment that encloses this share of ``min_floor_area`` of support is a container's walls.
CONTAINER_FLOOR = 0.25
#: Working pixels within which a segment's outline touches a tote's floor (the smoothed base of a wall).
FLOOR_REACH = 4
#: A sideways segment's mean normal is at least this far (degrees) from up: a wall, a box's side, a book's cover.
SIDEWAYS_DEG = 60.0
#: A segment whose image convex hull holds this share of the main support (by surface) stands around it: a frame.
SURROUND_SHARE = 0.3
#: A fragment behind a neighbour along this share of its surroundings is an occluded remnant, not an object.
OCCLUDED_SHARE = 0.15
#: Remnants are smaller than this share of ``fragment_area`` (9 cm^2 by default: a 3 x 3 cm piece).
OCCLUDED_AREA = 0.75


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
    pixels, mean, aligned = label_normals(flat, normals.reshape(-1, 3), count)
    sideways = np.abs(mean @ np.asarray(up, np.float64)) < math.cos(math.radians(SIDEWAYS_DEG))
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


def label_normals(flat: np.ndarray, normals: np.ndarray, count: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count,) pixels with a normal, (count, 3) unit mean normal, (count,) share within 15 degrees of it.

    Per label of ``flat`` ((N,) labels, 0 none) with (N, 3) ``normals`` (NaN where unknown); the mean
    is NaN for a label without normals, and the share says how planar the segment is.
    """
    ok = np.isfinite(normals[:, 0]) & (flat > 0)
    idx, n = flat[ok], normals[ok]
    pixels = np.bincount(idx, minlength=count)
    sums = np.stack([np.bincount(idx, weights=n[:, k], minlength=count) for k in range(3)], axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        aligned = np.bincount(idx, weights=(np.einsum('ij,ij->i', n, mean[idx]) > math.cos(math.radians(15))),
                              minlength=count) / pixels
    return pixels, mean, aligned


def nearest_source(sources: np.ndarray, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """For every pixel: (the distance to the nearest ``sources`` pixel, that pixel's entry of ``values``)."""
    distance, nearest = cv2.distanceTransformWithLabels((~sources).view(np.uint8), cv2.DIST_L2, 3,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the source pixels 1.. in raster order
    return distance, values.reshape(-1)[np.flatnonzero(sources)][nearest - 1]


def support_edges(secondary: np.ndarray, height: np.ndarray, candidates: np.ndarray, settings,
                  reach: int = 4) -> np.ndarray:
    """(H, W) bool: the rims of secondary supports among ``candidates`` (a table top's edges and thickness).

    A raised support (a table when the floor is the main support, a tray, a shelf board) shows its
    edge faces next to its top. A candidate pixel within ``reach`` working pixels of a secondary
    support whose height is at most ``min_height`` above that support's nearest pixel and at most
    ``support_edge_band`` below it belongs to the support, not to an object on it.
    """
    if settings.support_edge_band <= 0 or not secondary.any():
        return np.zeros(secondary.shape, bool)
    distance, top = nearest_source(secondary, height)  # the nearest support pixel's height
    with np.errstate(invalid='ignore'):
        return candidates & (distance <= reach) & (height >= top - settings.support_edge_band) & (
            height <= top + settings.min_height)


def noise_bumps(labels: np.ndarray, windows, height: np.ndarray, depth: np.ndarray, colour_edge: np.ndarray,
                supports: np.ndarray, settings, judged: np.ndarray) -> np.ndarray:
    """(judged.size,) bool: low segments that only depth noise tells from the support.

    A segment of which at most 5 % of the pixels rise above the depth-step threshold at its mean
    depth can be the sensor's low-frequency depth error (stereo cameras show centimetre waves at
    1-2 m). Low means low above the support model (``height``), or above the support right around
    it where that lies half a step threshold or more above the model (:func:`support_levels`;
    ``supports``: the support pixels). Far away the support can lie centimetres above the model, and
    a patch of it that noise lifts out of the support region then rises above the step threshold from
    the model, but only by noise above the support around it; near the model the model decides, and a
    thin object on a table is not judged against a level a few millimetres off.
    A low segment is kept as an object only when its outline shows it too: at least
    ``min_outline_contrast`` of its outline pixels (those with a 4-neighbour of another label) lie
    on a colour edge, and that share exceeds the share of colour-edge pixels around the segment
    (:func:`texture_around`) by ``min_outline_contrast`` as well: on a checkered or printed support a
    bump's outline crosses the texture's edges by chance. Only the labels marked in ``judged`` (a
    bool per label) are judged; ``windows`` are the labels' ``scipy.ndimage.find_objects`` slices.
    """
    count = judged.size
    flat = labels.reshape(-1)
    z = depth.reshape(-1)
    h = height.reshape(-1)
    ok = np.isfinite(z) & np.isfinite(h) & judged[flat]
    pixels = np.bincount(flat[ok], minlength=count)
    mean_z = np.bincount(flat[ok], weights=z[ok], minlength=count) / np.maximum(pixels, 1)
    step = settings.step_threshold(mean_z)
    owner = flat[ok]
    tall = np.bincount(owner, weights=h[ok] >= step[owner], minlength=count)
    low = judged & (pixels > 0) & (tall <= 0.05 * pixels)
    level = support_levels(labels, windows, height, supports, judged & ~low & (pixels > 0))
    with np.errstate(invalid='ignore'):  # NaN: no level around the segment
        lifted = level >= 0.5 * step  # the support here lies above its model: measure from the support
    if lifted.any():
        tall = np.bincount(owner, weights=lifted[owner] & (h[ok] - level[owner] >= step[owner]), minlength=count)
        low |= lifted & (tall <= 0.05 * pixels)
    if not low.any():
        return low
    outline = np.zeros(labels.shape, bool)
    outline[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    outline[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    outline[1:, :] |= labels[1:, :] != labels[:-1, :]
    outline[:-1, :] |= labels[:-1, :] != labels[1:, :]
    outline &= low[labels]
    edge_hits = np.bincount(labels[outline], weights=colour_edge[outline], minlength=count)
    share = edge_hits / np.maximum(np.bincount(labels[outline], minlength=count), 1)
    outlined = low & (share >= settings.min_outline_contrast)
    if outlined.any():  # on a textured support, by more than its surroundings (a bump's crosses them by chance)
        texture = texture_around(labels, windows, colour_edge, np.flatnonzero(outlined), count)
        outlined &= share >= texture + settings.min_outline_contrast
    return low & ~outlined


def support_levels(labels: np.ndarray, windows, height: np.ndarray, supports: np.ndarray, which: np.ndarray,
                   reach: int = 4) -> np.ndarray:
    """(which.size,) float: the level each segment in ``which`` stands on (the rest NaN).

    The median ``height`` of the ``supports`` pixels within ``reach`` working pixels of the segment,
    when they are at least 10 and 30 % of the pixels there (else NaN).
    """
    out = np.full(which.size, np.nan)
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    for label in np.flatnonzero(which):
        area = padded_window(windows[label - 1], reach, labels.shape)
        inside = labels[area] == label
        ring = (cv2.dilate(inside.view(np.uint8), kernel) > 0) & ~inside
        level = height[area][ring & supports[area]]
        level = level[np.isfinite(level)]
        if level.size >= max(10, 0.3 * np.count_nonzero(ring)):
            out[label] = np.median(level)
    return out


def texture_around(labels: np.ndarray, windows, edges: np.ndarray, which: np.ndarray, count: int, near: int = 3,
                   far: int = 6) -> np.ndarray:
    """(count,) float: for each label in ``which`` (the rest 0), the share of ``edges`` pixels around it.

    Around means the unlabelled pixels (the support and background) ``near`` + 1 to ``far`` working
    pixels out, past the band where the segment's own outline edges lie (``edges`` are dilated): the
    density of the texture of what the segment lies on. Other segments do not count: a bowl's floor
    is surrounded by its walls, whose shading says nothing about the support. ``windows``: the labels'
    ``find_objects`` slices.
    """
    out = np.zeros(count)
    inner = np.ones((2 * near + 1, 2 * near + 1), np.uint8)
    outer = np.ones((2 * far + 1, 2 * far + 1), np.uint8)
    for label in which:
        area = padded_window(windows[label - 1], far, labels.shape)
        inside = (labels[area] == label).view(np.uint8)
        ring = (cv2.dilate(inside, outer) > 0) & (cv2.dilate(inside, inner) == 0) & (labels[area] == 0)
        if ring.any():
            out[label] = edges[area][ring].mean()
    return out


def containers(labels: np.ndarray, windows, main: np.ndarray, supports: np.ndarray, floor: np.ndarray,
               footprint: np.ndarray, judged: np.ndarray, min_area: float, close: int = 2) -> np.ndarray:
    """(judged.size,) bool: a tote's or tray's walls or a shelf's frame, not objects.

    A segment is a container's wall when either

    - it encloses a support: the support pixels (``supports``) in the region its mask (closed over
      gaps of ``2 close`` pixels) surrounds without covering cover at least ``min_area`` square
      metres (``footprint``: each pixel's z^2 / (fx fy)). The hole of a tape roll or the inside
      of a mug or a bowl is far smaller than a tote's floor, and is not a support; or
    - it stands around the ``main`` support, open on one side: the support pixels within its image
      convex hull (not its own) cover ``SURROUND_SHARE`` of the main support's surface, and its box
      could hold ``2 min_area``. A shelf's frame (the posts, the board above, the back wall) stands
      around the board it holds; an object stands on its support, and a convex one holds none of it
      in its hull, a tape roll or a banana a small part; or
    - it borders a ``floor`` (a low secondary support: a tote's floor) from outside: at least 80 %
      of its pixels lie outside the floor's image convex hull, and at least 10 % of its outline
      pixels lie within ``FLOOR_REACH`` pixels of the floor and 10 % within ``FLOOR_REACH`` of the
      ``main`` support (a wall stands between the two). Objects in the tote lie mostly over its
      floor; objects beside the tote do not touch its floor.

    Only the labels marked in ``judged`` (a bool per label) are judged; ``windows`` are the labels'
    ``find_objects`` slices.
    """
    from scipy.ndimage import binary_fill_holes
    out = np.zeros(judged.size, bool)
    kernel = np.ones((2 * close + 1, 2 * close + 1), np.uint8)
    if floor.any():
        flat = labels.reshape(-1)
        outside = ~image_hull(floor).reshape(-1)
        share = np.bincount(flat, weights=outside, minlength=judged.size) / np.maximum(
            np.bincount(flat, minlength=judged.size), 1)
        reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FLOOR_REACH + 1, 2 * FLOOR_REACH + 1))
        as_float, square = labels.astype(np.float32), np.ones((3, 3), np.uint8)  # exact for labels below 2^24
        edge = (cv2.erode(as_float, square) != as_float) | (cv2.dilate(as_float, square) != as_float)
        edge = edge.reshape(-1) & (flat > 0)  # outline pixels: a neighbour of another label
        outline = np.maximum(np.bincount(flat[edge], minlength=judged.size), 1)
        wall = judged & (share >= 0.8)
        for surface in (floor, main):
            near = cv2.dilate(surface.view(np.uint8), reach).reshape(-1) > 0
            wall &= np.bincount(flat[edge & near], minlength=judged.size) >= 0.1 * outline
        out |= wall
    main_area = footprint[main].sum()
    for label, window in enumerate(windows, start=1):
        if window is None or not judged[label] or out[label]:
            continue
        if footprint[window].sum() < 2 * min_area:  # its box could not hold such a floor and walls
            continue
        mine = labels[window] == label
        padded = np.pad(mine, close + 1).view(np.uint8)
        closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)[close + 1:-close - 1, close + 1:-close - 1]
        enclosed = binary_fill_holes(closed) & (labels[window] != label) & supports[window]
        out[label] = footprint[window][enclosed].sum() >= min_area
        if not out[label] and main_area > 0:  # open on one side: its image hull holds the support
            ys, xs = np.nonzero(mine)
            hull = np.zeros(mine.shape, np.uint8)
            cv2.fillConvexPoly(hull, cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32)), 1)
            out[label] = footprint[window][(hull > 0) & ~mine & main[window]].sum() >= SURROUND_SHARE * main_area
    return out


def ring_counts(labels: np.ndarray, windows, which: np.ndarray, depth: np.ndarray, settings, radius: int):
    """What lies around each segment in ``which`` (a bool per label): (behind, in_front, total) pixel counts.

    ``total``: the pixels with depth, not the segment's own, within ``radius`` of one of its points;
    ``behind``: those that lie behind the segment's nearest surface there (:func:`nearest_depth`) by
    more than the depth-step threshold; ``in_front``: those of another segment that lie in front of it
    by as much. Labels not in ``which`` count 0. ``windows``: the labels' ``find_objects`` slices.
    """
    behind, in_front, total = (np.zeros(which.size, np.int64) for _ in range(3))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    for label in np.flatnonzero(which):
        window = windows[label - 1]
        if window is None:
            continue
        area = padded_window(window, radius, labels.shape)
        inside = labels[area] == label
        d = depth[area]
        nearest = nearest_depth(inside, d, kernel)
        ring = np.isfinite(nearest) & ~inside & np.isfinite(d)
        total[label] = np.count_nonzero(ring)
        with np.errstate(invalid='ignore'):
            step = settings.step_threshold(d)
            behind[label] = np.count_nonzero(ring & (d > nearest + step))
            in_front[label] = np.count_nonzero(ring & (labels[area] > 0) & (d < nearest - step))
    return behind, in_front, total


def hides_nothing(labels: np.ndarray, windows, depth: np.ndarray, normals: np.ndarray, up: np.ndarray, settings,
                  judged: np.ndarray, radius: int = 3) -> np.ndarray:
    """(judged.size,) bool: segments that stand in front of nothing: background, not objects.

    An object occludes what lies around it: some of the pixels within ``radius`` of its outline lie
    behind its nearest surface there (the smallest depth of the segment within ``radius``) by more
    than the depth-step threshold. A bin's back and side walls, a shelf lip and the room hide
    nothing. A segment with less than ``min_occluded_fraction`` such pixels among those around it
    that have depth is background; one shaped like a wall (its mean normal at least
    ``SIDEWAYS_DEG`` from up, half its normals within 15 degrees of it) needs
    ``min_wall_occluded_fraction``, as a wall shows what lies behind it only past its free edge (a
    bin wall's top, a divider's front edge) where an object's face shows it all round. A segment
    of which at least half of the normals face up (within 30 degrees) is not judged: a thin object
    lying on the support may be no taller than the step threshold, and an object's top seen from
    above among taller neighbours (a dense bin) hides nothing either. Only the labels marked in
    ``judged`` (a bool per label) are judged; ``windows`` are the labels' ``find_objects`` slices.
    """
    count = judged.size
    flat = labels.reshape(-1)
    n = normals.reshape(-1, 3)
    pixels, mean, aligned = label_normals(flat, n, count)
    with np.errstate(invalid='ignore'):  # a pixel without a normal does not face up
        facing_up = n @ up > math.cos(math.radians(30))
        wall_like = (np.abs(mean @ up) < math.cos(math.radians(SIDEWAYS_DEG))) & (aligned >= 0.5)
    up_share = np.bincount(flat, weights=facing_up, minlength=count) / np.maximum(pixels, 1)
    need = np.where(wall_like, settings.min_wall_occluded_fraction, settings.min_occluded_fraction)
    hidden, _, total = ring_counts(labels, windows, judged & (up_share < 0.5), depth, settings, radius)
    return (total > 0) & (hidden < need * total)


def occluded_fragments(labels: np.ndarray, depth: np.ndarray, footprint: np.ndarray, settings, min_pixels: float,
                       radius: int = 2) -> np.ndarray:
    """``labels`` without the fragments that an occluder cut off from the rest of what they belong to.

    A segment smaller than ``OCCLUDED_AREA`` of ``fragment_area`` (by the footprint of its pixels; 9
    cm^2 by default, where a larger piece may be a small object mostly hidden) that no depth-continuous
    neighbour took in (:func:`~robot_vision.perception3d.clutter.absorb_fragments`) and that lies
    behind a neighbouring segment along at least ``OCCLUDED_SHARE`` of the pixels with depth within
    ``radius`` of it (the neighbour nearer by more than the depth-step threshold) is the visible
    remnant of something partly hidden: a banana's tip past the bottle lying across it, a box's
    corner beside the bottle on it, a piece of the background between objects. It is dropped. Only
    segments of at least ``min_pixels`` pixels are judged (smaller ones never become objects).
    """
    areas = np.bincount(labels.reshape(-1), weights=footprint.reshape(-1))
    pixels = np.bincount(labels.reshape(-1), minlength=areas.size)
    small = (areas < OCCLUDED_AREA * settings.fragment_area) & (pixels >= min_pixels)
    small[0] = False
    if not small.any():
        return labels
    windows = find_objects(labels, max_label=small.size - 1)
    _, front, total = ring_counts(labels, windows, small, depth, settings, radius)
    drop = (total > 0) & (front >= OCCLUDED_SHARE * total)
    return np.where(drop[labels], 0, labels) if drop.any() else labels
