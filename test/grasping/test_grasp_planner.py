"""Grasp planner on real scenes (PCL milk scene, YCB frames), checked by an independent checker."""

import math

import cv2
import numpy as np
import open3d as o3d
import pytest

from robot_vision import datasets
from robot_vision.camera import deproject
from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import invert_transform
from robot_vision.grasping import (
    PANDA_HAND_TCP_OFFSET,
    GraspSettings,
    GripperModel,
    plan_grasps,
    plan_scene_grasps,
)
from robot_vision.grasping.render import draw_grasps
from robot_vision.perception3d.segmentation import segment_scene
from robot_vision.types import Objects3D

SETTINGS = GraspSettings(top_k=5)
GRIPPER = GripperModel()


# ----------------------------------------------------------------------------------------------
# Independent checker: written from the documented gripper geometry, it shares no code with the
# planner (its own box tests on the raw points, open3d normals instead of the planner's).


def grasp_frame(pose_tcp: np.ndarray, gripper: GripperModel) -> np.ndarray:
    return pose_tcp @ np.linalg.inv(gripper.tcp_offset)


def to_local(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points.astype(np.float64) - frame[:3, 3]) @ frame[:3, :3]


def body_collisions(local: np.ndarray, width: float, g: GripperModel) -> int:
    """Scene points inside either finger (at the pre-grasp opening) or the palm box."""
    half = min(width + g.opening_margin, g.max_opening) / 2
    ax, ay, z = np.abs(local[:, 0]), np.abs(local[:, 1]), local[:, 2]
    finger = (ax >= half) & (ax <= half + g.finger_thickness) & (ay <= g.finger_width / 2) & (
        z >= -g.finger_depth) & (z <= 0)
    palm = (ax <= g.palm_width / 2) & (ay <= g.palm_thickness / 2) & (
        z >= -g.finger_depth - g.palm_depth) & (z <= -g.finger_depth)
    return int(np.sum(finger | palm))


def contact_cosines(local: np.ndarray, normals_local: np.ndarray, width: float, g: GripperModel,
                    band: float):
    """Best |cos(normal, x)| in the -x and in the +x contact patch, and the extent along x."""
    half = min(width + g.opening_margin, g.max_opening) / 2
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    closing = (np.abs(x) < half) & (np.abs(y) <= g.finger_width / 2) & (z >= -g.finger_depth) & (z <= 0)
    if closing.sum() < 2:
        return -1.0, -1.0, 0.0
    xs = x[closing]
    lo, hi = xs.min(), xs.max()
    # Unsigned: at a silhouette the normal is nearly perpendicular to the view ray, so its sign
    # (camera-facing orientation) is arbitrary; a contact at the extreme of the closing region
    # faces outwards whatever the estimate's sign.
    nx = np.abs(normals_local[closing, 0])
    return float(np.max(nx[xs <= lo + band])), float(np.max(nx[xs >= hi - band])), float(hi - lo)


def camera_normals(points: np.ndarray) -> np.ndarray:
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(20))
    cloud.orient_normals_towards_camera_location(np.zeros(3))
    return np.asarray(cloud.normals)


def check_grasps(grasps, scene: np.ndarray, objects_points, gripper: GripperModel, mu: float):
    """Assert every grasp is collision-free, within the opening and antipodal; return count."""
    cone = math.cos(math.atan(mu))
    finite = scene[np.all(np.isfinite(scene), axis=1)]
    normals = {}
    for pose, width, row in zip(grasps.pose, grasps.width, grasps.object_index):
        assert gripper.min_opening <= width <= gripper.max_opening, width
        frame = grasp_frame(pose, gripper)
        assert np.allclose(frame[:3, :3].T @ frame[:3, :3], np.eye(3), atol=1e-9)
        assert body_collisions(to_local(frame, finite), width, gripper) == 0
        obj = objects_points[row]
        obj = obj[np.all(np.isfinite(obj), axis=1)]
        if row not in normals:
            normals[row] = camera_normals(obj)
        local = to_local(frame, obj)
        cos_a, cos_b, extent = contact_cosines(local, normals[row] @ frame[:3, :3], width, gripper, 0.005)
        assert cos_a >= cone and cos_b >= cone, (cos_a, cos_b, cone)
        assert abs(extent - width) < 0.01, (extent, width)
    return len(grasps)


