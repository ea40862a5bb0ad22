"""Bad and degenerate input to the perception3d core: clear errors or empty results with a status."""

import dataclasses

import numpy as np
import pytest

from robot_vision.camera import decode_depth
from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import make_transform, matrix_from_quaternion
from robot_vision.perception3d import (PoseSmoother, PoseSmoothingSettings, SegmentationSettings,
                                       grid_subsample, objects_from_detections, segment_scene,
                                       voxel_downsample, workspace_mask)
from robot_vision.types import CameraIntrinsics, Detections, RGBDFrame

INTR = CameraIntrinsics(640, 480, 525.0, 525.0, 319.5, 239.5)


def frame_with(depth):
    return RGBDFrame(INTR, depth=np.asarray(depth, np.float32))


@pytest.mark.parametrize('name, depth, status', [
    ('all NaN', np.full((480, 640), np.nan), 'no_valid_depth'),
    ('all zero (decoded 16UC1)', decode_depth(np.zeros((480, 640), np.uint16)), 'no_valid_depth'),
    ('all zero (raw float)', np.zeros((480, 640)), 'no_valid_depth'),
    ('all beyond max_depth', np.full((480, 640), 9.0), 'empty_workspace'),
    ('random depth: no plane', np.random.default_rng(0).uniform(0.5, 3.0, (480, 640)), 'no_plane'),
])
def test_degenerate_depth_gives_empty_result_with_status(name, depth, status):
    seg = segment_scene(frame_with(depth))
    assert seg.status == status, name
    assert len(seg.objects) == 0 and seg.plane is None and not seg.ok
    assert seg.cloud.shape == (480, 640, 3) and seg.plane_mask.shape == (480, 640)
    assert seg.objects.mask.shape == (0, 480, 640)
    dets = Detections(xyxy=np.array([[100, 100, 300, 300]], np.float32), confidence=np.ones(1, np.float32),
                      class_id=np.zeros(1, np.int32))
    assert len(objects_from_detections(frame_with(depth), dets)) == 0


def test_no_plane_within_the_up_prior(milk_frame):
    # The floor is in view, but gravity says "up" is the camera's +x: no plane qualifies.
    seg = segment_scene(milk_frame, SegmentationSettings(up_vector=(1, 0, 0), max_plane_tilt_deg=10))
    assert seg.status == 'no_plane' and len(seg.objects) == 0
    # camera_to_fixed carries the same prior when no up_vector is set. The planar method keeps it as
    # a constraint; the clutter method then takes the view's dominant surface (a bin's back wall
    # when the bin's floor shows no depth), here the floor, rather than reporting nothing.
    rotated = dataclasses.replace(milk_frame, camera_to_fixed=make_transform(
        matrix_from_quaternion([0, np.sin(np.pi / 4), 0, np.cos(np.pi / 4)]), np.zeros(3)))
    assert segment_scene(rotated, SegmentationSettings.planar(max_plane_tilt_deg=10)).status == 'no_plane'
    fallback = segment_scene(rotated, SegmentationSettings(max_plane_tilt_deg=10))
    without_prior = segment_scene(milk_frame, SegmentationSettings(max_plane_tilt_deg=10))
    assert fallback.status == 'ok' and np.allclose(fallback.plane, without_prior.plane, atol=1e-6)
    assert len(fallback.objects) == len(without_prior.objects) >= 1


def test_empty_workspace_box(milk_frame):
    seg = segment_scene(milk_frame, SegmentationSettings(workspace_min=(5, 5, 0), workspace_max=(6, 6, 4)))
    assert seg.status == 'empty_workspace' and len(seg.objects) == 0


def test_size_mismatch_and_wrong_dtype_are_input_errors():
    with pytest.raises(InputError, match='depth image is 320x240'):
        RGBDFrame(INTR, depth=np.ones((240, 320), np.float32))
    frame = frame_with(np.ones((480, 640)))
    frame.depth = np.ones((240, 320), np.float32)  # mutated after construction
    with pytest.raises(InputError, match='depth image is 320x240'):
        segment_scene(frame)
    frame.depth = np.ones((480, 640), np.float64)
    with pytest.raises(InputError, match='float32'):
        segment_scene(frame)
    with pytest.raises(InputError, match='frame.depth'):
        segment_scene(RGBDFrame(INTR, color=np.zeros((480, 640, 3), np.uint8)))
    with pytest.raises(InputError, match='RGBDFrame'):
        segment_scene(np.zeros((480, 640), np.float32))


