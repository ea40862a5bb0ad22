"""The pose estimator node behind our detector and behind a foreign detector (real processes), and its lifecycle."""

import functools
import re
import time

import numpy as np
import pytest
import rclpy
from node_harness import (MILK_SETTINGS, RELIABLE, FeedNode, Recorder, lifecycle_state, milk_frame, spin_until,
                          start_node, stop)
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import ReliabilityPolicy
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import PointCloud2
from test_detector_node import DEPTH
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, Detection3DArray, LabelInfo
from vision_msgs.msg import ObjectHypothesisWithPose
from visualization_msgs.msg import MarkerArray

from robot_vision.errors import InputError
from robot_vision.perception3d import objects_from_detections
from robot_vision.pipeline import Pipeline, PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.node_base import LATCHED
from robot_vision.ros.outputs import instance_label_image
from robot_vision.ros.pose_estimator_node import PoseEstimatorNode
from robot_vision.types import Detections

pytestmark = pytest.mark.ros

OUTPUTS = {'objects': Detection3DArray, 'object_points': PointCloud2, 'object_markers': MarkerArray}


def _spin_feeding(executor, publish, done, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        publish()
        spin_until(executor, lambda: False, 0.4)


def test_objects_behind_our_detector_match_the_core(ros_context, shared_data):
    frame = milk_frame(shared_data)
    pipeline = Pipeline(MILK_SETTINGS)
    # The estimator lifts our detector's detections and instance masks: the core's same path on the same frame.
    detections = pipeline.perceive(frame).detections
    core_objects = pipeline.estimate(frame, detections, {}, [], {})
    detector, estimator = start_node('detector_node', *RELIABLE), start_node('pose_estimator_node', *RELIABLE)
    feed = FeedNode(ros_context, frame, ReliabilityPolicy.RELIABLE, camera_to_fixed=frame.camera_to_fixed)
    recorder = Recorder(ros_context, {**OUTPUTS, 'detections': Detection2DArray})
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(feed.node)
    executor.add_node(recorder.node)
    try:
        assert feed.wait_for_nodes(executor, 2, (DEPTH,)), 'the nodes never subscribed'
        _spin_feeding(executor, feed.publish, lambda: len(recorder.got['objects']) >= 2)
        spin_until(executor, lambda: recorder.latest_matching(*OUTPUTS, 'detections') is not None, 3)
    finally:
        log = stop(estimator) + stop(detector)
    matched = recorder.latest_matching(*OUTPUTS, 'detections')
    assert matched is not None, log[-3000:]
    msg, cloud, markers, detections_msg = matched
    assert msg.header.frame_id == frame.frame_id and 'no transform' not in log
    # Same objects as the core pipeline on the same frame; Detection3D.id is the source Detection2D id.
    objects = cv.msg_to_objects(msg)
    assert len(objects) == len(core_objects) >= 3
    assert {d.id for d in msg.detections} <= {d.id for d in detections_msg.detections}
    rows = [int(d.id) - 1 for d in msg.detections]  # our detector: Detection2D id = row + 1
    assert np.abs(objects.position - core_objects.position[rows]).max() <= 0.005
    assert np.allclose(objects.size, core_objects.size[rows], atol=0.005)
    points, _ = cv.cloud_to_points(cloud)
    assert len(points) == sum(len(p) for p in core_objects.points)
    assert len(markers.markers) == 1 + 2 * len(objects)


def _foreign_detections(frame, boxes, class_names, ids):
    """A Detection2DArray as another detector publishes it: boxes only, class names as class_id, own ids."""
    msg = Detection2DArray()
    msg.header.frame_id = frame.frame_id
    for (x1, y1, x2, y2), name, det_id in zip(boxes, class_names, ids):
        bbox = BoundingBox2D(size_x=float(x2 - x1), size_y=float(y2 - y1))
        bbox.center.position.x, bbox.center.position.y = float(x1 + x2) / 2, float(y1 + y2) / 2
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = name, 0.9
        msg.detections.append(Detection2D(bbox=bbox, results=[hyp], id=det_id))
    return msg


def test_foreign_box_detections_with_class_names_and_a_milk_model(ros_context, shared_data):
    frame = milk_frame(shared_data)
    segmented = Pipeline(MILK_SETTINGS).perceive(frame)
    boxes = segmented.detections.xyxy[:3]  # the milk carton and the two bottles in front
    class_names = ['milk', 'bleach', 'detergent']
    ids = ['carton', 'bottle-a', 'bottle-b']
    names = {0: 'detergent', 1: 'milk', 2: 'bleach'}  # the foreign detector's LabelInfo
    model = shared_data / 'pcl_kinect/milk.pcd'  # an exact crop of this scene: its true pose is the identity
    settings = PipelineSettings.from_dict({'segmentation': {'max_depth': 2.0}, 'object_models': {'milk': str(model)}})
    classes = np.array([1, 2, 0], np.int32)
    expected = objects_from_detections(frame, Detections(xyxy=boxes, confidence=np.full(3, 0.9, np.float32),
                                                         class_id=classes), settings.segmentation)
    expected = Pipeline(settings).refine(expected, names, [])
    estimator = start_node('pose_estimator_node', *RELIABLE, '-p', 'use_instance_labels:=false',
                           '-p', f'object_models:=["milk={model}"]')
    feed = FeedNode(ros_context, frame, ReliabilityPolicy.RELIABLE, camera_to_fixed=frame.camera_to_fixed)
    detections = feed.node.create_publisher(Detection2DArray, 'detections', 10)
    label_info = feed.node.create_publisher(LabelInfo, 'label_info', LATCHED)
    label_info.publish(cv.label_info_msg(names))
    recorder = Recorder(ros_context, {**OUTPUTS, '/diagnostics': DiagnosticArray})
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(feed.node)
    executor.add_node(recorder.node)

    def publish(shift=0):
        """Depth, camera info and detections of one stamp (boxes moved right by ``shift`` px)."""
        stamp = feed.node.get_clock().now().to_msg()
        feed.info.publish(cv.intrinsics_to_camera_info(frame.intrinsics, frame.frame_id, stamp))
        feed.depth.publish(cv.numpy_to_image(feed.raw_depth, '16UC1', frame.frame_id, stamp))
        msg = _foreign_detections(frame, boxes + [shift, 0, shift, 0], class_names, ids)
        msg.header.stamp = stamp
        detections.publish(msg)

    shifted = ', '.join(f'{v:.1f}' for v in np.round(boxes[0] + [600, 0, 600, 0]))
    message = f'detection 0 box [{shifted}] lies outside the 640x480 depth image'

    def diagnosed():
        return any(message in kv.value
                   for d in recorder.got['/diagnostics'] for s in d.status for kv in s.values if kv.key == 'frame')
    try:
        assert spin_until(executor, lambda: feed.node.count_subscribers('detections') == 1, 60), 'never subscribed'
        # Boxes of a detector that runs on a larger image: a clear error, and the node keeps running ...
        _spin_feeding(executor, lambda: publish(600), diagnosed)
        # ... and processes the good sets that follow.
        _spin_feeding(executor, publish, lambda: len(recorder.got['objects']) >= 2)
        spin_until(executor, lambda: recorder.latest_matching(*OUTPUTS) is not None, 3)
    finally:
        log = stop(estimator)
    assert diagnosed(), log[-3000:]  # the node log has it too, throttled to one error per 5 s
    matched = recorder.latest_matching(*OUTPUTS)
    assert matched is not None, log[-3000:]
    msg = matched[0]
    assert [d.id for d in msg.detections] == ids
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == ['1', '2', '0']
    objects = cv.msg_to_objects(msg)
    assert np.abs(objects.position - expected.position).max() <= 0.005
    # The milk carton's pose was refined by registering its model: the true pose, the identity.
    assert np.linalg.norm(objects.pose[0][:3, 3]) <= 0.005
    assert np.linalg.norm(objects.pose[1][:3, 3] - expected.pose[1][:3, 3]) <= 0.005  # measured pose kept


# ----------------------------------------------------------------------------- lifecycle and bad input
@pytest.fixture
def make_node(lifecycle_node):
    return functools.partial(lifecycle_node, PoseEstimatorNode)



@pytest.mark.parametrize('use_labels', [True, False])
def test_lifecycle_transitions(make_node, use_labels):
    node = make_node(use_instance_labels=use_labels)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert sorted(node.outputs) == sorted(PoseEstimatorNode.OUTPUTS)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'active'
    topics = (DEPTH, 'detections', 'instance_labels', 'label_info')
    assert [node.count_subscribers(t) for t in topics] == [1, 1, int(use_labels), 1]
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert [node.count_subscribers(t) for t in topics] == [0, 0, 0, 0]
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'unconfigured'
    assert node.pipeline is None and not node.outputs


def test_missing_object_model_fails_configuration(make_node, capfd):
    node = make_node(object_models=['milk=/nonexistent/milk.pcd'])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert 'object model file not found: /nonexistent/milk.pcd' in capfd.readouterr().err


def test_bad_input_is_a_clear_error_and_good_input_still_works(make_node, shared_data):
    frame = milk_frame(shared_data)
    node = make_node(**{'segmentation.max_depth': 2.0})
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    node.camera_info = cv.intrinsics_to_camera_info(frame.intrinsics, frame.frame_id)
    segmented = Pipeline(MILK_SETTINGS).perceive(frame)
    raw = np.round(np.nan_to_num(frame.depth) * 1000).astype(np.uint16)
    depth = cv.numpy_to_image(raw, '16UC1', frame.frame_id)
    detections = cv.detections_to_msg(segmented.detections, frame.frame_id, 0.0)
    labels = cv.numpy_to_image(instance_label_image(segmented.detections, frame.depth.shape), 'mono16')
    bad = [({'labels': cv.numpy_to_image(raw[:, :, None].repeat(3, 2).astype(np.uint8), 'rgb8')},
            "instance-label image encoding: expected one of ['mono16', '16UC1'] (pixel = Detection2D id), "
            "got 'rgb8'"),
           ({'labels': cv.numpy_to_image(raw[::2, ::2], 'mono16')},
            'instance-label image is 320x240 but depth is 640x480'),
           ({'detections': cv.detections_to_msg(Detections(
               xyxy=segmented.detections.xyxy * 2, confidence=segmented.detections.confidence,
               class_id=segmented.detections.class_id), frame.frame_id, 0.0)}, 'lies outside the 640x480 depth image')]
    good = {'depth': depth, 'detections': detections, 'labels': labels}
    for change, message in bad:
        with pytest.raises(InputError, match=re.escape(message)):
            node.process({**good, **change})
    node.process(good)  # the same node still processes a good set
