"""Round containers of the 'clutter' method: a mug's, cup's, pot's or bowl's pieces are one object.

Seen from above, an open round container comes out of the depth cuts in pieces: its near rim
hides the bottom of its inside, so the inner far wall lies behind the outer wall by a depth
step; its floor meets the inner walls in a concave crease; a thin rim splits into slivers. The
geometry tells these pieces from objects standing behind or beside it: the outer wall's points,
projected along the support normal, lie on a circle (a round wall standing on the support), and
the inside's points lie within that circle, no higher than the rim, as the inner far wall, an
inner wall or a level floor. An object standing behind a mug lies outside its circle; a box, a
ball or a can lying on its side does not project onto a circle. A bowl's pieces need not lie on a
circle one by one (its front comes with part of its inside; its rim may be wavy), but they share
a rim: :func:`rim_pairs`. :func:`join_insides` runs on the working image after the background rules.
"""

from __future__ import annotations

from typing import List, Tuple

import cv2
import numpy as np

from robot_vision.perception3d.plane import plane_basis
from robot_vision.perception3d.segmentation import nearest_depth, padded_window

#: A round wall's radius (metres): from an espresso cup to a cooking pot.
MIN_RADIUS, MAX_RADIUS = 0.02, 0.15
#: The wall's points lie on their circle within this share of its radius (RMS) and this distance.
MAX_CIRCLE_RESIDUAL, MAX_CIRCLE_RMS = 0.07, 0.004
#: Share of the inside's points within the circle (plus ``INSIDE_MARGIN``), and the margin.
MIN_INSIDE_SHARE, INSIDE_MARGIN = 0.8, 0.005
#: The inside rises at most this far above the wall's rim (the rim top belongs to either piece).
RIM_TOLERANCE = 0.01
#: An inner wall lies within this distance inside the outer wall's circle (the wall's thickness).
INNER_WALL = 0.012
#: A container's floor seen between its walls: at least this share of the segment's heights within
#: ``FLOOR_SPREAD`` of its 5th percentile (the rest: the foot of the inner walls, cut off with it).
FLOOR_SPREAD, MIN_FLOOR_SHARE = 0.01, 0.5
#: The outer wall's mean direction from its circle's centre is this close (cosine) to the camera's.
MIN_WALL_FACING = 0.5
#: A wall whose points' unit directions from the centre average to less than this (an arc of more than
#: about 220 degrees) goes round its centre: the rim seen from above, the outer wall with the inner far
#: wall, whichever of them shows more pixels.
MAX_RING_RESULTANT = 0.5
#: A container stands on the support: its wall's lowest points (2nd percentile) are at most this high.
MAX_WALL_FOOT = 0.03
#: Share of the outer wall's pixels around the inside that lie in front of it by a depth step.
MIN_OCCLUDED_SHARE = 0.5
#: A bowl's rim: the top share of a segment's points (by height), fitted when the whole segment is no circle.
RIM_SHARE = 0.15


def round_walls(owner: np.ndarray, u: np.ndarray, v: np.ndarray, count: int,
                max_rms: float = MAX_CIRCLE_RMS) -> np.ndarray:
    """(count, 5) float64: per label, the circle its points lie on, else NaN.

    Columns: centre u, centre v, radius, and the mean of the points' unit directions from the centre
    (its length is 1 for a point, 0 for a full ring).

    ``owner`` (N,) the label of each point, ``u``, ``v`` (N,) its coordinates in the support plane.
    An algebraic least-squares circle per label (one pass of sums over all points); the points must
    lie on it within ``MAX_CIRCLE_RESIDUAL`` of the radius and ``max_rms`` metres (RMS), and
    the radius must be a container's (``MIN_RADIUS`` .. ``MAX_RADIUS``): a box's face (a line), a can's
    lid (a filled disc) or a table edge is no round wall.
    """
    out = np.full((count, 5), np.nan)
    n = np.bincount(owner, minlength=count).astype(np.float64)
    if not np.any(n >= 20):
        return out
    with np.errstate(invalid='ignore', divide='ignore'):
        mean_u = np.bincount(owner, u, minlength=count) / n
        mean_v = np.bincount(owner, v, minlength=count) / n
        x, y = u - mean_u[owner], v - mean_v[owner]  # centred per label: the sums of x and y vanish
        z = x * x + y * y

        def total(values):
            return np.bincount(owner, values, minlength=count)

        sxx, sxy, syy, sxz, syz = total(x * x), total(x * y), total(y * y), total(x * z), total(y * z)
        det = sxx * syy - sxy * sxy
        # z + a x + b y + c = 0 for x^2 + y^2 - 2 cx x - 2 cy y + (cx^2 + cy^2 - r^2) = 0, in least squares.
        cx = (syy * sxz - sxy * syz) / det / 2
        cy = (sxx * syz - sxy * sxz) / det / 2
        radius = np.sqrt(cx * cx + cy * cy + total(z) / n)
        distance = np.hypot(x - cx[owner], y - cy[owner])
        residual = distance - radius[owner]
        rms = np.sqrt(total(residual * residual) / n)
        du, dv = total((x - cx[owner]) / distance) / n, total((y - cy[owner]) / distance) / n
        ok = (n >= 20) & (det > 0) & (radius >= MIN_RADIUS) & (radius <= MAX_RADIUS) & (
            rms <= np.minimum(MAX_CIRCLE_RESIDUAL * radius, max_rms))
    out[ok] = np.stack([mean_u + cx, mean_v + cy, radius, du, dv], axis=1)[ok]
    return out


