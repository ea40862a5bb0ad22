"""Scene generation: reproducibility, clutter levels, placement, settings validation, YCB meshes."""

import numpy as np
import pytest

from robot_vision.errors import ConfigError
from robot_vision.sim import SceneSettings, SimScene, generate_scene
from robot_vision.sim.scene import CLASS_NAMES, look_at, ycb_hull


def test_same_seed_gives_identical_scene_and_mjcf():
    a = generate_scene(11, SceneSettings())
    b = generate_scene(11, SceneSettings())
    c = generate_scene(12, SceneSettings())
    assert a.to_mjcf() == b.to_mjcf()
    assert a.to_mjcf() != c.to_mjcf()


@pytest.mark.parametrize('clutter, low, high', [('isolated', 1, 1), ('clutter', 4, 8), ('dense', 8, 15)])
def test_clutter_levels_set_the_object_count(clutter, low, high):
    counts = [len(generate_scene(seed, SceneSettings(clutter=clutter)).objects) for seed in range(12)]
    assert min(counts) >= low and max(counts) <= high
    if clutter == 'clutter':
        assert len(set(counts)) > 1


def test_objects_do_not_overlap_and_lie_on_the_table():
    for seed in range(8):
        spec = generate_scene(seed, SceneSettings(clutter='clutter'))
        centres = np.array([o.pose[:2, 3] for o in spec.objects])
        radii = np.array([np.hypot(*o.extent[:2]) / 2 if o.kind != 'capsule' else np.hypot(o.extent[0], o.extent[2]) / 2
                          for o in spec.objects])
        for i in range(len(centres)):
            for j in range(i):
                assert np.linalg.norm(centres[i] - centres[j]) >= radii[i] + radii[j]
        assert np.all(np.abs(centres) < 0.45)
        assert all(o.pose[2, 3] > spec.surface_height for o in spec.objects)
        assert all(0 <= o.class_id < len(CLASS_NAMES) for o in spec.objects)


def test_dense_piles_touch_and_stack():
    stacked = touching = 0
    for seed in range(6):
        spec = generate_scene(seed, SceneSettings(clutter='dense'))
        centres = np.array([o.pose[:2, 3] for o in spec.objects])
        radii = np.array([np.hypot(*o.extent[:2]) / 2 for o in spec.objects])
        gaps = [np.linalg.norm(centres[i] - centres[j]) - radii[i] - radii[j]
                for i in range(len(centres)) for j in range(i)]
        touching += sum(g < 0.005 for g in gaps)
        # objects dropped onto the pile start above the height every object on the table starts at
        lowest = min(o.pose[2, 3] - o.extent[2] / 2 for o in spec.objects)
        stacked += sum(o.pose[2, 3] - o.extent[2] / 2 > lowest + 0.03 for o in spec.objects)
        assert not spec.notes  # no object was left out for want of space
    assert touching >= 6 and stacked >= 3


def test_hard_views_reach_top_down_and_far():
    settings = SceneSettings().with_views('hard')
    assert settings.camera_distance == (0.4, 2.0) and settings.camera_elevation_deg == (45.0, 90.0)
    poses = [generate_scene(seed, settings).camera.pose for seed in range(40)]
    assert all(np.all(np.isfinite(p)) for p in poses)
    assert min(p[2, 2] for p in poses) < -0.97  # nearly straight down
    assert max(np.linalg.norm(p[:3, 3]) for p in poses) > 1.9
    with pytest.raises(ConfigError, match='views'):
        SceneSettings().with_views('sideways')


def test_camera_distance_and_orientation_follow_the_settings():
    settings = SceneSettings(camera_distance=(0.5, 1.0))
    for seed in range(10):
        spec = generate_scene(seed, settings)
        pose = spec.camera.pose
        np.testing.assert_allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-9)
        assert np.linalg.det(pose[:3, :3]) > 0
        # looking down at the table: optical z points below the horizon, image y points "down"
        assert pose[2, 2] < -0.5 and pose[2, 1] < 0
        to_table = np.array([0.0, 0.0, spec.surface_height]) - pose[:3, 3]
        assert 0.45 < np.linalg.norm(to_table) < 1.1


def test_look_at_builds_an_optical_frame():
    pose = look_at(np.array([1.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0]))
    np.testing.assert_allclose(pose[:3, 2], np.array([-1.0, 0.0, -1.0]) / np.sqrt(2))
    np.testing.assert_allclose(pose[:3, 0], [0.0, 1.0, 0.0], atol=1e-12)   # facing -x, right is +y
    assert pose[2, 1] < 0                                                   # y down


def test_floor_surface_and_fixed_appearance():
    spec = generate_scene(3, SceneSettings(surface='floor', randomize_appearance=False, clutter='isolated'))
    assert spec.surface_height == 0.0
    xml = spec.to_mjcf()
    assert 'table_top' not in xml and 'name="floor"' in xml


@pytest.mark.parametrize('field, value', [
    ('clutter', 'heap'), ('surface', 'shelf'), ('kinds', ('box', 'torus')), ('kinds', ()),
    ('camera_distance', (1.0, 0.5)), ('fovy_deg', 0.0), ('width', 8), ('num_objects', 40),
    ('camera_elevation_deg', (0.0, 95.0)), ('table_size', (0.05, 1.0)),
])
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field.split('_')[0]):
        SceneSettings(**{field: value})


