"""Object clouds from oriented 3D boxes: the scene points inside each box, for objects known only by their box.

A 3D detector or pose estimator (ours, or e.g. Isaac ROS FoundationPose) reports objects as
oriented boxes without point clouds; the grasp planner needs each object's points. These
helpers cut them out of the scene cloud: the points inside the object's box inflated by a
margin, less those on (or under) the support plane. On a stream of frames from one camera,
:class:`SupportPlaneStream` keeps the support plane while it still fits the depth instead of
refitting it on every frame.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from robot_vision.errors import InputError
from robot_vision.geometry import invert_transform, transform_points
from robot_vision.perception3d.plane import plane_distance
from robot_vision.perception3d.planar import fit_support_plane
from robot_vision.perception3d.segmentation import SegmentationSettings, check_depth_frame, prepare_cloud, up_prior
from robot_vision.types import CameraIntrinsics, Objects3D, RGBDFrame

#: Metres the axis-aligned prefilter boxes of :func:`objects_with_box_points` are grown by: far
#: above float32 rounding, so the prefilter never drops a point that the exact box test keeps.
_BOUNDS_SLACK = 1e-3


def points_in_box(points: np.ndarray, pose: np.ndarray, size: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N,) bool: which (N, 3) points lie inside the oriented box grown by ``margin`` metres on every side.

    ``pose`` (4, 4) is the box frame (origin at the box centre) in the points' frame and ``size``
    (3,) its extent along the box axes; a negative ``margin`` shrinks the box. NaN points are outside.
    """
    points = np.asarray(points)
    size = np.asarray(size, np.float64)
    if size.shape != (3,):
        raise InputError(f'size: expected shape (3,), got {size.shape}')
    local = np.abs(transform_points(invert_transform(pose), points))
    half = size / 2 + margin
    with np.errstate(invalid='ignore'):
        inside = local[:, 0] <= half[0]  # per axis against float64 scalars: exact, and no slow all(axis=1)
        inside &= local[:, 1] <= half[1]
        inside &= local[:, 2] <= half[2]
    return inside


