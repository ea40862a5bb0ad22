"""The detector node as users run it (a real executable over DDS fed a real frame), and its lifecycle."""

import dataclasses
import functools
import time

import numpy as np
import pytest
import rclpy
from node_harness import (MILK_SETTINGS, RELIABLE, FeedNode, Recorder, lifecycle_state, milk_frame, spin_until,
                          start_node, stop)
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from robot_vision.detection import detections_from_objects
from robot_vision.perception3d import segment_scene
from robot_vision.pipeline import Pipeline, PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.detector_node import DetectorNode
from robot_vision.ros.node_base import LATCHED

pytestmark = pytest.mark.ros

COLOR, DEPTH = 'camera/color/image_raw', 'camera/aligned_depth_to_color/image_raw'
def run_detector(context, frame, topics, *params, frames=2):
    """Start detector_node with ``params``, feed ``frame`` until ``frames`` sets of ``topics`` matched.

    Returns (recorder, late LabelInfo or None, feed-side subscriber counts {topic: n}, node log).
    """
    process = start_node('detector_node', *RELIABLE, *params)
    feed = FeedNode(context, frame, ReliabilityPolicy.RELIABLE, camera_to_fixed=frame.camera_to_fixed)
    recorder = Recorder(context, topics)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(feed.node)
    executor.add_node(recorder.node)
    label_info = []
    try:
        assert feed.wait_for_nodes(executor, 1, (COLOR, DEPTH)), 'the node never subscribed'
        subscribers = {t: feed.node.count_subscribers(t) for t in (COLOR, DEPTH)}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(recorder.got[next(iter(topics))]) < frames:
            feed.publish()
            spin_until(executor, lambda: False, 0.4)
        spin_until(executor, lambda: recorder.latest_matching(*topics) is not None, 3)
        # A subscriber that joins late still gets the latched class names.
        late = Node('late_listener', context=context)
        late.create_subscription(LabelInfo, 'label_info', label_info.append, LATCHED)
        executor.add_node(late)
        spin_until(executor, lambda: bool(label_info), 10)
    finally:
        log = stop(process)
    return recorder, (label_info[0] if label_info else None), subscribers, log


@pytest.mark.parametrize('mode', ['rgbd', 'depth'])
def test_depth_backend_detections_and_labels_match_the_core(ros_context, shared_data, mode):
    frame = milk_frame(shared_data)
    # In depth mode the node gets no colour, and the segmentation cuts with depth alone.
    seen = frame if mode == 'rgbd' else dataclasses.replace(frame, color=None)
    core = detections_from_objects(segment_scene(seen, MILK_SETTINGS.segmentation).objects)
    topics = {'detections': Detection2DArray, 'instance_labels': Image}
    if mode == 'rgbd':
        topics['detections_overlay'] = Image
    recorder, label_info, subscribers, log = run_detector(ros_context, frame, topics, '-p', f'mode:={mode}')
    matched = recorder.latest_matching(*topics)
    assert matched is not None, log[-3000:]
    assert subscribers == {COLOR: int(mode == 'rgbd'), DEPTH: 1}
    assert 'no transform' not in log  # the floor prior came from TF
    msg, labels_msg = matched[:2]
    assert msg.header.frame_id == frame.frame_id
    # The node's detections are the core's depth segmentation of the same frame, row for row.
    detections = cv.msg_to_detections(msg)
    assert len(detections) == len(core) >= 3
    assert np.abs(detections.xyxy - core.xyxy).max() <= 1.0
    assert np.all(detections.class_id == -1)
    # Instance labels: pixel values are the Detection2D ids and each id's pixels are the core mask.
    labels = cv.image_to_numpy(labels_msg)
    assert labels_msg.encoding == 'mono16' and labels.shape == frame.depth.shape
    ids = [int(d.id) for d in msg.detections]
    assert set(np.unique(labels)) == {0, *ids}
    for i, det_id in enumerate(ids):
        assert np.array_equal(labels == det_id, core.mask[i]), f'mask of detection {det_id}'
    assert label_info is not None and label_info.class_map == []  # class-agnostic: no names
    if mode == 'rgbd':
        overlay = matched[2]
        drawn = cv.image_to_numpy(overlay)
        assert overlay.encoding == 'rgb8' and drawn.shape == frame.color.shape
        assert np.any(drawn != frame.color)
    else:
        assert not recorder.got.get('detections_overlay')


