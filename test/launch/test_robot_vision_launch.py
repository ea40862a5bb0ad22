"""launch/robot_vision.launch.py with the real launch system, next to a camera: the bundled real bag played live.

Runs the launch file with its default arguments (the all-in-one node, best-effort camera inputs, wall time, as
``ros2 launch robot_vision robot_vision.launch.py camera_namespace:=/camera`` on a robot), and with the separate
nodes in a namespace with grasps in base_link (``nodes:=separate namespace:=perception target_frame:=base_link``).
The "camera" is ``robot-vision play`` of the bundled real RGB-D bag (recorded stamps, no /clock use). Checks in
launch_harness.py (LaunchChecks and BagChecks).
"""

import pytest

pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed: it is not on PyPI; the development setup installs '
    'it from ../shared/ros_src when that folder exists (a robot has it from its ROS distro)')

import launch_harness as harness  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import ExecuteProcess, IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

VARIANTS = {'defaults': {}, 'separate_in_namespace': {'nodes': 'separate', 'namespace': 'perception',
                                                      'target_frame': 'base_link'}}


@pytest.mark.launch_test
@launch_testing.parametrize('variant', list(VARIANTS))
def generate_test_description(variant):
    harness.prepare_environment()
    arguments = VARIANTS[variant]
    nodes = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(harness.LAUNCH_DIR / 'robot_vision.launch.py')),
                                     launch_arguments=arguments.items())
    camera = ExecuteProcess(cmd=[str(harness.BIN / 'robot-vision'), 'play', 'demo', '--no-clock'], output='screen')
    return LaunchDescription([nodes, camera, launch_testing.actions.ReadyToTest()]), {
        'nodes': harness.started_nodes(arguments.get('nodes', 'all_in_one')),
        'namespace': arguments.get('namespace', harness.DEFAULT_NAMESPACE), 'input_reliability': 'best_effort'}


class TestRobotVisionLaunch(harness.BagChecks):
    pass


@launch_testing.post_shutdown_test()
class TestRobotVisionLaunchShutdown(harness.ShutdownChecks):
    pass