def test_generate_scene_rejects_wrong_settings_type():
    with pytest.raises(ConfigError, match='SceneSettings'):
        generate_scene(0, {'clutter': 'isolated'})


def test_ycb_hull_is_closed_and_outward(shared_data):
    vertices, faces = ycb_hull('006_mustard_bottle')
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    volume = np.einsum('ij,ij->i', a, np.cross(b, c)).sum() / 6.0   # positive for outward winding
    extent = vertices.max(0) - vertices.min(0)
    assert 0.3 * np.prod(extent) < volume < np.prod(extent)
    np.testing.assert_allclose((vertices.max(0) + vertices.min(0)) / 2, 0.0, atol=1e-9)


def test_mesh_objects_compile_and_settle(shared_data):
    spec = generate_scene(5, SceneSettings(kinds=('mesh',), clutter='clutter'))
    assert all(o.kind == 'mesh' and o.class_name in CLASS_NAMES for o in spec.objects)
    scene = SimScene(spec, render=False)
    heights = [scene.object_pose_world(i)[2, 3] for i in range(len(spec.objects))]
    assert min(heights) > spec.surface_height   # resting on the table, not fallen through
    assert np.allclose(scene.data.qvel, 0.0)


def test_sim_core_does_not_import_ros():
    import subprocess
    import sys
    code = ('import sys, robot_vision.sim, robot_vision.sim.evaluate, robot_vision.sim.grasp_execution; '
            'bad = [m for m in sys.modules if m == "rclpy" or m.endswith("_msgs")]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def _straight_down(kind, seed):
    """One ``kind`` object 0.5 m straight below the camera: (its spec, the frame, gt, its pose, its centre's pixel)."""
    spec = generate_scene(seed, SceneSettings(kinds=(kind,), clutter='isolated', camera_distance=(0.5, 0.5),
                                              camera_elevation_deg=(90.0, 90.0), randomize_appearance=False))
    obj = spec.objects[0]
    assert obj.kind == obj.class_name == kind and CLASS_NAMES[obj.class_id] == kind
    scene = SimScene(spec)
    frame, gt = scene.render()
    pose = scene.object_pose_world(0)
    assert abs(pose[2, 3] - (spec.surface_height + obj.geom_size[1])) < 0.005 and pose[2, 2] > 0.99  # upright
    centre = np.linalg.inv(spec.camera.pose) @ np.r_[pose[:3, 3], 1.0]
    k = frame.intrinsics
    pixel = int(round(k.fx * centre[0] / centre[2] + k.cx)), int(round(k.fy * centre[1] / centre[2] + k.cy))
    return spec, frame, gt, centre, pixel


def test_cups_are_open_hollow_and_upright():
    # Straight down onto one cup: at its centre the camera sees the inside's floor (the cup's base,
    # CUP_BASE thick), not a lid at the rim; cups come only when asked for.
    from robot_vision.sim.objects import CUP_BASE, DEFAULT_KINDS
    assert 'cup' not in DEFAULT_KINDS and 'cup' not in {o.kind for o in generate_scene(3, SceneSettings()).objects}
    spec, frame, gt, _, (u, v) = _straight_down('cup', 4)
    seen = spec.camera.pose[2, 3] - frame.depth[v - 2:v + 3, u - 2:u + 3].mean()  # world height at the centre
    assert abs(seen - (spec.surface_height + CUP_BASE)) < 0.005
    assert gt.mask[0][v, u]  # the inside is part of the cup's ground-truth mask


def test_bowls_are_open_upright_and_flare_to_a_scalloped_rim():
    # Straight down onto one bowl: the inside's floor at its centre; the rim (the mask's outline) wider
    # than the base, its height varying round the bowl (scallops).
    from robot_vision.sim.objects import BOWL_BASE_SHARE, CUP_BASE, DEFAULT_KINDS
    assert 'bowl' not in DEFAULT_KINDS
    spec, frame, gt, centre, (u, v) = _straight_down('bowl', 2)
    radius, half_height, _ = spec.objects[0].geom_size
    height = spec.camera.pose[2, 3] - frame.depth  # world height of what each pixel sees (looking straight down)
    assert abs(height[v - 2:v + 3, u - 2:u + 3].mean() - (spec.surface_height + CUP_BASE)) < 0.005
    assert gt.mask[0][v, u]
    outline = gt.mask[0] & ~np.roll(gt.mask[0], 1, 0) | gt.mask[0] & ~np.roll(gt.mask[0], -1, 0)
    ys, xs = np.nonzero(outline)
    reach = np.median(np.hypot(xs - u, ys - v)) * (centre[2] - half_height) / frame.intrinsics.fx  # at the rim's depth
    assert abs(reach - radius) < 0.005 and reach > BOWL_BASE_SHARE * radius + 0.01
    rim = height[outline & (height > spec.surface_height + half_height)]
    assert 0.004 < np.percentile(rim, 95) - np.percentile(rim, 5) < 0.02
