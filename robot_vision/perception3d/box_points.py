"""Object clouds from oriented 3D boxes: the scene points inside each box, for objects known only by their box.

A 3D detector or pose estimator (ours, or e.g. Isaac ROS FoundationPose) reports objects as
oriented boxes without point clouds; the grasp planner needs each object's points. These
helpers cut them out of the scene cloud: the points inside the object's box inflated by a
margin, less those on (or under) the support plane.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from robot_vision.errors import InputError
from robot_vision.geometry import invert_transform, transform_points
from robot_vision.perception3d.plane import plane_distance
from robot_vision.perception3d.segmentation import (
    SegmentationSettings,
    fit_support_plane,
    prepare_cloud,
    up_prior,
)
from robot_vision.types import Objects3D, RGBDFrame


def points_in_box(points: np.ndarray, pose: np.ndarray, size: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N,) bool: which (N, 3) points lie inside the oriented box grown by ``margin`` metres on every side.

    ``pose`` (4, 4) is the box frame (origin at the box centre) in the points' frame and ``size``
    (3,) its extent along the box axes; a negative ``margin`` shrinks the box. NaN points are outside.
    """
    points = np.asarray(points)
    size = np.asarray(size, np.float64)
    if size.shape != (3,):
        raise InputError(f'size: expected shape (3,), got {size.shape}')
    local = transform_points(invert_transform(pose), points)
    with np.errstate(invalid='ignore'):
        return np.all(np.abs(local) <= size / 2 + margin, axis=1)


def support_plane(frame: RGBDFrame, settings: SegmentationSettings = SegmentationSettings()) -> Optional[np.ndarray]:
    """The support plane [a, b, c, d] of a depth frame (unit normal towards the camera), or None.

    Fitted as :func:`~robot_vision.perception3d.segment_scene` does (workspace, gravity prior from
    the settings or ``frame.camera_to_fixed``), without segmenting the objects.
    """
    cloud, valid, _ = prepare_cloud(frame, settings)
    if not valid.any():
        return None
    plane, _ = fit_support_plane(cloud, valid, settings, up_prior(frame, settings))
    return plane


def objects_with_box_points(objects: Objects3D, points: np.ndarray, plane: Optional[np.ndarray] = None,
                            margin: float = 0.01,
                            settings: SegmentationSettings = SegmentationSettings()) -> Objects3D:
    """``objects`` with ``points`` set to the (N, 3) scene points inside each box grown by ``margin``.

    With a support ``plane`` (normal pointing away from the surface), points within its inlier
    band (``settings.inlier_threshold`` at their depth) or below it are left out, so a box
    resting on a floor does not take a ring of floor with it. ``centroid`` becomes the mean of
    the points (the box centre where none are left); ``indices`` are cleared (the points are
    not pixels).
    """
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f'points: expected shape (N, 3), got {points.shape}')
    if plane is not None:
        with np.errstate(invalid='ignore'):
            points = points[plane_distance(points, plane) > settings.inlier_threshold(points[:, 2])]
    clouds = [points[points_in_box(points, objects.pose[i], objects.size[i], margin)] for i in range(len(objects))]
    centroids = np.array([c.mean(axis=0) if len(c) else objects.position[i] for i, c in enumerate(clouds)],
                         np.float64).reshape(-1, 3)
    return dataclasses.replace(objects, points=clouds, centroid=centroids, indices=[])