def _in_bounds(columns: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(N,) bool: which points of (3, N) float32 ``columns`` (x, y, z rows) lie in the box [low, high]; NaN is outside.

    ``low`` and ``high`` (3,) are compared as float32, so that contiguous float32 runs compare fast.
    """
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    with np.errstate(invalid='ignore'):
        inside = columns[2] >= low[2]
        inside &= columns[2] <= high[2]
        for axis in (0, 1):
            inside &= columns[axis] >= low[axis]
            inside &= columns[axis] <= high[axis]
    return inside


def support_plane(frame: RGBDFrame, settings: SegmentationSettings = SegmentationSettings()) -> Optional[np.ndarray]:
    """The support plane [a, b, c, d] of a depth frame (unit normal towards the camera), or None.

    Fitted as :func:`~robot_vision.perception3d.segment_scene` does with ``settings.method``
    (workspace, gravity prior from the settings or ``frame.camera_to_fixed``), without segmenting
    the objects.
    """
    cloud, valid, _ = prepare_cloud(frame, settings)
    if not valid.any():
        return None
    if settings.method == 'clutter':
        from robot_vision.perception3d.clutter import segment_labels
        return segment_labels(cloud[..., 2], frame.intrinsics, up_prior(frame, settings), settings,
                              support_only=True)['plane']
    plane, _ = fit_support_plane(cloud, valid, settings, up_prior(frame, settings))
    return plane


def plane_inlier_fraction(frame: RGBDFrame, plane: np.ndarray,
                          settings: SegmentationSettings = SegmentationSettings()) -> float:
    """Fraction of the frame's valid workspace points that lie in ``plane``'s inlier band (0 when none is valid).

    Evaluated on every ``settings.plane_stride``-th pixel in both directions (the grid the
    support plane is fitted on), with ``settings.inlier_threshold`` at each point's depth.
    """
    stride = settings.plane_stride
    depth = np.ascontiguousarray(check_depth_frame(frame)[::stride, ::stride])
    k = frame.intrinsics
    # Pixel (u, v) of the strided image is pixel (stride u, stride v) of the full one.
    grid = CameraIntrinsics(depth.shape[1], depth.shape[0], k.fx / stride, k.fy / stride, k.cx / stride,
                            k.cy / stride)
    cloud, valid, _ = prepare_cloud(RGBDFrame(grid, depth=depth), settings)
    points = cloud[valid]
    if not len(points):
        return 0.0
    distance = np.abs(plane_distance(points, plane))
    return float(np.count_nonzero(distance < settings.inlier_threshold(points[:, 2]))) / len(points)


class SupportPlaneStream:
    """The support plane of a stream of depth frames from one camera, refitted only when it stops fitting.

    :meth:`update` fits :func:`support_plane` on the first frame and records the plane's
    :func:`plane_inlier_fraction` on it. On later frames it keeps that plane while its inlier
    fraction on the new frame is at least ``keep_fraction`` times the recorded one (the floor
    has not moved by more than its inlier band) and it was fitted fewer than ``max_age``
    frames ago; otherwise (or when no plane was found) it refits. Keeping costs a plane test
    on the ``plane_stride`` pixel grid instead of a RANSAC fit over the whole image.
    """

    def __init__(self, settings: SegmentationSettings = SegmentationSettings(), keep_fraction: float = 0.95,
                 max_age: int = 30) -> None:
        if not 0 < keep_fraction <= 1:
            raise InputError(f'keep_fraction: expected a number in (0, 1], got {keep_fraction!r}')
        if int(max_age) < 1:
            raise InputError(f'max_age: expected frames >= 1, got {max_age!r}')
        self.settings, self.keep_fraction, self.max_age = settings, keep_fraction, int(max_age)
        self._plane: Optional[np.ndarray] = None
        self._fraction = 0.0
        self._age = 0

    def update(self, frame: RGBDFrame) -> Optional[np.ndarray]:
        """The support plane for ``frame``: the kept one while it still fits, else a fresh fit (or None)."""
        self._age += 1
        if (self._plane is not None and self._age < self.max_age
                and plane_inlier_fraction(frame, self._plane, self.settings) >= self.keep_fraction * self._fraction):
            return self._plane
        self._plane, self._age = support_plane(frame, self.settings), 0
        if self._plane is not None:
            self._fraction = plane_inlier_fraction(frame, self._plane, self.settings)
        return self._plane


def objects_with_box_points(objects: Objects3D, points: np.ndarray, plane: Optional[np.ndarray] = None,
                            margin: float = 0.01,
                            settings: SegmentationSettings = SegmentationSettings()) -> Objects3D:
    """``objects`` with ``points`` set to the (N, 3) scene points inside each box grown by ``margin``.

    With a support ``plane`` (normal pointing away from the surface), points within its inlier
    band (``settings.inlier_threshold`` at their depth) or below it are left out, so a box
    resting on a floor does not take a ring of floor with it. ``centroid`` becomes the mean of
    the points (the box centre where none are left); ``indices`` are cleared (the points are
    not pixels). Each object's points keep their order in ``points``.

    Only the points inside the axis-aligned bounds of all grown boxes are kept for the boxes,
    and only those inside an object's own bounds are tested against its oriented box and the
    plane, so the cost follows the points near the objects rather than the whole scene.
    """
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f'points: expected shape (N, 3), got {points.shape}')
    clouds, centroids = [], np.array(objects.position, np.float64).reshape(-1, 3)
    if len(objects):
        # Axis-aligned bounds of each grown box in the points' frame: centre -/+ |R| (size / 2 + margin).
        extent = np.einsum('nij,nj->ni', np.abs(objects.pose[:, :3, :3]), objects.size / 2 + margin) + _BOUNDS_SLACK
        low, high = objects.pose[:, :3, 3] - extent, objects.pose[:, :3, 3] + extent
        # (3, N) columns: the bounds tests and the means run on contiguous float32, and np.compress
        # along the rows is several times faster than a boolean row selection of an (N, 3) array.
        columns = np.ascontiguousarray(points.T)
        near = np.compress(_in_bounds(columns, low.min(axis=0), high.max(axis=0)), columns, axis=1)
        for i in range(len(objects)):
            box = np.compress(_in_bounds(near, low[i], high[i]), near, axis=1)
            rows = np.ascontiguousarray(box.T)
            keep = points_in_box(rows, objects.pose[i], objects.size[i], margin)
            if plane is not None:
                with np.errstate(invalid='ignore'):
                    keep &= plane_distance(rows, plane) > settings.inlier_threshold(rows[:, 2])
            clouds.append(np.compress(keep, rows, axis=0))
            if keep.any():
                centroids[i] = np.compress(keep, box, axis=1).mean(axis=1, dtype=np.float64)
    return dataclasses.replace(objects, points=clouds, centroid=centroids, indices=[])
