"""The perception node walks its lifecycle cleanly, rejects bad values, and builds only outputs someone reads."""

import pytest
import rclpy
from builtin_interfaces.msg import Time
from node_harness import lifecycle_state, spin_until
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from vision_msgs.msg import Detection3DArray

from robot_vision.pipeline import FrameResult
from robot_vision.ros.perception_node import PerceptionNode

pytestmark = pytest.mark.ros


@pytest.fixture
def node(lifecycle_node):
    return lifecycle_node(PerceptionNode)



def test_lifecycle_transitions(node):
    assert lifecycle_state(node) == 'unconfigured'
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node.pipeline is not None and len(node.outputs) == 14
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


def test_image_transports_pick_the_subscribed_topics_and_bad_ones_fail_configuration(node, lifecycle_node):
    node.set_parameters([Parameter('color_transport', value='compressedDepth')])  # not a colour transport
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    compressed = lifecycle_node(PerceptionNode, color_transport='compressed', depth_transport='compressedDepth')
    assert compressed.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert compressed.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert compressed.count_subscribers('camera/color/image_raw/compressed') == 1
    assert compressed.count_subscribers('camera/aligned_depth_to_color/image_raw/compressedDepth') == 1
    assert compressed.count_subscribers('camera/color/image_raw') == 0
    types = dict(compressed.get_topic_names_and_types())
    assert types['/camera/aligned_depth_to_color/image_raw/compressedDepth'] == ['sensor_msgs/msg/CompressedImage']
    compressed.trigger_deactivate()


def test_only_outputs_with_a_subscriber_are_built_and_published(node, ros_context):
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    published = []
    for topic, publisher in node.outputs.items():
        publisher.publish = lambda msg, topic=topic, publish=publisher.publish: (published.append(topic), publish(msg))
    listener = Node('listener', context=ros_context)
    got = []
    listener.create_subscription(Detection3DArray, 'objects', got.append, 5)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(listener)
    assert spin_until(executor, lambda: node.outputs['objects'].get_subscription_count() == 1, 10)
    result = FrameResult.empty(12.5, 'camera_optical', 'odom')
    node.publish(result, ('objects', 'object_points', 'object_markers', 'tracked_objects'), Time(sec=12))
    assert spin_until(executor, lambda: bool(got), 10)
    assert published == ['objects'] and got[0].header.stamp.sec == 12
    listener.destroy_node()
