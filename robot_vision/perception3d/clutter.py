"""The 'clutter' segmentation method: unknown objects on tables, in piles and in bins, from depth.

On a working image at most ``working_width`` pixels wide (labels are upsampled at the end):

1. Depth preparation, "up" and the support: :mod:`robot_vision.perception3d.support` (holes filled,
   bilateral smoothing, normals; the gravity prior or the view's dominant surface; the largest
   connected horizontal region as the support, grown over a warped table with a quadratic
   correction; secondary supports and their rims; objects must rest over a support or, under
   gravity, reach down to its plane where it shows no depth).
2. Cuts: depth steps (far side, over 1 and 2 pixels), concave creases (normals a few pixels apart
   turning towards each other: touching and stacked objects meet in valleys, an object's own
   surface is convex), and colour edges where geometry shows a weak step or crease.
3. Instances: connected components of the uncut pixels; cut pixels rejoin a depth-continuous
   neighbour; small fragments join the segment they continue, segments that meet along a convex
   seam join, and fragments that lie behind a neighbour are occluded remnants; large sideways
   planes are walls; segments that hide nothing behind them (bin walls, shelf lips, the room) are
   background, and low segments without a colour outline are depth noise
   (:mod:`robot_vision.perception3d.background`); under gravity an object joined to the wall it
   stands against comes apart from it (:mod:`robot_vision.perception3d.walls`); a round
   container's inside joins its outer wall (:mod:`robot_vision.perception3d.hollows`).
4. Full resolution: outlines refined against each pixel's own depth; pixels without depth take the
   nearest label (masks cover what the sensor missed), points stay those with depth; objects need
   a minimum surface with depth.

docs/perception3d.md describes every step and its settings.
"""

from __future__ import annotations

import math
import time
from typing import Dict, NamedTuple, Optional, Tuple

import cv2
import numpy as np
from scipy.ndimage import find_objects

from robot_vision.camera import deproject
from robot_vision.perception3d.background import (CONTAINER_FLOOR, containers, hides_nothing, nearest_source,
                                                  noise_bumps, occluded_fragments, structure_mask, support_edges)
from robot_vision.perception3d.hollows import join_insides, root_label
from robot_vision.perception3d.planar import FLOOR_LEVEL, far_side_edges, secondary_supports
from robot_vision.perception3d.segmentation import (SceneSegmentation, SegmentationSettings, grow_labels,
                                                    objects_from_labels, up_prior)
from robot_vision.perception3d.support import (dominant_up, downsample_depth, fill_holes, grow_support, image_hull,
                                               over_support, scaled_intrinsics, smooth_depth, smoothed_normals,
                                               standing_beyond, support_below, support_plane, working_factor)
from robot_vision.perception3d.walls import upright_parts
from robot_vision.types import CameraIntrinsics, Objects3D, RGBDFrame

#: Pixel spans over which the clutter method looks for depth steps (sensors blur a step over 2 pixels).
STEP_SPANS = (1, 2)
#: Two segments join when this share of the pixel pairs across their seam turn convex by more than
#: ``CONVEX_TURN`` (2 sin(a / 2): 0.3 is a 17 deg ridge), fewer than ``STEPPED_SHARE`` cross a depth step,
#: and the pairs number ``SEAM_MIN_PAIRS`` (:func:`join_convex_seams`).
CONVEX_SHARE = 0.6
CONVEX_TURN = 0.3
STEPPED_SHARE = 0.2
SEAM_MIN_PAIRS = 10


def color_edges(color: np.ndarray, shape: Tuple[int, int], settings) -> np.ndarray:
    """(H, W) bool at the working size: strong colour gradients (CIE Lab, Scharr, max over channels)."""
    small = cv2.resize(color, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) if color.shape[:2] != shape \
        else color
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    magnitude = np.zeros(shape, np.float32)
    for k in range(3):
        gx = cv2.Scharr(lab[..., k], cv2.CV_32F, 1, 0)
        gy = cv2.Scharr(lab[..., k], cv2.CV_32F, 0, 1)
        # numpy's square root, not cv2.magnitude: on the same input that one's last bits changed from
        # call to call within one process, and with them the edges near the threshold.
        np.maximum(magnitude, np.sqrt(gx * gx + gy * gy) / np.float32(16.0), out=magnitude)
    edges = (magnitude > settings.color_edge_threshold).view(np.uint8)
    return cv2.dilate(edges, np.ones((3, 3), np.uint8)) > 0


