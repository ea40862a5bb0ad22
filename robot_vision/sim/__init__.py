"""Simulation core: MuJoCo tabletop scenes, a simulated RGB-D camera with ground truth, grasp execution.

Nothing here imports rclpy; a ROS camera node can wrap :class:`SimScene` later.
"""

from robot_vision.sim.noise import DepthNoise, apply_depth_noise
from robot_vision.sim.scene import (CLASS_NAMES, OBJECT_KINDS, SceneSettings, SceneSpec, generate_scene,
                                    look_at)
from robot_vision.sim.simulator import GroundTruth, SimCamera, SimScene, intrinsics_from_fovy

__all__ = ['SceneSettings', 'SceneSpec', 'generate_scene', 'look_at', 'OBJECT_KINDS', 'CLASS_NAMES',
           'DepthNoise', 'apply_depth_noise', 'SimScene', 'SimCamera', 'GroundTruth',
           'intrinsics_from_fovy']
