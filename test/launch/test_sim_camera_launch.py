"""launch/sim_camera.launch.py with the real launch system: the MuJoCo simulated RGB-D camera into the nodes.

This is the simulation this machine can run: ``sim:=true`` of robot_vision.launch.py needs Gazebo and ros_gz,
which a robot's ROS distro has and this machine cannot install. Runs the default arguments (the all-in-one
node) and ``nodes:=separate``; checks in launch_harness.py.
"""

import pytest

pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed: it is not on PyPI; the development setup installs '
    'it from ../shared/ros_src when that folder exists (a robot has it from its ROS distro)')

import launch_harness as harness  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402


@pytest.mark.launch_test
@launch_testing.parametrize('variant', ['all_in_one', 'separate'])
def generate_test_description(variant):
    harness.prepare_environment()
    sim = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(harness.LAUNCH_DIR / 'sim_camera.launch.py')),
                                   launch_arguments={'nodes': variant}.items())
    return LaunchDescription([sim, launch_testing.actions.ReadyToTest()]), {
        'nodes': harness.started_nodes(variant), 'namespace': harness.DEFAULT_NAMESPACE,
        'input_reliability': 'best_effort'}


class TestSimCameraLaunch(harness.LaunchChecks):
    pass


@launch_testing.post_shutdown_test()
class TestSimCameraLaunchShutdown(harness.ShutdownChecks):
    pass
