"""Rosbag replay analysis: run the pipeline over recorded bags, write result bags and a visual report.

See docs/replay.md. The package imports without ROS; a replay loads rclpy's serializer and the
message packages when it starts (:mod:`robot_vision.ros.bag_codec`).
"""

from robot_vision.replay.compare import compare_runs
from robot_vision.replay.runner import ReplayRun, ReplaySettings, load_config, replay, select_topics

__all__ = ['ReplayRun', 'ReplaySettings', 'compare_runs', 'load_config', 'replay', 'select_topics']
