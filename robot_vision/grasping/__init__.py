"""Model-free parallel-jaw grasp planning from object point clouds (see docs/grasping.md)."""

from robot_vision.grasping.gripper import PANDA_HAND_TCP_OFFSET, GripperModel
from robot_vision.grasping.planner import GraspResult, GraspSettings, plan_grasps, plan_scene_grasps

__all__ = ['PANDA_HAND_TCP_OFFSET', 'GripperModel', 'GraspResult', 'GraspSettings', 'plan_grasps',
           'plan_scene_grasps']