def test_model_backend_detects_on_colour_like_the_core(ros_context, shared_data, tmp_path):
    """A real (untrained, exported at test time) ONNX segmentation model: the node equals the core detector."""
    from robot_vision.detection.testing_models import ColourBoxNet, export_onnx, ultralytics_metadata
    names = ['red', 'green', 'blue']
    model = export_onnx(ColourBoxNet('detect', nm=4), tmp_path / 'colour_boxes.onnx', (1, 3, 480, 640),
                        ultralytics_metadata(names, (480, 640), 'segment'))
    frame = milk_frame(shared_data)
    settings = PipelineSettings.from_dict({'detector': {'backend': 'onnx', 'model_path': str(model)}})
    core, _, _ = Pipeline(settings).detect(frame, [])
    topics = {'detections': Detection2DArray, 'instance_labels': Image, 'detections_overlay': Image}
    recorder, label_info, subscribers, log = run_detector(
        ros_context, frame, topics, '-p', 'detector.backend:=onnx', '-p', f'detector.model_path:={model}', frames=1)
    matched = recorder.latest_matching(*topics)
    assert matched is not None, log[-3000:]
    assert subscribers == {COLOR: 1, DEPTH: 0} and 'detects on colour only' in log
    detections = cv.msg_to_detections(matched[0])
    assert len(detections) == len(core) == 3
    assert np.abs(detections.xyxy - core.xyxy).max() <= 1.0
    assert detections.class_id.tolist() == core.class_id.tolist()
    assert np.allclose(detections.confidence, core.confidence)
    assert cv.label_info_to_names(label_info) == dict(enumerate(names))
    # Overlapping masks: each id's pixels lie in its own mask (smaller instances are painted on top).
    labels = cv.image_to_numpy(matched[1])
    ids = [int(d.id) for d in matched[0].detections]
    assert set(np.unique(labels)) <= {0, *ids} and np.count_nonzero(labels)
    for i, det_id in enumerate(ids):
        assert not np.any((labels == det_id) & ~core.mask[i])


# ----------------------------------------------------------------------------- lifecycle
@pytest.fixture
def make_node(lifecycle_node):
    return functools.partial(lifecycle_node, DetectorNode)



@pytest.mark.parametrize('mode, subscribed', [('rgbd', (1, 1)), ('depth', (0, 1))])
def test_lifecycle_transitions(make_node, mode, subscribed):
    node = make_node(mode=mode)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node.pipeline is not None and sorted(node.outputs) == sorted(DetectorNode.OUTPUTS)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'active'
    assert (node.count_subscribers(COLOR), node.count_subscribers(DEPTH)) == subscribed
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node.count_subscribers(COLOR) == node.count_subscribers(DEPTH) == 0
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'unconfigured'
    assert node.pipeline is None and not node.outputs
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS


@pytest.mark.parametrize('params, message', [
    ({'mode': 'color'}, "mode 'color' subscribes no depth image, but detector.backend 'depth' segments depth"),
    ({'mode': 'depth', 'detector.backend': 'onnx', 'detector.model_path': 'model.onnx'},
     "mode 'depth' subscribes no colour image"),
    ({'detector.backend': 'onnx', 'detector.model_path': '/nonexistent/yolo.onnx'}, '/nonexistent/yolo.onnx'),
    ({'mode': 'stereo'}, "mode: expected one of ['rgbd', 'depth', 'color']"),
])
def test_bad_configuration_fails_with_the_reason(make_node, capfd, params, message):
    node = make_node(**params)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE and lifecycle_state(node) == 'unconfigured'
    log = capfd.readouterr().err
    assert 'configuration failed' in log and message in log, log