# ----------------------------------------------------------------------------------------------
# Real scenes


def _frames(shared):
    yield 'milk', datasets.load_organized_pcd(shared / 'pcl_kinect' / 'milk_cartoon_all_small_clorox.pcd')
    for index in range(1, 6):
        yield f'ycb{index}', datasets.load_ycb_frame(index, shared / 'ycb_posecnn')


def test_real_scenes_top5_grasps_are_valid(shared_data, artifacts_dir):
    total, objects_with_grasps, summary = 0, 0, []
    for name, frame in _frames(shared_data):
        seg = segment_scene(frame)
        assert seg.ok and len(seg.objects) > 0, (name, seg.status)
        scene = deproject(frame.depth, frame.intrinsics)
        result = plan_scene_grasps(seg.objects, scene, GRIPPER, SETTINGS, support_normal=seg.plane)
        assert result.reason == 'ok' or len(result.grasps) == 0
        grasps = result.grasps
        counts = np.bincount(grasps.object_index, minlength=len(seg.objects))
        assert np.all(counts <= SETTINGS.top_k)
        total += check_grasps(grasps, scene.reshape(-1, 3), seg.objects.points, GRIPPER, SETTINGS.mu)
        objects_with_grasps += int(np.sum(counts > 0))
        summary.append(f'{name}: {len(seg.objects)} objects, {int(np.sum(counts > 0))} with grasps, '
                       f'{len(grasps)} grasps')
        image = frame.color.copy()
        for mask in seg.objects.mask:
            image[mask] = (image[mask] * 0.6 + np.array([0, 0, 90])).astype(np.uint8)
        cv2.imwrite(str(artifacts_dir / f'{name}_grasps.png'),
                    draw_grasps(image, grasps, frame.intrinsics, GRIPPER)[:, :, ::-1])
    (artifacts_dir / 'summary.txt').write_text('\n'.join(summary) + '\n')
    # Real single-view clouds: many objects are wider than 8 cm or show no antipodal surfaces;
    # still, a good number of objects across the six scenes must get certified grasps.
    assert objects_with_grasps >= 5, summary
    assert total >= 8, summary


def _cylinder_scene(radius=0.03, height=0.10, seed=0):
    rng = np.random.default_rng(seed)
    theta, h = rng.uniform(0, 2 * np.pi, 6000), rng.uniform(0, height, 6000)
    side = np.stack([radius * np.cos(theta), 0.3 - h, 0.8 + radius * np.sin(theta)], 1)
    disc = rng.uniform(-1, 1, (3000, 2))
    disc = disc[np.linalg.norm(disc, axis=1) < 1] * radius
    cap = np.stack([disc[:, 0], np.full(len(disc), 0.3 - height), 0.8 + disc[:, 1]], 1)
    obj = np.concatenate([side, cap]).astype(np.float32)
    gx, gz = np.meshgrid(np.linspace(-0.3, 0.3, 200), np.linspace(0.5, 1.1, 200))
    table = np.stack([gx.ravel(), np.full(gx.size, 0.3), gz.ravel()], 1).astype(np.float32)
    return obj, np.concatenate([obj, table]), np.array([0.0, -1.0, 0.0, 0.3])


def test_milk_ground_truth_object(shared_data):
    frame = datasets.load_organized_pcd(shared_data / 'pcl_kinect' / 'milk_cartoon_all_small_clorox.pcd')
    scene = deproject(frame.depth, frame.intrinsics)
    milk = datasets.load_pcd_points(shared_data / 'pcl_kinect' / 'milk.pcd')
    result = plan_grasps(milk, scene, GRIPPER, SETTINGS)
    # The carton (about 9.5 cm square) is wider than the 8 cm Panda opening and only two
    # adjacent faces are seen: whatever is returned must pass the checker, else a reason is given.
    assert result.reason == 'ok' or (len(result.grasps) == 0 and 'no collision-free' in result.reason)
    check_grasps(result.grasps, scene.reshape(-1, 3), [milk], GRIPPER, SETTINGS.mu)