def pixel_pairs(h: int, w: int, step: int):
    """Four ((rows, cols), (rows, cols)) slice pairs over an (h, w) image: pixel pairs ``step`` apart.

    Along a row, a column and both diagonals; the second window lies ``step`` down and/or across
    from the first (:func:`concavity`, :func:`join_convex_seams`).
    """
    pairs = []
    for dy, dx in ((0, step), (step, 0), (step, step), (step, -step)):
        xs0, xs1 = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        pairs.append(((slice(0, h - dy), xs0), (slice(dy, h), xs1)))
    return pairs


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
    c = [np.ascontiguousarray(cloud[..., k]) for k in range(3)]
    n = [np.ascontiguousarray(normals[..., k]) for k in range(3)]
    for (ys0, xs0), (ys1, xs1) in pixel_pairs(h, w, s):
        d = [ck[ys1, xs1] - ck[ys0, xs0] for ck in c]
        dn = [nk[ys1, xs1] - nk[ys0, xs0] for nk in n]
        with np.errstate(invalid='ignore', divide='ignore'):
            value = (dn[0] * d[0] + dn[1] * d[1] + dn[2] * d[2]) / np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        value[~np.isfinite(value)] = np.inf
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
    # Per-label sums over the labelled pixels only (most of a frame is background).
    labelled = np.flatnonzero(labels)
    owner = labels.reshape(-1)[labelled]
    areas = np.bincount(owner, minlength=1)
    has_depth = valid.reshape(-1)[labelled]
    points = np.bincount(owner[has_depth], minlength=areas.size)
    # max_object_points is meant at 640x480: a close object fills the same share of a larger image.
    max_points = settings.max_object_points * max(1.0, h * w / (640 * 480))
    keep = np.flatnonzero((areas >= settings.min_object_points) & (areas <= max_points)
                          & (points >= 10))
    if settings.min_object_area > 0:  # the surface seen with depth, each point's footprint z^2 / (fx fy)
        z = cloud.reshape(-1, 3)[labelled[has_depth], 2]
        seen = np.bincount(owner[has_depth], weights=np.square(z, dtype=np.float64), minlength=areas.size)
        keep = keep[seen[keep] >= settings.min_object_area * frame.intrinsics.fx * frame.intrinsics.fy]
    keep = keep[keep > 0]
    keep = keep[np.argsort(-areas[keep], kind='stable')]
    boxes = _windows(result['hole_labels'], keep, factor, (h, w))
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
    kernel = np.ones((2 * factor + 1, 2 * factor + 1), np.uint8)
    labelled = (labels > 0).view(np.uint8)
    band = (cv2.dilate(labelled, kernel) > 0) & (cv2.erode(labelled, kernel) == 0) & valid
    index = np.flatnonzero(band)  # only the band's pixels are tested (a few % of the image)
    z = depth.reshape(-1)[index]
    with np.errstate(invalid='ignore'):
        above = cloud.reshape(-1, 3)[index] @ plane[:3].astype(np.float32) + np.float32(plane[3]) > settings.min_height
        off = np.abs(z - work_depth.reshape(-1)[index]) > settings.step_threshold(z)
    labels.reshape(-1)[index[~above | off]] = 0  # in place: ``labels`` is the caller's upsampled copy
    grow = np.zeros(labels.shape, bool)
    grow.reshape(-1)[index[above]] = True
    return _grow_into(labels, grow, depth, settings, iterations=2 * factor)


