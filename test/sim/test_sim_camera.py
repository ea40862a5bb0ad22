"""Simulated RGB-D camera: linear depth, intrinsics, optical frame, ground truth, noise, range codes, motion."""

import dataclasses

import cv2
import numpy as np
import pytest

from robot_vision.camera import deproject, project
from robot_vision.detection import detections_from_objects
from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import invert_transform, transform_points
from robot_vision.sim import DepthNoise, SceneSettings, SimScene, apply_depth_noise, generate_scene
from robot_vision.sim.noise import range_codes
from robot_vision.sim.simulator import import_mujoco, intrinsics_from_fovy
from robot_vision.types import Objects3D


@pytest.fixture(scope='module')
def clutter_render():
    spec = generate_scene(4, SceneSettings(clutter='clutter'))
    with SimScene(spec) as scene:
        frame, gt = scene.render()
        table = import_mujoco().mj_name2id(scene.model, import_mujoco().mjtObj.mjOBJ_GEOM, 'table_top')
        _, _, geom = scene.camera.render(scene.data)
    return spec, frame, gt, geom == table


def test_frame_types_and_intrinsics(clutter_render):
    spec, frame, gt, _ = clutter_render
    assert frame.color.shape == (480, 640, 3) and frame.color.dtype == np.uint8
    assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.float32
    assert frame.frame_id == 'camera_color_optical_frame'
    k = frame.intrinsics
    assert k.fy == pytest.approx(240.0 / np.tan(np.deg2rad(spec.settings.fovy_deg) / 2))
    assert (k.fx, k.cx, k.cy) == (k.fy, 319.5, 239.5)
    np.testing.assert_allclose(frame.camera_to_fixed, spec.camera.pose, atol=1e-6)
    assert frame.color.std() > 10   # an actual image, not a blank buffer


def test_depth_of_table_plane_matches_ray_intersection(clutter_render):
    """Rendered depth is the optical z of the true surface: checked against the table plane height."""
    spec, frame, gt, table = clutter_render
    k, pose = frame.intrinsics, frame.camera_to_fixed
    v, u = np.nonzero(table)
    assert len(u) > 50000
    rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones(len(u))], 1) @ pose[:3, :3].T
    expected_z = (spec.surface_height - pose[2, 3]) / rays[:, 2]
    error = frame.depth[v, u] - expected_z
    assert np.abs(error).max() < 1e-4
    cloud = transform_points(pose, deproject(frame.depth, k)[v, u].astype(np.float64))
    np.testing.assert_allclose(cloud[:, 2], spec.surface_height, atol=1e-4)


def test_ground_truth_masks_poses_and_depth_agree(clutter_render):
    spec, frame, gt, _ = clutter_render
    n = len(spec.objects)
    assert gt.mask.shape == (n, 480, 640) and len(gt) == n
    assert not np.any(gt.mask.sum(0) > 1)                       # instances are disjoint
    np.testing.assert_allclose(gt.pose_camera, invert_transform(gt.camera_pose_world)[None] @ gt.pose_world)
    cloud = deproject(frame.depth, frame.intrinsics)
    for i in range(n):
        if gt.visible_pixels[i] < 50:
            continue
        # every visible pixel deprojects onto the object's box (in its own frame)
        points = transform_points(invert_transform(gt.pose_camera[i]), cloud[gt.mask[i]].astype(np.float64))
        assert np.all(np.abs(points) <= gt.size[i] / 2 + 0.003)
        # the box centre projects near the mask
        u, v = project(gt.pose_camera[i][None, :3, 3], frame.intrinsics)[0]
        ys, xs = np.nonzero(gt.mask[i])
        assert xs.min() - 15 <= u <= xs.max() + 15 and ys.min() - 15 <= v <= ys.max() + 15
        # Objects3D convention: z up in the world, x the longer horizontal side
        assert gt.pose_world[i][2, 2] > 0.9 and gt.size[i][0] >= gt.size[i][1]
        assert gt.model_points[i].shape[1] == 3
        inside = np.abs(gt.model_points[i]) <= gt.size[i] / 2 + 1e-6
        assert inside.all()


