"""The perception node walks its lifecycle cleanly, rejects bad values, and builds only outputs someone reads."""

import pytest
import rclpy
from builtin_interfaces.msg import Time
from node_harness import lifecycle_state, spin_until
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from vision_msgs.msg import Detection3DArray

from robot_vision.pipeline import FrameResult
from robot_vision.ros.node_base import spin
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


INVALID = [('mode', 'stereo', "expected one of ['rgbd', 'depth', 'color']"),
           ('grasp_processes', 1000, 'expected an integer from 0 to 16'),
           ('sync_slop_s', -1.0, 'expected a number >= 0'),
           ('input_depth', -5, 'expected an integer from 1 to 10000'),
           ('depth_scale', -0.001, 'expected a number >= 0'),
           ('tf_timeout_s', -5.0, 'expected a number >= 0'),
           ('input_timeout_s', float('nan'), 'expected a number > 0'),
           ('detector.backend', 'bogus', "detector.backend: expected one of ['depth', 'onnx', 'torchscript']"),
           ('segmentation.max_depth', 'far', 'expected float')]


@pytest.mark.parametrize('name, value, reason', INVALID, ids=[case[0] for case in INVALID])
def test_invalid_values_are_refused_with_the_reason_and_configure_still_works(node, name, value, reason):
    before = node.get_parameter(name).value
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful and reason in result.reason and name in result.reason
    assert node.get_parameter(name).value == before
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS


@pytest.mark.parametrize('name, value, reason', INVALID[:7], ids=[case[0] for case in INVALID[:7]])
def test_invalid_values_from_a_parameter_file_fail_configuration_with_the_reason(lifecycle_node, name, value,
                                                                                 reason):
    node = lifecycle_node(PerceptionNode, **{name: value})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(node) == 'unconfigured'


def test_integers_are_accepted_where_floats_are_declared(lifecycle_node):
    node = lifecycle_node(PerceptionNode, **{'segmentation.max_depth': 2, 'sync_slop_s': 1, 'grasp_processes': 0})
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.settings.segmentation.max_depth == 2 and node.params['sync_slop_s'] == 1
    assert node.set_parameters([Parameter('segmentation.max_depth', value=3)])[0].successful


def test_undeclared_name_is_refused_with_a_did_you_mean(node):
    result = node.set_parameters_atomically([Parameter('segmentation.max_deptj', value=1.0)])
    assert not result.successful
    assert "unknown parameter 'segmentation.max_deptj' (did you mean 'segmentation.max_depth'?)" in result.reason


def test_runtime_changes_apply_at_the_next_frame_or_need_a_reconfigure(lifecycle_node):
    node = lifecycle_node(PerceptionNode, grasp_processes=0)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    seen = []
    node.process = lambda msgs: seen.append((node.pipeline.settings.segmentation.max_depth,
                                             node.params['tf_timeout_s']))
    assert node.set_parameters([Parameter('segmentation.max_depth', value=0.3),
                                Parameter('tf_timeout_s', value=0.2)]) == [SetParametersResult(successful=True)] * 2
    node._process_set({})  # the worker's next set
    assert seen == [(0.3, 0.2)]
    for name, value in (('mode', 'depth'), ('detector.backend', 'onnx'), ('grasp_processes', 1),
                        ('tracking.process_noise', 0.2), ('input_reliability', 'reliable')):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and f'{name}: needs reconfigure' in result.reason, result.reason
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.set_parameters([Parameter('mode', value='depth')])[0].successful  # unconfigured: read at configure
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and node.params['mode'] == 'depth'


def test_image_transports_pick_the_subscribed_topics_and_bad_ones_fail_configuration(node, lifecycle_node):
    refused = node.set_parameters([Parameter('color_transport', value='compressedDepth')])[0]  # not for colour
    assert not refused.successful and "color_transport: expected one of ['raw', 'compressed']" in refused.reason
    from_file = lifecycle_node(PerceptionNode, color_transport='compressedDepth')
    assert from_file.trigger_configure() == TransitionCallbackReturn.FAILURE
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


def test_an_exception_in_a_callback_is_logged_and_the_spin_goes_on(node, ros_context, capfd):
    calls = []

    def flaky():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError('a bug in a callback')
        if len(calls) == 3:
            ros_context.try_shutdown()  # as Ctrl-C does: the spin ends

    node.create_timer(0.05, flaky)
    spin(node)
    assert calls == [0, 1, 2]
    assert "a callback failed, the node keeps running: RuntimeError('a bug in a callback')" in capfd.readouterr().err