def test_wide_object_needs_a_wide_gripper():
    obj, scene, plane = _cylinder_scene(radius=0.06)
    narrow = plan_grasps(obj, scene, GRIPPER, SETTINGS, support_normal=plane, viewpoint=None)
    assert len(narrow.grasps) == 0 and 'wider than the gripper' in narrow.reason
    wide = GripperModel(max_opening=0.16, palm_width=0.3, finger_depth=0.06)
    result = plan_grasps(obj, scene, wide, SETTINGS, support_normal=plane, viewpoint=None)
    assert result.reason == 'ok', result.reason
    assert np.all(np.abs(result.grasps.width - 0.12) < 0.01)
    for pose, width in zip(result.grasps.pose, result.grasps.width):
        assert body_collisions(to_local(grasp_frame(pose, wide), scene), width, wide) == 0


# ----------------------------------------------------------------------------------------------
# Synthetic full-surface cylinder on a table (camera frame: y down, table at y = 0.3 m)


def test_cylinder_top_down_preferred_and_deterministic():
    obj, scene, plane = _cylinder_scene()
    # Fused full-surface cloud: no single viewpoint, normals point away from the centroid.
    first = plan_grasps(obj, scene, GRIPPER, GraspSettings(seed=3), support_normal=plane, viewpoint=None)
    again = plan_grasps(obj, scene, GRIPPER, GraspSettings(seed=3), support_normal=plane, viewpoint=None)
    assert first.reason == 'ok' and len(first.grasps) >= 3
    np.testing.assert_array_equal(first.grasps.pose, again.grasps.pose)
    np.testing.assert_array_equal(first.grasps.score, again.grasps.score)
    assert np.all(np.diff(first.grasps.score) <= 0)
    assert np.all(np.abs(first.grasps.width - 0.06) < 0.01)
    # The best grasp approaches roughly top-down (grasp z along -up = +y in the camera frame).
    assert first.grasps.pose[0, 1, 2] > math.cos(math.radians(45))
    other = plan_grasps(obj, scene, GRIPPER, GraspSettings(seed=4), support_normal=plane, viewpoint=None)
    assert not np.array_equal(other.grasps.pose, first.grasps.pose)
    # Collision-free against the table too.
    normals = np.zeros_like(obj)
    check_fused = [grasp_frame(p, GRIPPER) for p in first.grasps.pose]
    for frame, width in zip(check_fused, first.grasps.width):
        assert body_collisions(to_local(frame, scene), width, GRIPPER) == 0
    del normals


def test_tcp_offset_is_applied():
    obj, scene, plane = _cylinder_scene()
    panda = GripperModel(tcp_offset=PANDA_HAND_TCP_OFFSET)
    base = plan_grasps(obj, scene, GRIPPER, SETTINGS, support_normal=plane, viewpoint=None)
    moved = plan_grasps(obj, scene, panda, SETTINGS, support_normal=plane, viewpoint=None)
    np.testing.assert_allclose(moved.grasps.pose, base.grasps.pose @ PANDA_HAND_TCP_OFFSET, atol=1e-12)
    # In the Panda TCP frame the fingers close along y.
    closing = base.grasps.pose[:, :3, 0]
    np.testing.assert_allclose(np.abs(np.einsum('ki,ki->k', moved.grasps.pose[:, :3, 1], closing)), 1.0)


