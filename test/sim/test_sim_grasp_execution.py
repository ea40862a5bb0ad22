"""Grasp execution in MuJoCo: hand-made grasps on a single box, in the grasping package's frame convention."""

import numpy as np
import pytest

from robot_vision.errors import ConfigError, InputError
from robot_vision.grasping.gripper import GripperModel
from robot_vision.sim import SceneSettings, SimScene, generate_scene
from robot_vision.sim.grasp_execution import GraspExecutionSettings, execute_grasp


@pytest.fixture(scope='module')
def box_scene():
    spec = generate_scene(1, SceneSettings(clutter='isolated', kinds=('box',), randomize_appearance=False))
    scene = SimScene(spec, render=False)
    yield scene
    scene.close()


def top_down_grasp(scene, index=0, offset=(0.0, 0.0), depth=0.02, across='y'):
    """Grasp frame: z (approach) straight down, x (closing) across the box's ``across`` side."""
    body = scene.object_pose_world(index)
    extent = scene.spec.objects[index].extent
    axis = body[:3, 1] if across == 'y' else body[:3, 0]
    z = np.array([0.0, 0.0, -1.0])
    x = axis - z * (axis @ z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    top = body[2, 3] + extent[2] / 2
    pose[:3, 3] = [body[0, 3] + offset[0], body[1, 3] + offset[1], top - depth]
    width = extent[1] if across == 'y' else extent[0]
    return pose, width


def test_centred_top_down_grasp_lifts_the_box(box_scene):
    before = box_scene.data.qpos.copy()
    pose, width = top_down_grasp(box_scene)
    outcome = execute_grasp(box_scene, pose, width, GripperModel(), target_index=0)
    assert outcome.success and outcome.reason == 'held'
    assert outcome.lifted_height == pytest.approx(0.15, abs=0.02)
    assert outcome.object_index == 0 and outcome.phases['shaken'] == [0]
    assert 0.8 * width < outcome.opening < width + 0.005
    np.testing.assert_array_equal(box_scene.data.qpos, before)   # the scene itself is untouched


def test_grasp_ten_centimetres_off_the_object_fails(box_scene):
    pose, width = top_down_grasp(box_scene, offset=(0.10, 0.0))
    outcome = execute_grasp(box_scene, pose, width, GripperModel())
    assert not outcome.success and outcome.reason == 'empty'
    assert abs(outcome.lifted_height) < 0.005


def test_grasp_across_a_side_wider_than_the_gripper_fails(box_scene):
    extent = box_scene.spec.objects[0].extent
    assert extent[0] > 0.08   # the long side does not fit between the fingers
    pose, width = top_down_grasp(box_scene, across='x')
    outcome = execute_grasp(box_scene, pose, width, GripperModel())
    assert not outcome.success


def test_grasp_pose_inside_the_table_is_a_pregrasp_collision(box_scene):
    pose, width = top_down_grasp(box_scene, offset=(0.2, 0.0))
    pose[2, 3] = box_scene.spec.surface_height - 0.01   # fingertips inside the table top
    outcome = execute_grasp(box_scene, pose, width, GripperModel(),
                            GraspExecutionSettings(pregrasp_distance=0.0))
    assert not outcome.success and outcome.reason == 'pregrasp_collision'


def test_approach_stops_at_the_table(box_scene):
    pose, width = top_down_grasp(box_scene, offset=(0.2, 0.0), depth=0.1)
    outcome = execute_grasp(box_scene, pose, width, GripperModel())
    assert outcome.approach_blocked and not outcome.success


def test_weak_grip_with_low_friction_slips():
    spec = generate_scene(1, SceneSettings(clutter='isolated', kinds=('box',), randomize_appearance=False))
    with SimScene(spec, render=False) as scene:
        pose, width = top_down_grasp(scene)
        outcome = execute_grasp(scene, pose, width, GripperModel(),
                                GraspExecutionSettings(grip_force=2.0, finger_friction=0.05))
        strong = execute_grasp(scene, pose, width, GripperModel(), GraspExecutionSettings(grip_force=2.0))
    assert not outcome.success and outcome.reason in ('slipped_during_lift', 'dropped_during_shake')
    assert strong.success   # the same squeeze holds with grippy (mu 1.2) finger pads


def test_invalid_input_raises(box_scene):
    pose, width = top_down_grasp(box_scene)
    with pytest.raises(InputError, match='4, 4'):
        execute_grasp(box_scene, pose[:3], width)
    with pytest.raises(InputError, match='orthonormal'):
        execute_grasp(box_scene, pose * 2, width)
    with pytest.raises(InputError, match='target_index'):
        execute_grasp(box_scene, pose, width, target_index=5)
    with pytest.raises(ConfigError, match='grip_force'):
        GraspExecutionSettings(grip_force=-1.0)
