"""Object clouds cut out of a scene by oriented boxes (for objects that arrive as boxes only)."""

import numpy as np
import pytest

from robot_vision.errors import InputError
from robot_vision.geometry import make_transform
from robot_vision.perception3d import SegmentationSettings, segment_scene
from robot_vision.perception3d.box_points import objects_with_box_points, points_in_box, support_plane
from robot_vision.types import Objects3D


def _rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_points_in_a_rotated_box_with_margin():
    pose = make_transform(_rot_z(np.pi / 4), [1.0, 2.0, 0.5])
    size = np.array([0.4, 0.2, 0.1])
    local = np.array([[0.19, 0.0, 0.0], [0.21, 0.0, 0.0], [0.0, 0.11, 0.0], [0.0, 0.0, -0.06], [0.0, 0.0, 0.0]])
    points = local @ pose[:3, :3].T + pose[:3, 3]
    points = np.vstack([points, [np.nan, np.nan, np.nan]])
    assert points_in_box(points, pose, size).tolist() == [True, False, False, False, True, False]
    assert points_in_box(points, pose, size, margin=0.02).tolist() == [True, True, True, True, True, False]
    assert points_in_box(points, pose, size, margin=-0.02).tolist() == [False, False, False, False, True, False]
    with pytest.raises(InputError, match='size'):
        points_in_box(points, pose, size[:2])


def _objects(poses, sizes):
    poses = np.asarray(poses, np.float64)
    return Objects3D(pose=poses, size=sizes, centroid=poses[:, :3, 3], confidence=np.ones(len(poses)),
                     class_id=np.full(len(poses), -1), detection_index=np.arange(len(poses)))


def test_box_points_leave_out_the_support_plane_and_other_objects():
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(-0.5, 0.5, (4000, 2)), np.zeros(4000)]
    cube = rng.uniform(-0.05, 0.05, (500, 3)) + [0.0, 0.0, 0.05]
    other = rng.uniform(-0.03, 0.03, (300, 3)) + [0.3, 0.0, 0.03]
    # z up, 1 m above the floor: the camera frame here is just "z up, floor at z = 0, camera at z = 1"
    points = np.vstack([floor, cube, other]).astype(np.float32) + [0.0, 0.0, 1.0]
    plane = np.array([0.0, 0.0, 1.0, -1.0])
    objects = _objects([make_transform(np.eye(3), [0.0, 0.0, 1.05]), make_transform(np.eye(3), [0.3, 0.0, 1.03])],
                       [[0.1, 0.1, 0.1], [0.06, 0.06, 0.06]])
    got = objects_with_box_points(objects, points, plane, margin=0.01)
    inlier = SegmentationSettings().inlier_threshold  # at the points' depth (z)
    assert len(got.points[0]) == np.sum(cube[:, 2] > inlier(cube[:, 2] + 1.0)) > 400
    assert len(got.points[1]) == np.sum(other[:, 2] > inlier(other[:, 2] + 1.0)) > 200
    assert np.allclose(got.centroid[0], got.points[0].mean(axis=0))
    # Without the plane the floor ring under the grown box comes along.
    assert len(objects_with_box_points(objects, points, None, margin=0.01).points[0]) > len(cube)
    empty = objects_with_box_points(_objects([make_transform(np.eye(3), [5.0, 5.0, 5.0])], [[0.1] * 3]), points)
    assert len(empty.points[0]) == 0 and np.allclose(empty.centroid[0], [5.0, 5.0, 5.0])


def test_support_plane_is_the_one_segment_scene_finds(milk_frame):
    settings = SegmentationSettings(max_depth=2.0)
    plane = support_plane(milk_frame, settings)
    assert plane is not None
    assert np.allclose(plane, segment_scene(milk_frame, settings).plane)