def rim_circles(owner: np.ndarray, u: np.ndarray, v: np.ndarray, height: np.ndarray, count: int) -> np.ndarray:
    """(count, 5) float64 as :func:`round_walls`, the circle of each label's rim, else NaN.

    A bowl's front comes out of the cuts with part of its inside, and its rim may be wavy, so its
    points as a whole lie on no circle; its top ``RIM_SHARE`` of points (by ``height``) do, within
    ``MAX_CIRCLE_RESIDUAL`` of the radius, and at least ``MIN_INSIDE_SHARE`` of all its points lie
    within that circle: a container widens towards its rim. A banana's top ridge is an arc too, but
    half of the banana lies outside it.
    """
    # By label, then by height: one sort of the label plus the height squeezed into [0, 1).
    order = np.argsort(owner + 0.5 + np.arctan(height) / np.pi)
    n = np.bincount(owner, minlength=count)
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    ranked = owner[order]
    top = order[np.arange(order.size) - first[ranked] >= (1 - RIM_SHARE) * n[ranked]]
    rims = round_walls(owner[top], u[top], v[top], count, max_rms=np.inf)
    with np.errstate(invalid='ignore'):
        within = np.hypot(u - rims[owner, 0], v - rims[owner, 1]) <= rims[owner, 2] + INSIDE_MARGIN
    rims[np.bincount(owner, within, minlength=count) < MIN_INSIDE_SHARE * n] = np.nan
    return rims


def rim_pairs(labels: np.ndarray, windows, owner: np.ndarray, u: np.ndarray, v: np.ndarray, height: np.ndarray,
              bowls: np.ndarray, judged: np.ndarray, kernel: np.ndarray) -> List[Tuple[int, int]]:
    """Pairs of neighbouring ``judged`` segments that are one round container (a bowl) together.

    One of them has a rim (``bowls``: the labels that :func:`rim_circles` gives one); the other lies
    within ``kernel``'s reach of it; together they reach down to the support (``MAX_WALL_FOOT``);
    each reaches up to their rim (its top, the 95th percentile of height, at most ``RIM_TOLERANCE``
    below the lowest of their top ``RIM_SHARE`` of points); those top points lie on one circle, and
    each has ``MIN_INSIDE_SHARE`` of its points within it. A bowl's front wall and its inside, cut
    apart by the crease or the step between them, pass; an object beside a bowl lies outside its rim,
    one rising above the rim takes the top points off the circle, and one lying in it below the rim
    (or in front of a bin's rounded corner) does not reach up to it.

    ``owner``/``u``/``v``/``height``: per point (pixel with depth), its label, plane coordinates and
    height; ``windows`` the labels' ``find_objects`` slices.
    """
    count = judged.size
    bowls = bowls[judged[bowls]]
    if bowls.size == 0:
        return []
    order = np.argsort(owner, kind='stable')
    bounds = np.searchsorted(owner[order], np.arange(count + 1))
    radius = kernel.shape[0] // 2
    pairs = []
    for bowl in bowls:
        area = padded_window(windows[bowl - 1], radius, labels.shape)
        near = cv2.dilate((labels[area] == bowl).view(np.uint8), kernel) > 0
        own = order[bounds[bowl]:bounds[bowl + 1]]
        own_top, = _quantiles(height[own], 0.95)
        for other in np.unique(labels[area][near]):
            if other in (0, bowl) or not judged[other]:
                continue
            its = order[bounds[other]:bounds[other + 1]]
            both = np.concatenate([own, its])
            z = height[both]
            foot, band = _quantiles(z, 0.02, 1 - RIM_SHARE)
            if foot > MAX_WALL_FOOT:
                continue
            if min(own_top, *_quantiles(height[its], 0.95)) < band - RIM_TOLERANCE:
                continue  # one of them does not reach up to the rim
            top = both[z >= band]
            circle = round_walls(np.zeros(top.size, np.int64), u[top], v[top], 1, max_rms=np.inf)[0]
            if not np.isfinite(circle[2]):
                continue
            if all(np.mean(np.hypot(u[k] - circle[0], v[k] - circle[1]) <= circle[2] + INSIDE_MARGIN)
                   >= MIN_INSIDE_SHARE for k in (own, its)):
                pairs.append((int(bowl), int(other)))
    return pairs


