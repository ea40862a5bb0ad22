"""Round containers of the 'clutter' method: a mug's, cup's or pot's inside joins its outer wall.

Seen from above, the near rim of an open round container hides the bottom of its inside: the
inner surface beyond the rim lies behind the outer wall by more than a depth step, so the depth
cuts make two segments of one object (the outer wall, and the inner far wall with the rim top).
The geometry tells them apart from two objects standing one behind the other: the outer wall's
points, projected along the support normal, lie on a circle (a round wall), and the inside's
points lie within that circle and no higher than the wall's rim. An object standing behind a
mug lies outside its circle; a box, a ball or a can lying on its side does not project onto a
circle. :func:`join_insides` runs on the working image after the background rules.
"""

from __future__ import annotations

import cv2
import numpy as np

from robot_vision.perception3d.plane import plane_basis

#: A round wall's radius (metres): from an espresso cup to a cooking pot.
MIN_RADIUS, MAX_RADIUS = 0.02, 0.15
#: The wall's points lie on their circle within this share of its radius (RMS) and this distance.
MAX_CIRCLE_RESIDUAL, MAX_CIRCLE_RMS = 0.05, 0.004
#: Share of the inside's points within the circle (plus ``INSIDE_MARGIN``), and the margin.
MIN_INSIDE_SHARE, INSIDE_MARGIN = 0.8, 0.005
#: The inside rises at most this far above the wall's rim (the rim top belongs to either piece).
RIM_TOLERANCE = 0.01
#: The outer wall's mean direction from its circle's centre is this close (cosine) to the camera's.
MIN_WALL_FACING = 0.5
#: Share of the outer wall's pixels around the inside that lie in front of it by a depth step.
MIN_OCCLUDED_SHARE = 0.5


def round_walls(owner: np.ndarray, u: np.ndarray, v: np.ndarray, count: int) -> np.ndarray:
    """(count, 3) float64: per label, the circle (centre u, centre v, radius) its points lie on, else NaN.

    ``owner`` (N,) the label of each point, ``u``, ``v`` (N,) its coordinates in the support plane.
    An algebraic least-squares circle per label (one pass of sums over all points); the points must
    lie on it within ``MAX_CIRCLE_RESIDUAL`` of the radius and ``MAX_CIRCLE_RMS`` metres (RMS), and
    the radius must be a container's (``MIN_RADIUS`` .. ``MAX_RADIUS``): a box's face (a line), a can's
    lid (a filled disc) or a table edge is no round wall.
    """
    out = np.full((count, 3), np.nan)
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
        residual = np.hypot(x - cx[owner], y - cy[owner]) - radius[owner]
        rms = np.sqrt(total(residual * residual) / n)
        ok = (n >= 20) & (det > 0) & (radius >= MIN_RADIUS) & (radius <= MAX_RADIUS) & (
            rms <= np.minimum(MAX_CIRCLE_RESIDUAL * radius, MAX_CIRCLE_RMS))
    out[ok] = np.stack([mean_u + cx, mean_v + cy, radius], axis=1)[ok]
    return out


def facing_camera(circle: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Cosine between a point's direction from a circle's centre and the camera's (the plane origin)."""
    centre = circle[..., :2]
    towards = point - centre
    return -np.sum(towards * centre, axis=-1) / np.maximum(
        np.linalg.norm(towards, axis=-1) * np.linalg.norm(centre, axis=-1), 1e-12)


def join_insides(labels: np.ndarray, cloud: np.ndarray, height: np.ndarray, plane: np.ndarray, settings,
                 judged: np.ndarray, radius: int = 3) -> np.ndarray:
    """(judged.size,) int: the label each label becomes, a round container's inside that of its outer wall.

    The round walls are the ``judged`` segments whose points, in the support plane's coordinates,
    lie on a circle (:func:`round_walls`) on the camera's side of its centre (a container's front
    wall, within 60 degrees of the camera's direction: ``MIN_WALL_FACING``). A ``judged`` segment A
    within ``radius`` working pixels of such a wall B joins it when at least ``MIN_OCCLUDED_SHARE``
    of B's pixels around A lie nearer than A's nearest surface there by more than the depth-step
    threshold (B hides part of A), at least ``MIN_INSIDE_SHARE`` of A's points lie within B's
    circle with their mean beyond its centre, and A's top (95th percentile of height) is at most
    ``RIM_TOLERANCE`` above B's (98th percentile). Apply it as ``mapping[labels]``; run it after the
    background rules, so that no object joins a piece of background that happens to be round.
    """
    from scipy.ndimage import find_objects
    count = judged.size
    mapping = np.arange(count)
    depth = cloud[..., 2]
    valid = np.isfinite(depth)
    flat = labels.reshape(-1)
    points = np.flatnonzero(valid.reshape(-1) & (flat > 0))
    owner = flat[points]
    basis = np.stack(plane_basis(plane[:3]), axis=1).astype(np.float32)
    uv = cloud.reshape(-1, 3)[points] @ basis
    circles = round_walls(owner, uv[:, 0].astype(np.float64), uv[:, 1].astype(np.float64), count)
    pixels = np.maximum(np.bincount(owner, minlength=count), 1)
    mean_uv = np.stack([np.bincount(owner, uv[:, k], minlength=count) for k in range(2)], axis=1) / pixels[:, None]
    with np.errstate(invalid='ignore'):
        front = facing_camera(circles, mean_uv) >= MIN_WALL_FACING
    walls = np.flatnonzero(judged & np.isfinite(circles[:, 2]) & front)
    if walls.size == 0:
        return mapping
    windows = find_objects(labels, max_label=count - 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    h, w = labels.shape

    def grown(window):
        ys, xs = window
        return slice(max(ys.start - radius, 0), min(ys.stop + radius, h)), slice(
            max(xs.start - radius, 0), min(xs.stop + radius, w))

    for wall in walls:
        area = grown(windows[wall - 1])
        own_wall = labels[area] == wall
        rim = np.percentile(height[area][own_wall & valid[area]], 98)
        near = cv2.dilate(own_wall.view(np.uint8), kernel) > 0
        for label in np.unique(labels[area][near]):
            if label in (0, wall) or not judged[label] or mapping[label] != label:
                continue
            window = grown(windows[label - 1])
            around, d = labels[window], depth[window]
            inside = around == label
            nearest = -cv2.dilate(np.where(inside & np.isfinite(d), -d, np.float32(-np.inf)), kernel)
            ring = (cv2.dilate(inside.view(np.uint8), kernel) > 0) & (around == wall) & np.isfinite(d) & (
                np.isfinite(nearest))
            if np.count_nonzero(ring) < 8:
                continue
            with np.errstate(invalid='ignore'):
                hidden = d[ring] < nearest[ring] - settings.step_threshold(d[ring])
            if np.mean(hidden) < MIN_OCCLUDED_SHARE or facing_camera(circles[wall], mean_uv[label]) >= 0:
                continue
            own = inside & valid[window]
            offset = cloud[window][own] @ basis - circles[wall, :2].astype(np.float32)
            within = np.mean(np.hypot(offset[:, 0], offset[:, 1]) <= circles[wall, 2] + INSIDE_MARGIN)
            if within >= MIN_INSIDE_SHARE and np.percentile(height[window][own], 95) <= rim + RIM_TOLERANCE:
                mapping[label] = wall
    while True:  # an inside joined to a segment that itself joined another follows it
        followed = mapping[mapping]
        if np.array_equal(followed, mapping):
            return mapping
        mapping = followed