def test_scene_grasps_ordering_and_selection():
    obj, scene, plane = _cylinder_scene()
    shifted = obj + np.array([0.15, 0.0, 0.0], np.float32)
    both = np.concatenate([scene, shifted])
    objects = Objects3D(pose=np.tile(np.eye(4), (2, 1, 1)), size=np.ones((2, 3)), centroid=np.zeros((2, 3)),
                        confidence=np.ones(2), class_id=-np.ones(2), detection_index=-np.ones(2),
                        points=[obj, shifted])
    result = plan_scene_grasps(objects, both, GRIPPER, SETTINGS, support_normal=plane, viewpoint=None)
    assert result.reason == 'ok'
    rows = result.grasps.object_index
    assert set(rows.tolist()) == {0, 1}
    assert np.all(np.diff(rows) >= 0)
    for row in (0, 1):
        assert np.all(np.diff(result.grasps.score[rows == row]) <= 0)
    only = plan_scene_grasps(objects, both, GRIPPER, SETTINGS, support_normal=plane, viewpoint=None,
                             object_indices=[1])
    assert set(only.grasps.object_index.tolist()) == {1}
    np.testing.assert_array_equal(only.grasps.pose, result.grasps.pose[rows == 1])
    with pytest.raises(InputError, match='object_indices'):
        plan_scene_grasps(objects, both, object_indices=[2])
    empty = plan_scene_grasps(objects, both, object_indices=[])
    assert len(empty.grasps) == 0 and empty.reason == 'no objects selected'


def test_max_objects_plans_the_best_observed_objects():
    obj, scene, plane = _cylinder_scene()
    # Four cylinders on one table, seen with 3000, 9000, 6000 and 1500 points.
    counts = (3000, 9000, 6000, 1500)
    clouds = [obj[:n] + np.array([0.15 * i - 0.2, 0.0, 0.0], np.float32) for i, n in enumerate(counts)]
    objects = Objects3D(pose=np.tile(np.eye(4), (4, 1, 1)), size=np.full((4, 3), 0.06),
                        centroid=np.stack([c.mean(0) for c in clouds]).astype(np.float64),
                        confidence=np.ones(4), class_id=-np.ones(4), detection_index=-np.ones(4),
                        points=clouds)
    full = np.concatenate([scene[len(obj):]] + clouds)
    settings = GraspSettings(top_k=3, max_objects=2)
    result = plan_scene_grasps(objects, full, GRIPPER, settings, support_normal=plane, viewpoint=None)
    assert result.reason == 'ok', result.reason
    assert result.skipped_objects == [0, 3]
    assert set(result.grasps.object_index.tolist()) == {1, 2}
    every = plan_scene_grasps(objects, full, GRIPPER, GraspSettings(top_k=3, max_objects=0), support_normal=plane,
                              viewpoint=None)
    assert every.skipped_objects == [] and set(every.grasps.object_index.tolist()) == {0, 1, 2, 3}
    for row in (1, 2):  # the selection changes which objects are planned, not their grasps
        np.testing.assert_array_equal(result.grasps.pose[result.grasps.object_index == row],
                                      every.grasps.pose[every.grasps.object_index == row])
    # Within object_indices: the larger of rows 0 and 3.
    within = plan_scene_grasps(objects, full, GRIPPER, GraspSettings(top_k=3, max_objects=1),
                               support_normal=plane, viewpoint=None, object_indices=[3, 0])
    assert within.skipped_objects == [3] and set(within.grasps.object_index.tolist()) == {0}


# ----------------------------------------------------------------------------------------------
# Bad input: an empty result with a reason, never an exception


@pytest.mark.parametrize('name, points, reason', [
    ('empty', np.zeros((0, 3), np.float32), 'empty'),
    ('tiny', np.array([[0.0, 0.0, 0.8], [0.01, 0.0, 0.8], [0.0, 0.01, 0.8]], np.float32), 'too few'),
    ('all_nan', np.full((500, 3), np.nan, np.float32), 'too few'),
    ('planar', np.c_[np.random.default_rng(0).uniform(-0.05, 0.05, (2000, 2)), np.full(2000, 0.8)]
     .astype(np.float32), 'planar'),
    ('wider_than_gripper', _cylinder_scene(radius=0.06)[0], 'wider than the gripper'),
])
def test_bad_input_gives_reason(name, points, reason):
    scene = np.concatenate([points, np.full((10, 3), np.nan, np.float32)])
    result = plan_grasps(points, scene, GRIPPER, SETTINGS, viewpoint=None)
    assert len(result.grasps) == 0
    assert reason in result.reason, result.reason


