"""Object clouds cut out of a scene by oriented boxes (for objects that arrive as boxes only)."""

import dataclasses

import numpy as np
import pytest

from robot_vision.datasets import load_pcl_sequence
from robot_vision.errors import InputError
from robot_vision.geometry import make_transform, matrix_from_quaternion
from robot_vision.perception3d import SegmentationSettings, plane_distance, segment_scene
from robot_vision.perception3d.box_points import (
    SupportPlaneStream,
    objects_with_box_points,
    plane_inlier_fraction,
    points_in_box,
    support_plane,
)
from robot_vision.pipeline import scene_points
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


@pytest.fixture(scope='module')
def sequence(shared_data):
    """The 3-frame PCL Kinect sequence: the same floor, seen from a camera that moves a little by the third."""
    return load_pcl_sequence(shared_data / 'pcl_kinect' / 'sequence')


def test_box_points_are_every_scene_point_inside_the_grown_box_above_the_floor_band(milk_frame):
    """The bounds prefilter drops nothing: a brute-force box and band test over all points gives the same clouds."""
    settings = SegmentationSettings(max_depth=2.0)
    segmented = segment_scene(milk_frame, settings)
    points = scene_points(milk_frame, 0.0)
    rng = np.random.default_rng(3)
    quaternions = rng.normal(size=(12, 4))
    poses = np.array([make_transform(matrix_from_quaternion(q / np.linalg.norm(q)), points[rng.integers(len(points))])
                      for q in quaternions])  # tilted boxes anywhere in the scene, floor included
    boxes = _objects(np.concatenate([segmented.objects.pose, poses]),
                     np.concatenate([segmented.objects.size, rng.uniform(0.02, 0.5, (12, 3))]))
    band = plane_distance(points, segmented.plane) > settings.inlier_threshold(points[:, 2])
    for margin in (0.01, -0.005):
        got = objects_with_box_points(boxes, points, segmented.plane, margin, settings)
        sizes = []
        for i, cloud in enumerate(got.points):
            expected = points[points_in_box(points, boxes.pose[i], boxes.size[i], margin) & band]
            assert np.array_equal(cloud, expected), i  # same points, in scene order
            if len(cloud):
                assert np.allclose(got.centroid[i], expected.astype(np.float64).mean(axis=0), rtol=0, atol=1e-9)
            else:
                assert np.array_equal(got.centroid[i], boxes.position[i])
            sizes.append(len(cloud))
        assert sum(size > 100 for size in sizes) >= 6 and 0 in sizes  # real clouds, and boxes over floor only


def test_plane_inlier_fraction_is_high_for_the_own_floor_and_low_for_another(milk_frame, sequence):
    settings = SegmentationSettings(max_depth=2.0)
    milk_plane, sequence_plane = support_plane(milk_frame, settings), support_plane(sequence[0], settings)
    assert plane_inlier_fraction(milk_frame, milk_plane, settings) > 0.7
    assert plane_inlier_fraction(sequence[0], sequence_plane, settings) > 0.6
    assert plane_inlier_fraction(sequence[0], milk_plane, settings) < 0.1
    assert plane_inlier_fraction(milk_frame, sequence_plane, settings) < 0.1
    no_depth = dataclasses.replace(milk_frame, depth=np.full_like(milk_frame.depth, np.nan))
    assert plane_inlier_fraction(no_depth, milk_plane, settings) == 0.0


def test_support_plane_stream_keeps_a_still_fitting_plane_and_refits_a_moved_floor(milk_frame, sequence):
    settings = SegmentationSettings(max_depth=2.0)
    first, second, third = sequence
    fitted = {name: support_plane(frame, settings) for name, frame in
              (('first', first), ('second', second), ('third', third), ('milk', milk_frame))}
    assert not np.allclose(fitted['first'], fitted['second'])  # each frame's own fit differs a little
    stream = SupportPlaneStream(settings)
    assert np.array_equal(stream.update(first), fitted['first'])
    assert np.array_equal(stream.update(second), fitted['first'])  # same floor: kept
    assert np.array_equal(stream.update(third), fitted['third'])  # the camera moved: refitted
    assert np.array_equal(stream.update(milk_frame), fitted['milk'])  # another floor: refitted
    assert np.array_equal(stream.update(milk_frame), fitted['milk'])
    # The floor 3 cm further away (the camera moved back along its axis): refitted.
    back = dataclasses.replace(milk_frame, depth=milk_frame.depth + np.float32(0.03))
    assert np.array_equal(stream.update(back), support_plane(back, settings))
    # No depth: no plane, and the next frame is fitted afresh.
    no_depth = dataclasses.replace(milk_frame, depth=np.full_like(milk_frame.depth, np.nan))
    assert stream.update(no_depth) is None
    assert np.array_equal(stream.update(second), fitted['second'])


def test_support_plane_stream_refits_after_max_age_frames(sequence):
    settings = SegmentationSettings(max_depth=2.0)
    first, second, _ = sequence
    stream = SupportPlaneStream(settings, max_age=3)
    planes = [stream.update(frame) for frame in (first, second, second, second, second)]
    expected = support_plane(first, settings), support_plane(second, settings)
    for plane, which in zip(planes, (0, 0, 0, 1, 1)):  # kept 2 frames, refitted on the 3rd after the fit
        assert np.array_equal(plane, expected[which])
    for bad in ({'keep_fraction': 0.0}, {'keep_fraction': 1.5}, {'max_age': 0}):
        with pytest.raises(InputError):
            SupportPlaneStream(settings, **bad)
