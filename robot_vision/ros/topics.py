"""The table of every output topic the robot_vision nodes publish (relative names and message types).

Both the live nodes and the bag replay (``robot_vision.replay``) build their publishers / bag
connections from :data:`OUTPUT_TOPICS`, so a topic added here shows up in both. Names are
relative: a node resolves them in its namespace, the replay under its ``--prefix``
(default ``/robot_vision``). This module imports no ROS package.

Frames: ``camera`` topics carry the colour image's header (stamp and optical frame id),
``fixed`` topics the same stamp in the pipeline's fixed frame (e.g. ``odom``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from robot_vision.compressed_images import TRANSPORTS
from robot_vision.errors import InputError


@dataclass(frozen=True)
class OutputTopic:
    """One published topic: relative ``name``, ROS ``msg_type`` ('pkg/msg/Name'), ``frame``, ``latched``."""

    name: str
    msg_type: str
    frame: str
    latched: bool
    description: str


#: Every output topic, in publishing order.
OUTPUT_TOPICS: Tuple[OutputTopic, ...] = (
    OutputTopic('detections', 'vision_msgs/msg/Detection2DArray', 'camera', False,
                '2D boxes, class id (as a numeric string) and score per detection'),
    OutputTopic('instance_labels', 'sensor_msgs/msg/Image', 'camera', False,
                'mono16 instance image: pixel = the Detection2D id (row + 1, or the 2D track id), 0 = background'),
    OutputTopic('detections_overlay', 'sensor_msgs/msg/Image', 'camera', False,
                'rgb8 colour image with masks, projected 3D boxes, grasps and track ids drawn'),
    OutputTopic('label_info', 'vision_msgs/msg/LabelInfo', 'camera', True,
                'class id -> class name map (latched)'),
    OutputTopic('objects', 'vision_msgs/msg/Detection3DArray', 'camera', False,
                'oriented 3D boxes of the object instances in the camera frame; id = the Detection2D id'),
    OutputTopic('object_points', 'sensor_msgs/msg/PointCloud2', 'camera', False,
                "all objects' points, coloured by instance"),
    OutputTopic('object_markers', 'visualization_msgs/msg/MarkerArray', 'camera', False,
                'RViz boxes and labels of the objects'),
    OutputTopic('grasps', 'geometry_msgs/msg/PoseArray', 'camera', False,
                'ranked grasp poses, best first'),
    OutputTopic('best_grasp', 'geometry_msgs/msg/PoseStamped', 'camera', False,
                'the best grasp (only published when there is one)'),
    OutputTopic('scored_grasps', 'vision_msgs/msg/Detection3DArray', 'camera', False,
                "the grasps of 'grasps' in the same order, with their scores: per grasp the object's id and "
                'class, the score, the pose and the width (bbox.size.x)'),
    OutputTopic('grasp_markers', 'visualization_msgs/msg/MarkerArray', 'camera', False,
                'gripper outlines of the grasps (best one highlighted)'),
    OutputTopic('tracked_objects', 'vision_msgs/msg/Detection3DArray', 'fixed', False,
                'tracked objects in the fixed frame; Detection3D.id is the track id'),
    OutputTopic('track_markers', 'visualization_msgs/msg/MarkerArray', 'fixed', False,
                'RViz boxes, velocity arrows and ids of the tracks'),
    OutputTopic('obstacles', 'sensor_msgs/msg/PointCloud2', 'fixed', False,
                'points sampled on the tracked objects\' boxes in the fixed frame (Nav2 obstacle layer)'),
)

#: Relative topic name -> message type ('pkg/msg/Name').
OUTPUT_TOPIC_TYPES: Dict[str, str] = {t.name: t.msg_type for t in OUTPUT_TOPICS}

#: Input topic roles the replay and the nodes understand, and the message types they accept.
INPUT_TYPES: Dict[str, Tuple[str, ...]] = {
    'color': ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'),
    'depth': ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'),
    'camera_info': ('sensor_msgs/msg/CameraInfo',),
    'tf': ('tf2_msgs/msg/TFMessage',),
    'tf_static': ('tf2_msgs/msg/TFMessage',),
}

#: How long a frame waits for the first CameraInfo (s), in the nodes and the replay alike: drivers and
#: recorders often deliver a frame's CameraInfo just after its images.
CAMERA_INFO_WAIT_S = 0.5


def output_topic(name: str) -> OutputTopic:
    """Return the table entry of the relative topic ``name`` (InputError when unknown)."""
    for topic in OUTPUT_TOPICS:
        if topic.name == name:
            return topic
    raise InputError(f'output topic: expected one of {[t.name for t in OUTPUT_TOPICS]}, got {name!r}')


def resolve(namespace: str, name: str) -> str:
    """Join a namespace ('/robot_vision', '' or '/') and a relative name into an absolute topic name."""
    namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return f'{namespace}/{name.lstrip("/")}'


def image_topic(topic: str, transport: str) -> str:
    """The topic an image input subscribes for ``transport`` (image_transport's names and layout).

    'raw' is the base topic itself; 'compressed' and 'compressedDepth' are sub-topics of it, as
    image_transport publishes them (``camera/color/image_raw/compressed``). Raises InputError for
    other transports.
    """
    if transport not in TRANSPORTS:
        raise InputError(f'image transport: expected one of {list(TRANSPORTS)}, got {transport!r}')
    return topic if transport == 'raw' else f'{topic.rstrip("/")}/{transport}'