def _quantiles(values: np.ndarray, *shares: float) -> np.ndarray:
    """The order statistics of ``values`` at these shares (no interpolation: one partial sort)."""
    index = [int(share * (values.size - 1)) for share in shares]
    return np.partition(values, index)[index]


def facing_camera(circle: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Cosine between a point's direction from a circle's centre and the camera's (the plane origin)."""
    centre = circle[..., :2]
    towards = point - centre
    return -np.sum(towards * centre, axis=-1) / np.maximum(
        np.linalg.norm(towards, axis=-1) * np.linalg.norm(centre, axis=-1), 1e-12)


def _front_rim(circle: np.ndarray, cloud: np.ndarray, labelled: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ``labelled`` pixels on a round wall's front arc: its front wall and rim.

    Those whose points lie on the circle (within ``INSIDE_MARGIN``) on the camera's side of its centre.
    """
    out = np.zeros(labelled.shape, bool)
    offset = cloud[labelled] @ basis - circle[:2].astype(np.float32)
    on_circle = np.abs(np.hypot(offset[:, 0], offset[:, 1]) - circle[2]) <= INSIDE_MARGIN
    out[labelled] = on_circle & (facing_camera(circle, offset + circle[:2]) >= MIN_WALL_FACING)
    return out


def join_insides(labels: np.ndarray, windows, cloud: np.ndarray, height: np.ndarray, plane: np.ndarray, settings,
                 judged: np.ndarray, radius: int = 3) -> np.ndarray:
    """(judged.size,) int: the label each label becomes, a round container's inside that of its outer wall.

    The round walls are the ``judged`` segments whose points, in the support plane's coordinates,
    lie on a circle (:func:`round_walls`; else their rim's, :func:`rim_circles`: a bowl's wall
    ring with its inside) on the camera's side of its centre (a container's front
    wall, within 60 degrees of the camera's direction: ``MIN_WALL_FACING``), or all round it (a rim
    seen from above: ``MAX_RING_RESULTANT``), reaching down to the support (``MAX_WALL_FOOT``). A
    wall's front is its pixels and the labelled pixels on its circle's front arc (:func:`_front_rim`:
    depth cuts split slivers off a thin rim); a segment with ``MIN_INSIDE_SHARE`` of its pixels there
    joins the wall when something joins it as its inside (below).

    A ``judged`` segment A within ``radius`` working pixels of a wall's front, with at least
    ``MIN_INSIDE_SHARE`` of its points within the circle and its top (95th percentile of height) at
    most ``RIM_TOLERANCE`` above the front's (98th), is the container's inside and joins the wall
    when it is one of its inner surfaces:

    - the inner far wall seen over the near rim: at least ``MIN_OCCLUDED_SHARE`` of the front's
      pixels around A lie nearer than A's nearest surface there by more than the depth-step
      threshold (the front hides part of A) and A's mean lies beyond the centre;
    - an inner wall: ``MIN_INSIDE_SHARE`` of its points within ``INNER_WALL`` inside the circle;
    - the floor: ``MIN_FLOOR_SHARE`` of its heights within ``FLOOR_SPREAD`` of its lowest (5th
      percentile): a level surface inside the wall.

    An object standing in a mug rises above the rim, or is neither level nor against the wall; one
    lying in a bowl below its rim, in its back half, joins the bowl (the near rim hides it as it
    hides a mug's inside). The pairs of :func:`rim_pairs` (a bowl's pieces) join as well. Apply it
    as ``mapping[labels]``; run it after the background rules, so that no object joins a piece of
    background that happens to be round. ``windows``: the ``find_objects`` slices of the labels (those
    of labels the rules cleared since are not used).
    """
    count = judged.size
    mapping = np.arange(count)
    depth = cloud[..., 2]
    valid = np.isfinite(depth)
    flat = labels.reshape(-1)
    points = np.flatnonzero(valid.reshape(-1) & (flat > 0))
    owner = flat[points]
    basis = np.stack(plane_basis(plane[:3]), axis=1).astype(np.float32)
    uv = cloud.reshape(-1, 3)[points] @ basis
    u, v = uv[:, 0].astype(np.float64), uv[:, 1].astype(np.float64)
    point_height = height.reshape(-1)[points].astype(np.float64)
    circles = round_walls(owner, u, v, count)
    rims = rim_circles(owner, u, v, point_height, count)
    circles = np.where(np.isfinite(circles[:, 2:3]), circles, rims)
    pixels = np.maximum(np.bincount(owner, minlength=count), 1)
    mean_uv = np.stack([np.bincount(owner, uv[:, k], minlength=count) for k in range(2)], axis=1) / pixels[:, None]
    with np.errstate(invalid='ignore'):  # an arc facing the camera, or a closed ring (a rim seen from above)
        facing = (facing_camera(circles, circles[:, :2] + circles[:, 3:]) >= MIN_WALL_FACING) | (
            np.hypot(circles[:, 3], circles[:, 4]) < MAX_RING_RESULTANT)
    walls = np.flatnonzero(judged & np.isfinite(circles[:, 2]) & facing)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    sizes = np.bincount(flat, minlength=count)
    for wall in walls:
        area = padded_window(windows[wall - 1], radius, labels.shape)
        wall_area = labels[area] == wall
        if np.percentile(height[area][wall_area & valid[area]], 2) > MAX_WALL_FOOT:
            continue  # it does not reach down to the support: no container stands there
        # The wall with the slivers that depth cuts split off along a thin rim: pixels on its front arc
        # (all within the wall's padded window; the full-size image is for the other segments' windows).
        front = np.zeros(labels.shape, bool)
        front[area] = _front_rim(circles[wall], cloud[area], valid[area] & (labels[area] > 0), basis) | wall_area
        rim = np.percentile(height[area][front[area] & valid[area]], 98)
        near = cv2.dilate(front[area].view(np.uint8), kernel) > 0
        slivers, insides = [], []
        target = root_label(mapping, wall)  # the wall may have joined another already
        for label in np.unique(labels[area][near]):
            if label in (0, wall, target) or mapping[label] != label:
                continue
            if np.count_nonzero(front[area] & (labels[area] == label)) >= MIN_INSIDE_SHARE * sizes[label]:
                slivers.append(label)  # a sliver of the wall's rim
                continue
            if not judged[label]:
                continue
            window = padded_window(windows[label - 1], radius, labels.shape)
            d = depth[window]
            inside = labels[window] == label
            nearest = nearest_depth(inside, d, kernel)
            ring = np.isfinite(nearest) & front[window] & ~inside & np.isfinite(d)  # near A's points
            if np.count_nonzero(ring) < 8:
                continue
            own = inside & valid[window]
            if not own.any():
                continue
            offset = cloud[window][own] @ basis - circles[wall, :2].astype(np.float32)
            radial = np.hypot(offset[:, 0], offset[:, 1])
            z = height[window][own]
            if np.mean(radial <= circles[wall, 2] + INSIDE_MARGIN) < MIN_INSIDE_SHARE or (
                    np.percentile(z, 95) > rim + RIM_TOLERANCE):
                continue  # not within the wall's circle, or rising above its rim: an object, not the inside
            with np.errstate(invalid='ignore'):
                hidden = np.mean(d[ring] < nearest[ring] - settings.step_threshold(d[ring])) >= MIN_OCCLUDED_SHARE
            inner_wall = np.mean(radial >= circles[wall, 2] - INNER_WALL) >= MIN_INSIDE_SHARE
            floor = np.mean(z <= np.percentile(z, 5) + FLOOR_SPREAD) >= MIN_FLOOR_SHARE
            if (hidden and facing_camera(circles[wall], mean_uv[label]) < 0) or inner_wall or floor:
                insides.append(label)
        if insides:  # a container: its inside and the slivers of its rim are the wall's
            mapping[insides + slivers] = target
    for bowl, other in rim_pairs(labels, windows, owner, u, v, point_height, np.flatnonzero(np.isfinite(rims[:, 2])),
                                 judged, kernel):
        bowl, other = root_label(mapping, bowl), root_label(mapping, other)
        mapping[other] = bowl  # nothing changes when they are one already
    while True:  # an inside joined to a segment that itself joined another follows it
        followed = mapping[mapping]
        if np.array_equal(followed, mapping):
            return mapping
        mapping = followed


def root_label(mapping: np.ndarray, label: int) -> int:
    """The label that ``label`` has joined, following ``mapping`` (roots map to themselves; no cycles)."""
    while mapping[label] != label:
        label = mapping[label]
    return int(label)
