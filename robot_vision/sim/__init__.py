"""Simulation core: MuJoCo tabletop scenes, a simulated RGB-D camera with ground truth, grasp execution.

Nothing here imports rclpy; the ROS node ``robot_vision.ros.sim_camera_node`` wraps :class:`SimScene`
and publishes its frames and ground truth as a Gazebo camera behind ros_gz_bridge would.
"""

from robot_vision.sim.grasp_execution import GraspExecutionSettings, GraspOutcome, execute_grasp
from robot_vision.sim.noise import DepthNoise, apply_depth_noise
from robot_vision.sim.scene import (CLASS_NAMES, OBJECT_KINDS, SceneSettings, SceneSpec, generate_scene,
                                    look_at)
from robot_vision.sim.simulator import GroundTruth, SimCamera, SimScene, intrinsics_from_fovy

__all__ = ['SceneSettings', 'SceneSpec', 'generate_scene', 'look_at', 'OBJECT_KINDS', 'CLASS_NAMES',
           'DepthNoise', 'apply_depth_noise', 'SimScene', 'SimCamera', 'GroundTruth',
           'intrinsics_from_fovy', 'GraspExecutionSettings', 'GraspOutcome', 'execute_grasp',
           'EvaluationSettings', 'run_evaluation', 'run_tracking_evaluation']


def __getattr__(name: str):
    """Import the evaluation names lazily, so ``python -m robot_vision.sim.evaluate`` runs cleanly."""
    if name in ('EvaluationSettings', 'run_evaluation', 'run_tracking_evaluation'):
        from robot_vision.sim import evaluate
        return getattr(evaluate, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