def _upsample(image: np.ndarray, factor: int, shape: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a working image by ``factor``, cropped or zero-padded to ``shape``."""
    if factor > 1:  # nearest neighbour at an integer factor: each pixel becomes a factor x factor block
        image = cv2.resize(np.ascontiguousarray(image), (image.shape[1] * factor, image.shape[0] * factor),
                           interpolation=cv2.INTER_NEAREST)
    out = np.zeros(shape, image.dtype)
    hh, ww = min(shape[0], image.shape[0]), min(shape[1], image.shape[1])
    out[:hh, :ww] = image[:hh, :ww]
    return out


def _windows(work_labels: np.ndarray, keep: np.ndarray, factor: int, shape: Tuple[int, int]) -> np.ndarray:
    """(K, 4) int (x, y, w, h) full-resolution windows that hold each label in ``keep``.

    From the working labels (with the hole labels, a superset of every full-resolution label's
    source), scaled by ``factor`` and grown by the ``2 factor`` pixels that outline refinement may add.
    """
    slices = find_objects(work_labels, max_label=int(keep.max()) if keep.size else 0)
    margin = 2 * factor
    boxes = np.zeros((keep.size, 4), np.int64)
    for row, label in enumerate(keep):
        ys, xs = slices[label - 1]
        x0, y0 = max(xs.start * factor - margin, 0), max(ys.start * factor - margin, 0)
        x1, y1 = min(xs.stop * factor + margin, shape[1]), min(ys.stop * factor + margin, shape[0])
        boxes[row] = (x0, y0, x1 - x0, y1 - y0)
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
    if plane is None and gravity_up is not None and settings.up_vector is None and not support_only:
        # Nothing horizontal to stand on in view under the TF prior (a bin floor that reflects the
        # projector, a shelf seen level): the view's dominant surface (a bin's back wall) is the
        # support, as without a prior, rather than a frame with no objects at all. An explicit
        # ``up_vector`` stays a constraint.
        fallback = dominant_up(normals, settings.image_up_weight)
        if fallback is not None:
            up = fallback
            result['up'] = up
            plane = support_plane(cloud, normals, up, settings)
    elif plane is not None and gravity_up is not None:  # "below" means down only under gravity
        plane = support_below(plane, cloud, normals, intr.fx, settings)
    if plane is None or support_only:
        result['plane'] = plane
        return result
    edges = far_side_edges(depth, settings, spans=STEP_SPANS)
    height = cloud @ plane[:3].astype(np.float32) + np.float32(plane[3])
    support, corrected = grow_support(cloud, normals, height, edges, settings)
    result['support_ms'] = (time.perf_counter() - t0) * 1e3
    turn = concavity(cloud, normals)
    cuts = edges | concave_creases(turn, settings.crease_angle_deg, settings.min_crease_pixels)
    colour_edge = None
    if color is not None and settings.color_edge_threshold > 0:
        weak = far_side_edges(depth, settings, settings.weak_edge_fraction, STEP_SPANS) | concave_creases(
            turn, settings.crease_angle_deg * settings.weak_edge_fraction, settings.min_crease_pixels)
        colour_edge = color_edges(color, depth.shape, settings)
        cuts |= weak & colour_edge
    with np.errstate(invalid='ignore'):
        above = (corrected > settings.min_height) & (corrected < settings.max_height) & ~support
    secondary = None
    supports = support
    if settings.split_supports:
        secondary = secondary_supports(cloud, corrected, above & ~edges, plane, intr, settings)
        above &= ~secondary
        supports = support | secondary
        above &= ~support_edges(secondary, corrected, above, settings)
    inside = over_support(cloud, supports, plane, settings.support_margin, above) | image_hull(supports)
    if gravity_up is not None:  # what stands on the part of the support that returns no depth
        inside |= standing_beyond(above & ~inside, above & ~edges, corrected)
    above &= inside
    seeds = above & ~cuts
    count, labels = cv2.connectedComponents(seeds.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    walls = structure_mask(labels, count, normals, cloud, np.asarray(up, np.float32), settings)
    if walls.any():
        wall_pixels = walls[labels]
        labels[wall_pixels] = 0
        above &= ~wall_pixels  # walls are background: no object grows back into them
    labels = _grow_into(labels, above, depth, settings, iterations=8)
    footprint = pixel_footprint(depth, intr)
    labels = absorb_fragments(labels, above, depth, footprint, settings)
    if settings.join_convex_seams:
        labels = join_convex_seams(labels, cloud, normals, edges, settings)
    # Segments too small to become objects at full resolution (less than a quarter of
    # min_object_points) are not worth judging here or below.
    min_pixels = 0.25 * settings.min_object_points / (factor * factor)
    labels = occluded_fragments(labels, depth, footprint, settings, min_pixels)
    view = _View(depth, cloud, normals, np.asarray(up, np.float32), corrected, footprint, support, supports,
                 secondary, colour_edge)
    holes = labels_into_holes(labels, np.isfinite(depth), settings.hole_label_distance)
    judged, drop, windows = _background(labels, holes, view, settings, min_pixels)
    if gravity_up is not None and settings.split_walls:  # an object joined to the wall it stands against
        labels, holes, judged, drop, windows = _split_walls(labels, holes, judged, drop, windows, view,
                                                            settings, min_pixels)
    if drop.any():
        labels[drop[labels]] = 0
        holes[drop[holes]] = 0  # what labels_into_holes gives for the cleared labels
    if settings.join_container_insides:  # a mug's inside, cut off by its near rim, is the mug
        mapping = join_insides(labels, windows, cloud, corrected, plane, settings, judged & ~drop)
        labels, holes = mapping[labels], mapping[holes]
    result['hole_labels'] = holes
    result.update(labels=labels, support=support, secondary=secondary, height=corrected, plane=plane)
    return result


class _View(NamedTuple):
    """The working images of one frame that the background rules read."""

    depth: np.ndarray
    cloud: np.ndarray
    normals: np.ndarray
    up: np.ndarray
    height: np.ndarray
    footprint: np.ndarray
    support: np.ndarray
    supports: np.ndarray
    secondary: Optional[np.ndarray]
    colour_edge: Optional[np.ndarray]


def _background(labels: np.ndarray, holes: np.ndarray, view: _View, settings, min_pixels: float,
                among: Optional[np.ndarray] = None):
    """The background rules of :mod:`robot_vision.perception3d.background` on ``labels``.

    Returns (judged, drop, windows): the labels judged (with their hole pixels ``holes``, at least
    ``min_pixels``), those the rules drop, and each label's ``find_objects`` window. Each rule judges
    a segment by its own pixels and the depth around it, not by the labels of its neighbours, so
    ``among`` (a bool per label) may restrict the rules to some labels.
    """
    judged = np.bincount(holes.reshape(-1)) >= min_pixels
    judged[0] = False
    ruled = judged if among is None else judged & among
    drop = np.zeros(judged.size, bool)
    windows = find_objects(labels, max_label=judged.size - 1)
    if settings.min_occluded_fraction > 0:
        drop |= hides_nothing(labels, windows, view.depth, view.normals, view.up, settings, ruled)
    if settings.min_floor_area > 0:  # a tote's walls around its floor (a secondary support)
        floor = np.zeros_like(view.support) if view.secondary is None else (
            view.secondary & (view.height < FLOOR_LEVEL + 0.01))
        drop |= containers(labels, windows, view.support, view.supports, floor, view.footprint, ruled & ~drop,
                           CONTAINER_FLOOR * settings.min_floor_area)
    if view.colour_edge is not None and settings.min_outline_contrast > 0:
        drop |= noise_bumps(labels, windows, view.height, view.depth, view.colour_edge, view.supports, settings,
                            ruled & ~drop)
    return judged, drop, windows


def _split_walls(labels: np.ndarray, holes: np.ndarray, judged: np.ndarray, drop: np.ndarray, windows,
                 view: _View, settings, min_pixels: float):
    """Segments kept as objects that are an object and the wall it stands against, split.

    :func:`~robot_vision.perception3d.walls.upright_parts` proposes the splits; one is kept where the
    background rules drop exactly one of its two parts (the wall), and the kept part is the object.
    The rules judge each segment by its own pixels, so only the parts are judged and every other
    segment keeps its verdict. Returns (labels, holes, judged, drop, windows) as they were or with
    the kept splits (the judgement as :func:`_background` gives it).
    """
    split, pairs = upright_parts(labels, windows, view.cloud, view.normals, view.footprint, view.up, settings,
                                 judged & ~drop)
    if not pairs:
        return labels, holes, judged, drop, windows
    split_holes = labels_into_holes(split, np.isfinite(view.depth), settings.hole_label_distance)
    parts = np.zeros(int(split.max()) + 1, bool)
    parts[np.ravel(pairs)] = True
    _, split_drop, _ = _background(split, split_holes, view, settings, min_pixels, among=parts)
    merged = np.arange(parts.size)
    kept = []
    for label, part in pairs:
        if split_drop[label] == split_drop[part]:  # both parts objects (or both background): one segment
            merged[part] = label
        else:
            kept.append((label, part))
    if not kept:
        return labels, holes, judged, drop, windows
    labels, holes = merged[split], merged[split_holes]  # relabelling commutes with labels_into_holes
    judged = np.bincount(holes.reshape(-1), minlength=parts.size) >= min_pixels
    judged[0] = False
    drop = np.r_[drop, np.zeros(parts.size - drop.size, bool)]
    for label, part in kept:
        drop[label], drop[part] = split_drop[label], split_drop[part]
    return labels, holes, judged, drop, find_objects(labels, max_label=parts.size - 1)


def labels_into_holes(labels: np.ndarray, valid: np.ndarray, max_distance: float) -> np.ndarray:
    """Pixels without depth take the label (or the background) of the nearest pixel with depth.

    Only within ``max_distance`` working pixels: a mask then covers the parts of its object the
    sensor saw no depth on (dark, shiny or grazing surfaces, the grid of a registered depth image),
    as a silhouette should, while the points stay those with depth.
    """
    missing = ~valid
    if max_distance <= 0 or not missing.any() or not valid.any():
        return labels
    distance, nearest_label = nearest_source(valid, labels)
    return np.where(missing & (distance <= max_distance), nearest_label, labels)


def pixel_footprint(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(H, W) float32: each pixel's surface seen face-on, z^2 / (fx fy) square metres (0 without depth)."""
    return np.nan_to_num(depth * depth / np.float32(intrinsics.fx * intrinsics.fy))


def absorb_fragments(labels: np.ndarray, allowed: np.ndarray, depth: np.ndarray, footprint: np.ndarray,
                     settings) -> np.ndarray:
    """Hand segments smaller than ``fragment_area`` to the neighbour they continue at a similar depth.

    Slivers between two cuts and the cap of a bottle are pieces of a neighbour, not objects: their
    pixels are cleared and re-grown from the neighbouring labels (depth-continuous 4-neighbours).
    A segment's area is the sum of its pixels' ``footprint`` (:func:`pixel_footprint`), so the limit
    means the same near and far. Fragments with no such neighbour stay as they are.
    """
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


def join_convex_seams(labels: np.ndarray, cloud: np.ndarray, normals: np.ndarray, steps: np.ndarray, settings,
                      step: int = 3) -> np.ndarray:
    """Neighbouring segments that meet along a convex, depth-continuous seam are one object.

    An object's own edges are ridges (a box's top meets its sides at convex edges); objects that
    touch meet in a valley, and one in front of another shows a depth step. A colour edge that a
    ridge's weak depth step backs (a box's top and side shaded differently) cuts an object in two.
    Pixel pairs ``step`` apart across each seam (rows, columns, both diagonals) give the turn of
    :func:`concavity`; two segments join when at least ``SEAM_MIN_PAIRS`` pairs cross their seam,
    ``CONVEX_SHARE`` of them turn convex by more than ``CONVEX_TURN`` and fewer than
    ``STEPPED_SHARE`` cross a depth step: a pixel on ``steps`` (the far sides of the step cuts), or
    depths that differ by more than the depth-step threshold (a step the sensor blurred over more than
    two pixels). The second test also holds back faces turned steeply away from the camera (beyond
    about 45-60 deg at the working resolution), whose depth changes that much over ``step`` pixels:
    a box's edge seen at a grazing angle stays cut.
    """
    h, w = labels.shape
    count = int(labels.max()) + 1
    codes, convex, stepped = [], [], []
    for (ys0, xs0), (ys1, xs1) in pixel_pairs(h, w, step):
        first, second = labels[ys0, xs0], labels[ys1, xs1]
        seam = (first > 0) & (second > 0) & (first != second)
        if not seam.any():
            continue
        p, q = cloud[ys0, xs0][seam], cloud[ys1, xs1][seam]
        d = q - p
        with np.errstate(invalid='ignore', divide='ignore'):
            turn = (np.einsum('ij,ij->i', normals[ys1, xs1][seam] - normals[ys0, xs0][seam], d)
                    / np.linalg.norm(d, axis=1))
        ok = np.isfinite(turn)
        a, b = first[seam][ok], second[seam][ok]
        codes.append(np.minimum(a, b).astype(np.int64) * count + np.maximum(a, b))
        convex.append(turn[ok] > CONVEX_TURN)
        with np.errstate(invalid='ignore'):
            apart = np.abs(d[:, 2]) > settings.step_threshold(np.minimum(p[:, 2], q[:, 2]))
        stepped.append((steps[ys0, xs0][seam] | steps[ys1, xs1][seam] | apart)[ok])
    if not codes:
        return labels
    pairs, index, total = np.unique(np.concatenate(codes), return_inverse=True, return_counts=True)
    join = ((total >= SEAM_MIN_PAIRS)
            & (np.bincount(index, weights=np.concatenate(convex)) >= CONVEX_SHARE * total)
            & (np.bincount(index, weights=np.concatenate(stepped)) < STEPPED_SHARE * total))
    if not join.any():
        return labels
    mapping = np.arange(count)
    for code in pairs[join]:
        a, b = root_label(mapping, int(code // count)), root_label(mapping, int(code % count))
        mapping[max(a, b)] = min(a, b)
    for label in range(count):  # every label to its root
        mapping[label] = root_label(mapping, label)
    return mapping[labels]


def _grow_into(labels: np.ndarray, allowed: np.ndarray, depth: np.ndarray, settings, iterations: int) -> np.ndarray:
    """A copy of ``labels`` in which unlabelled ``allowed`` pixels took a depth-continuous neighbour's label."""
    labels = labels.copy()
    grow_labels(labels, np.flatnonzero(allowed & (labels == 0)), depth, settings, iterations)
    return labels
