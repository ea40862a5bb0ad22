"""The node parameters of every robot_vision node that are not pipeline settings: name -> (default, description).

Pipeline settings (``segmentation.max_depth``, ``gripper.max_opening``, ...) are declared on every
node by :mod:`robot_vision.ros.params`; the tables here add each node's topics, QoS and
behaviour. One parameter file (``config/robot_vision.yaml``, section ``/**``) configures all nodes:
a key that belongs to another robot_vision node is accepted and ignored, while a key no node
knows is a configuration error. This module imports no ROS package (the README tables and the
launch-file tests read it).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

Table = Dict[str, Tuple[Any, str]]

#: Most grasp worker processes the perception node starts.
MAX_GRASP_PROCESSES = 16

#: Every node: start-up, input QoS, synchronisation, TF and diagnostics.
COMMON: Table = {
    'autostart': (True, 'configure and activate on start-up (no lifecycle manager needed)'),
    'input_reliability': ('best_effort', "QoS reliability of the synchronised inputs: 'best_effort' (accepts "
                                         "every publisher) or 'reliable'"),
    'input_depth': (5, 'QoS history depth of the synchronised inputs'),
    'sync_slop_s': (0.03, 'approximate-time slop between the synchronised inputs (s)'),
    'sync_queue_size': (10, 'approximate-time synchroniser queue per input'),
    'tf_timeout_s': (0.05, 'how long to wait for a transform at a message stamp (s)'),
    'input_timeout_s': (3.0, 'warn in diagnostics when an input is silent this long (s)'),
}

#: Nodes that read camera images.
_DEPTH: Table = {
    'depth_topic': ('camera/aligned_depth_to_color/image_raw',
                    'depth image aligned to colour (16UC1 mm or 32FC1 m)'),
    'camera_info_topic': ('camera/color/camera_info', 'CameraInfo of the colour (and aligned depth) image'),
    'depth_transport': ('raw', "image_transport of the depth input: 'raw' (sensor_msgs/Image on depth_topic), "
                               "'compressedDepth' or 'compressed' (sensor_msgs/CompressedImage on "
                               "depth_topic/compressedDepth or depth_topic/compressed)"),
    'depth_scale': (0.0, 'metres per depth unit; 0 = from the encoding (16UC1: 0.001, 32FC1: 1)'),
}
_CAMERA: Table = {
    'mode': ('rgbd', "inputs: 'rgbd' (colour + aligned depth), 'depth' (depth only, class-agnostic) "
                     "or 'color' (colour only: 2D detections and 2D tracks)"),
    'color_topic': ('camera/color/image_raw', 'colour image topic (rgb8/bgr8/rgba8/bgra8/mono8)'),
    'color_transport': ('raw', "image_transport of the colour input: 'raw' (sensor_msgs/Image on color_topic) or "
                               "'compressed' (sensor_msgs/CompressedImage JPEG/PNG on color_topic/compressed)"),
    **_DEPTH,
}

#: Nodes that publish grasps.
_TARGET: Table = {
    'target_frame': ('', "frame of the published grasps, e.g. 'base_link' (empty: the camera frame); grasps are "
                         "transformed through TF at the image stamp"),
}

#: Per node (executable name -> its own parameters, COMMON excluded).
NODES: Dict[str, Table] = {
    'perception_node': {
        **_CAMERA,
        **_TARGET,
        'grasp_processes': (2, 'worker processes that search for grasps beside the node, objects split between '
                               'them (0: in its own grasp thread, which slows perception: Python threads share '
                               'one interpreter lock)'),
    },
    'detector_node': dict(_CAMERA),
    'pose_estimator_node': {
        **_DEPTH,
        'detections_topic': ('detections', 'vision_msgs/Detection2DArray from any detector'),
        'instance_labels_topic': ('instance_labels', 'mono16 instance image whose pixel values are the '
                                                     'Detection2D ids (used when use_instance_labels)'),
        'label_info_topic': ('label_info', 'vision_msgs/LabelInfo of the detector (class names, latched)'),
        'use_instance_labels': (True, 'synchronise with the instance-label image and use its masks; false: '
                                      'boxes only (detectors without masks)'),
    },
    'grasp_planner_node': {
        **_DEPTH,
        'objects_topic': ('objects', 'vision_msgs/Detection3DArray (camera frame) to plan grasps for'),
        **_TARGET,
        'grasp_mode': ('continuous', "'continuous' (plan on every objects message) or 'on_request' (plan "
                                     "only when a request arrives on request_topic)"),
        'request_topic': ('grasp_request', "std_msgs/String: a Detection3D id to plan for one object, "
                                           "or '' for all"),
        'box_margin': (0.01, "metres each object's box is grown by to collect its points from the depth image"),
    },
    'tracker_node': {
        'objects_topic': ('objects', 'vision_msgs/Detection3DArray (camera frame) to track'),
    },
}

#: Every non-settings parameter name any robot_vision node declares.
ALL_NAMES = frozenset(COMMON).union(*NODES.values())


def _number(low: float, high: float = math.inf, low_open: bool = False) -> Tuple[Callable[[Any], bool], str]:
    def ok(value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and (value > low if low_open else value >= low) and value <= high)
    upper = '' if high == math.inf else f' and <= {high:g}'
    return ok, f'a number {">" if low_open else ">="} {low:g}{upper}'


def _integer(low: int, high: int) -> Tuple[Callable[[Any], bool], str]:
    return (lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
            f'an integer from {low} to {high}')


def _choice(*choices: str) -> Tuple[Callable[[Any], bool], str]:
    return (lambda value: value in choices), f'one of {list(choices)}'


_TOPIC = (lambda value: isinstance(value, str) and bool(value.strip())), 'a non-empty topic name'

#: What each node parameter accepts: name -> (test, expected values in words). Integers pass as floats.
CHECKS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    'autostart': ((lambda value: isinstance(value, bool)), 'true or false'),
    'input_reliability': _choice('best_effort', 'reliable'),
    'input_depth': _integer(1, 10000),
    'sync_slop_s': _number(0.0),
    'sync_queue_size': _integer(1, 10000),
    'tf_timeout_s': _number(0.0),
    'input_timeout_s': _number(0.0, low_open=True),
    'mode': _choice('rgbd', 'depth', 'color'),
    'depth_scale': _number(0.0),
    'grasp_mode': _choice('continuous', 'on_request'),
    'color_transport': _choice('raw', 'compressed'),
    'depth_transport': _choice('raw', 'compressedDepth', 'compressed'),
    'box_margin': _number(0.0),
    'grasp_processes': _integer(0, MAX_GRASP_PROCESSES),
    'use_instance_labels': ((lambda value: isinstance(value, bool)), 'true or false'),
    'target_frame': ((lambda value: isinstance(value, str)), "a frame name ('' = the camera frame)"),
    **{name: _TOPIC for name in ('color_topic', 'depth_topic', 'camera_info_topic', 'detections_topic',
                                 'instance_labels_topic', 'label_info_topic', 'objects_topic', 'request_topic')},
}

#: Node parameters read on every frame: a change applies to the next frame. The others are read when
#: the node configures or activates, so they change only while it is unconfigured.
LIVE = frozenset({'tf_timeout_s', 'depth_scale', 'box_margin', 'target_frame', 'input_timeout_s'})


def check_value(name: str, value: Any) -> Optional[str]:
    """Why ``value`` is not valid for the node parameter ``name`` (None when it is)."""
    ok, expected = CHECKS[name]
    return None if ok(value) else f'{name}: expected {expected}, got {value!r}'


def node_parameters(executable: str) -> Table:
    """COMMON plus the node's own parameters (KeyError for an unknown executable name)."""
    return {**COMMON, **NODES[executable]}