@pytest.mark.parametrize('kwargs, field', [
    (dict(min_depth=2.0, max_depth=1.0), 'min_depth'),
    (dict(plane_distance=0), 'plane_distance'),
    (dict(plane_stride=0), 'plane_stride'),
    (dict(up_vector=(0, 0)), 'up_vector'),
    (dict(up_vector=(0, 0, 0)), 'up_vector'),
    (dict(workspace_min=(1, 1, 1), workspace_max=(0, 0, 0)), 'workspace_min'),
    (dict(workspace_transform=np.eye(3)), 'workspace_transform'),
    (dict(max_plane_tilt_deg=120), 'max_plane_tilt_deg'),
    (dict(min_object_points=100, max_object_points=10), 'max_object_points'),
    (dict(ransac_iterations=2.5), 'ransac_iterations'),
])
def test_settings_validation_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SegmentationSettings(**kwargs)


def test_settings_are_frozen_and_hashable():
    settings = SegmentationSettings(workspace_transform=np.eye(4), up_vector=np.array([0, -1, 0]))
    assert settings.up_vector == (0.0, -1.0, 0.0)
    hash(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.min_depth = 1.0


def test_workspace_and_downsampling_helpers():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (5000, 3)).astype(np.float32)
    pts[:, 2] += 1.5
    pts[0] = np.nan
    mask = workspace_mask(pts, 1.0, 2.0, box_min=(-0.5, -0.5, 0), box_max=(0.5, 0.5, 5))
    expected = ((pts[:, 2] >= 1) & (pts[:, 2] <= 2) & (np.abs(pts[:, 0]) <= 0.5) & (np.abs(pts[:, 1]) <= 0.5))
    np.testing.assert_array_equal(mask, expected)
    # A box given in another frame: p_box = T p_camera, T a pure translation by +10 in x.
    transform = make_transform(np.eye(3), [10.0, 0, 0])
    shifted = workspace_mask(pts, 1.0, 2.0, (9.5, -0.5, 0), (10.5, 0.5, 5), box_transform=transform)
    np.testing.assert_array_equal(shifted, expected)
    down, index = voxel_downsample(pts, 0.25, return_index=True)
    cells = np.unique(np.floor(pts[1:] / 0.25), axis=0)
    assert down.shape == (len(cells), 3) and down.dtype == np.float32
    assert np.all(np.floor(pts[index] / 0.25) == np.floor(down / 0.25))
    assert voxel_downsample(np.full((3, 3), np.nan), 0.1).shape == (0, 3)
    with pytest.raises(InputError, match='voxel_size'):
        voxel_downsample(pts, 0)
    organized = pts[:4800].reshape(60, 80, 3)
    assert grid_subsample(organized, 4).shape[0] == 15 * 20 - int(np.isnan(organized[0, 0, 2]))
    with pytest.raises(InputError, match=r'\(N, 3\)'):
        voxel_downsample(np.zeros((4, 2)), 0.1)


def test_pose_smoother():
    smoother = PoseSmoother(PoseSmoothingSettings(position_alpha=0.5, rotation_alpha=0.5, reset_distance=0.1))
    rot = matrix_from_quaternion([0, 0, np.sin(0.1), np.cos(0.1)])  # 0.2 rad about z
    first = smoother.update('a', np.eye(4), 0.0)
    np.testing.assert_allclose(first, np.eye(4))
    second = smoother.update('a', make_transform(rot, [0.04, 0, 0]), 0.1)
    np.testing.assert_allclose(second[:3, 3], [0.02, 0, 0])
    angle = np.arctan2(second[1, 0], second[0, 0])
    assert abs(angle - 0.1) < 1e-9
    # A 0.5 m jump restarts the filter at the measurement; another id is independent.
    jumped = smoother.update('a', make_transform(np.eye(3), [0.5, 0, 0]), 0.2)
    np.testing.assert_allclose(jumped[:3, 3], [0.5, 0, 0])
    smoother.update('b', np.eye(4), 0.2)
    assert len(smoother) == 2
    # A long gap also restarts; prune forgets stale ids.
    late = smoother.update('a', make_transform(np.eye(3), [0.52, 0, 0]), 5.0)
    np.testing.assert_allclose(late[:3, 3], [0.52, 0, 0])
    smoother.prune(5.0)
    assert len(smoother) == 1
    smoother.reset()
    assert len(smoother) == 0
    with pytest.raises(InputError, match='pose'):
        smoother.update('a', np.eye(3), 0.0)
    with pytest.raises(ConfigError, match='position_alpha'):
        PoseSmoothingSettings(position_alpha=0)