def test_nan_rows_are_ignored():
    obj, scene, plane = _cylinder_scene()
    noisy = obj.copy()
    noisy[::7] = np.nan
    clean = noisy[np.all(np.isfinite(noisy), axis=1)]
    a = plan_grasps(noisy, scene, GRIPPER, SETTINGS, support_normal=plane, viewpoint=None)
    b = plan_grasps(clean, scene, GRIPPER, SETTINGS, support_normal=plane, viewpoint=None)
    assert a.reason == 'ok'
    np.testing.assert_array_equal(a.grasps.pose, b.grasps.pose)


def test_empty_scene_still_plans_against_the_object():
    obj, _, plane = _cylinder_scene()
    result = plan_grasps(obj, np.zeros((0, 3), np.float32), GRIPPER, SETTINGS, support_normal=plane,
                         viewpoint=None)
    assert result.reason == 'ok'


@pytest.mark.parametrize('kwargs, match', [
    (dict(object_points=np.zeros((10, 2))), 'object_points'),
    (dict(scene_points=np.zeros((4, 4, 4))), 'scene_points'),
    (dict(support_normal=[0.0, 0.0, 0.0]), 'support_normal'),
    (dict(viewpoint=[0.0, np.nan, 0.0]), 'viewpoint'),
])
def test_malformed_arrays_raise_input_error(kwargs, match):
    args = dict(object_points=np.zeros((10, 3)), scene_points=np.zeros((10, 3)))
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        plan_grasps(**args)


# ----------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize('field, value', [
    ('max_opening', -0.1), ('finger_depth', 0.0), ('min_opening', 0.2), ('palm_width', 0.05),
    ('palm_clearance', 0.1), ('tcp_offset', np.zeros((4, 4))), ('tcp_offset', np.eye(3)),
])
def test_gripper_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        GripperModel(**{field: value})


def test_gripper_from_dict():
    offset = {'translation': [0, 0, 0.01], 'rpy': [0, 0, -math.pi / 2]}
    gripper = GripperModel.from_dict({'max_opening': 0.1, 'palm_width': 0.25, 'tcp_offset': offset})
    assert gripper.max_opening == 0.1
    np.testing.assert_allclose(gripper.tcp_offset[:3, :3], PANDA_HAND_TCP_OFFSET[:3, :3], atol=1e-12)
    np.testing.assert_allclose(gripper.tcp_offset[:3, 3], [0, 0, 0.01])
    quat = GripperModel.from_dict({'tcp_offset': {'quaternion': [0, 0, -math.sqrt(0.5), math.sqrt(0.5)]}})
    np.testing.assert_allclose(quat.tcp_offset, PANDA_HAND_TCP_OFFSET, atol=1e-12)
    again = GripperModel.from_dict(gripper.to_dict())
    np.testing.assert_allclose(again.tcp_offset, gripper.tcp_offset)
    with pytest.raises(ConfigError, match='unknown keys'):
        GripperModel.from_dict({'max_openning': 0.1})
    assert np.allclose(invert_transform(PANDA_HAND_TCP_OFFSET) @ PANDA_HAND_TCP_OFFSET, np.eye(4))


@pytest.mark.parametrize('field, value', [
    ('num_candidates', 0), ('mu', 0.0), ('top_k', 1.5), ('nms_distance', -1.0), ('seed', -1),
    ('approach_direction', (0.0, 0.0, 0.0)), ('collision_voxel', 0.5), ('max_approach_deviation_deg', 0.0),
    ('antipodal_weight', float('nan')), ('max_objects', -1), ('max_objects', True),
])
def test_settings_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        GraspSettings(**{field: value})


def test_wrong_types_raise_config_error():
    with pytest.raises(ConfigError, match='gripper'):
        plan_grasps(np.zeros((10, 3)), np.zeros((10, 3)), gripper={'max_opening': 0.08})
    with pytest.raises(ConfigError, match='settings'):
        plan_grasps(np.zeros((10, 3)), np.zeros((10, 3)), settings={'mu': 0.5})
