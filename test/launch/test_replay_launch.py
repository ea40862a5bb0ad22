"""launch/replay.launch.py with the real launch system: the bundled real bag played into the nodes.

Runs ``ros2 launch robot_vision replay.launch.py`` as the README gives it (defaults: the all-in-one node), with
``nodes:=separate``, and with ``nodes:=pose_estimator,grasp_planner`` behind another detector (a detector_node
started by this test, as robot_vision.launch.py nodes:=detector starts it). Checks in launch_harness.py, and
here: the results carry the recorded stamps and frames of the bag (simulated time from its /clock), and the
tracks are kept in the fixed frame.
"""

import pytest

pytest.importorskip(
    'launch_testing', reason='launch_testing is not installed: it is not on PyPI; the development setup installs '
    'it from ../shared/ros_src when that folder exists (a robot has it from its ROS distro)')

import launch_harness as harness  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import GroupAction, IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402


def _include(name: str, **arguments: str) -> GroupAction:
    source = PythonLaunchDescriptionSource(str(harness.LAUNCH_DIR / name))
    return GroupAction([IncludeLaunchDescription(source, launch_arguments=arguments.items())], scoped=True)


@pytest.mark.launch_test
@launch_testing.parametrize('variant', ['all_in_one', 'separate', 'pose_estimator,grasp_planner'])
def generate_test_description(variant):
    harness.prepare_environment()
    actions = [_include('replay.launch.py', nodes=variant)]
    if variant == 'pose_estimator,grasp_planner':  # the detector they sit behind
        actions.append(_include('robot_vision.launch.py', nodes='detector', use_sim_time='true',
                                input_reliability='reliable'))
    actions.append(launch_testing.actions.ReadyToTest())
    return LaunchDescription(actions), {'nodes': harness.started_nodes(variant), 'namespace': harness.DEFAULT_NAMESPACE,
                                        'input_reliability': 'reliable'}


class TestReplayLaunch(harness.BagChecks):
    pass


@launch_testing.post_shutdown_test()
class TestReplayLaunchShutdown(harness.ShutdownChecks):
    pass
