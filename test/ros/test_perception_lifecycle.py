"""The perception node walks its lifecycle cleanly: configure, activate, deactivate, cleanup, and rejects bad values."""

import pytest
from node_harness import lifecycle_state
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from robot_vision.ros.perception_node import PerceptionNode

pytestmark = pytest.mark.ros


@pytest.fixture
def node(lifecycle_node):
    return lifecycle_node(PerceptionNode)



def test_lifecycle_transitions(node):
    assert lifecycle_state(node) == 'unconfigured'
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node.pipeline is not None and len(node.outputs) == 13
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'active'
    assert node._worker.is_alive()
    assert node.count_subscribers('camera/color/image_raw') == 1
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node._worker is None and node.count_subscribers('camera/color/image_raw') == 0
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'unconfigured'
    assert node.pipeline is None and not node.outputs
    # and again, from scratch
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS


def test_invalid_parameter_change_is_refused_with_the_reason(node):
    result = node.set_parameters([Parameter('segmentation.max_depth', value=-1.0)])[0]
    assert not result.successful and 'max_depth' in result.reason
    assert node.get_parameter('segmentation.max_depth').value != -1.0
    assert node.set_parameters([Parameter('segmentation.max_depth', value=3.0)])[0].successful


def test_bad_mode_fails_configuration(node):
    node.set_parameters([Parameter('mode', value='stereo')])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(node) == 'unconfigured'