def test_ground_truth_boxes_and_detections(clutter_render):
    _, frame, gt, _ = clutter_render
    dets = gt.detections(min_visible_pixels=50)
    visible = gt.visible_pixels >= 50
    assert len(dets) == int(visible.sum())
    np.testing.assert_array_equal(dets.tracker_id, gt.object_id[visible])
    for box, mask in zip(dets.xyxy, dets.mask):
        ys, xs = np.nonzero(mask)
        assert tuple(box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


@pytest.mark.parametrize('frame_name', ['camera', 'world'])
def test_ground_truth_objects_are_objects3d_in_either_frame(clutter_render, frame_name):
    """GroundTruth.objects: every object with the exact box pose, size and class, masks and detection rows."""
    _, frame, gt, _ = clutter_render
    objects = gt.objects(frame_name)
    assert isinstance(objects, Objects3D) and len(objects) == len(gt)
    expected = gt.pose_camera if frame_name == 'camera' else gt.pose_world
    np.testing.assert_array_equal(objects.pose, expected)
    np.testing.assert_array_equal(objects.centroid, expected[:, :3, 3])
    np.testing.assert_array_equal(objects.size, gt.size)
    np.testing.assert_array_equal(objects.class_id, gt.class_id)
    assert (objects.confidence == 1).all() and objects.mask is gt.mask
    # the camera-frame objects are the world-frame ones seen from the camera (frame.camera_to_fixed)
    if frame_name == 'world':
        np.testing.assert_allclose(invert_transform(frame.camera_to_fixed)[None] @ objects.pose,
                                   gt.objects('camera').pose, atol=1e-6)
    # detection_index is the object's row in GroundTruth.detections(), whose boxes the masks' boxes are
    detections = gt.detections()
    rows = objects.detection_index
    assert (rows >= 0).all() and len(detections) == len(gt)
    np.testing.assert_array_equal(detections.tracker_id[rows], gt.object_id)
    np.testing.assert_array_equal(detections.xyxy[rows], detections_from_objects(objects).xyxy)


def test_ground_truth_objects_of_hidden_objects(clutter_render):
    """An object with no visible pixel keeps its pose but gets detection_index -1; later rows shift up."""
    _, _, gt, _ = clutter_render
    mask = gt.mask.copy()
    mask[1] = False
    hidden = dataclasses.replace(gt, mask=mask, visible_pixels=mask.sum((1, 2)))
    objects = hidden.objects()
    assert len(objects) == len(gt) and objects.detection_index[1] == -1
    np.testing.assert_array_equal(objects.detection_index[[0] + list(range(2, len(gt)))],
                                  np.arange(len(gt) - 1))
    np.testing.assert_array_equal(objects.pose[1], gt.pose_camera[1])
    assert len(hidden.detections()) == len(gt) - 1
    with pytest.raises(InputError, match="'camera' or 'world'"):
        gt.objects('base_link')


def test_range_codes_on_a_rendered_frame(clutter_render):
    """Out-of-range pixels of a real render become +inf (too far) and -inf (too near); the rest is kept."""
    _, frame, gt, _ = clutter_render
    clean = gt.depth_clean
    low, high = np.percentile(clean, [20, 80])
    noise = DepthNoise(min_range=float(low), max_range=float(high))
    coded = range_codes(apply_depth_noise(clean, frame.intrinsics, noise), clean, noise)
    too_far, too_near = clean > high, clean < low
    assert too_far.mean() > 0.1 and too_near.mean() > 0.1
    np.testing.assert_array_equal(np.isposinf(coded), too_far)
    np.testing.assert_array_equal(np.isneginf(coded), too_near)
    inside = ~too_far & ~too_near
    np.testing.assert_array_equal(coded[inside], clean[inside])
    assert coded.dtype == np.float32 and not np.isnan(coded).any()


def test_range_codes_keep_sensor_dropouts_as_nan():
    """Kinect edge dropouts inside the range stay NaN; only true range violations are coded."""
    spec = generate_scene(4, SceneSettings(clutter='clutter'))
    noise = DepthNoise('kinect', seed=1)
    with SimScene(spec, noise) as scene:
        frame, gt = scene.render()
    coded = range_codes(frame.depth, gt.depth_clean, noise)
    low, high = noise.ranges
    finite = np.isfinite(frame.depth)
    np.testing.assert_array_equal(coded[finite], frame.depth[finite])
    dropped = ~finite & (gt.depth_clean >= low) & (gt.depth_clean <= high)
    assert dropped.sum() > 100 and np.isnan(coded[dropped]).all()
    np.testing.assert_array_equal(np.isposinf(coded), ~finite & (gt.depth_clean > high))
    with pytest.raises(InputError, match='one shape'):
        range_codes(frame.depth, gt.depth_clean[:-1], noise)


def test_render_is_reproducible_and_noise_is_seeded():
    spec = generate_scene(8, SceneSettings(clutter='isolated'))
    depths = []
    for _ in range(2):
        with SimScene(spec, DepthNoise('kinect', seed=3)) as scene:
            frame, _ = scene.render()
            depths.append(frame.depth)
    np.testing.assert_array_equal(depths[0], depths[1])


def test_save_artifacts(clutter_render, artifacts_dir):
    spec, frame, gt, _ = clutter_render
    cv2.imwrite(str(artifacts_dir / 'color.png'), frame.color[:, :, ::-1])
    depth = np.nan_to_num(frame.depth, nan=0.0)
    cv2.imwrite(str(artifacts_dir / 'depth.png'), (255 * depth / max(depth.max(), 1e-6)).astype(np.uint8))
    labels = (gt.mask * np.arange(1, len(gt) + 1)[:, None, None]).sum(0)
    cv2.imwrite(str(artifacts_dir / 'instances.png'), (labels * (255 // max(1, len(gt)))).astype(np.uint8))


def _plane_error(noise_model, seed=0):
    spec = generate_scene(2, SceneSettings(clutter='isolated', randomize_appearance=False))
    with SimScene(spec, DepthNoise(noise_model, seed=seed)) as scene:
        frame, gt = scene.render()
    table = np.isfinite(gt.depth_clean) & ~gt.mask.any(0)
    error = frame.depth[table] - gt.depth_clean[table]
    return error, gt.depth_clean[table], frame, gt


def test_kinect_noise_level_quantisation_and_edge_dropouts():
    error, z, frame, gt = _plane_error('kinect')
    finite = np.isfinite(error)
    expected = 0.0012 + 0.0019 * (np.median(z) - 0.4) ** 2
    assert 0.6 * expected < np.std(error[finite]) < 2.0 * expected
    # disparity is quantised to 1/8 pixel
    disparity = frame.intrinsics.fx * 0.075 / frame.depth[np.isfinite(frame.depth)]
    np.testing.assert_allclose(disparity * 8, np.round(disparity * 8), atol=1e-2)
    # holes concentrate at object outlines
    outline = gt.mask.any(0) ^ cv2.erode(gt.mask.any(0).astype(np.uint8), np.ones((5, 5))).astype(bool)
    assert np.isnan(frame.depth[outline]).mean() > 5 * np.isnan(frame.depth[~outline]).mean()


def test_realsense_noise_grows_and_leaves_holes():
    error, z, frame, gt = _plane_error('realsense_d435')
    finite = np.isfinite(error)
    expected = np.median(z) ** 2 * 0.08 / (0.5 * 848 / np.tan(np.deg2rad(43.5)) * 0.05)
    assert 0.5 * expected < np.std(error[finite]) < 2.0 * expected
    assert 0.002 < (~finite).mean() < 0.2


def test_no_noise_is_exact_and_range_limits_apply():
    depth = np.full((4, 6), 2.0, np.float32)
    depth[0, 0] = np.nan
    k = intrinsics_from_fovy(60.0, 6, 4)
    out = apply_depth_noise(depth, k, DepthNoise())
    np.testing.assert_array_equal(out, depth)
    assert np.isnan(apply_depth_noise(depth, k, DepthNoise(max_range=1.5))).all()
    with pytest.raises(InputError, match='float32'):
        apply_depth_noise(depth.astype(np.float64), k, DepthNoise())


@pytest.mark.parametrize('kwargs, field', [({'model': 'kinect2'}, 'model'), ({'scale': -1.0}, 'scale'),
                                           ({'min_range': 2.0, 'max_range': 1.0}, 'range')])
def test_noise_settings_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        DepthNoise(**kwargs)


def test_step_moves_scripted_objects_and_keeps_ground_truth_exact():
    spec = generate_scene(6, SceneSettings(clutter='clutter', moving_objects=1, speed=(0.05, 0.05)))
    velocity = np.asarray(spec.objects[0].velocity)
    assert np.linalg.norm(velocity) == pytest.approx(0.05)
    with SimScene(spec) as scene:
        frame0, gt0 = scene.render()
        stamp = scene.step(0.5)
        frame1, gt1 = scene.render()
    assert stamp == pytest.approx(0.5) and frame1.stamp == pytest.approx(0.5) and frame0.stamp == 0.0
    moved = gt1.pose_world[0][:3, 3] - gt0.pose_world[0][:3, 3]
    np.testing.assert_allclose(moved[:2], velocity[:2] * 0.5, atol=0.006)
    still = np.linalg.norm(gt1.pose_world[1:, :2, 3] - gt0.pose_world[1:, :2, 3], axis=1)
    assert np.median(still) < 0.002   # the others stay put (unless pushed)
    np.testing.assert_allclose(gt1.velocity_world[0][:2], velocity[:2], atol=0.01)
    with pytest.raises(InputError):
        SimScene.step(scene, -1.0)
