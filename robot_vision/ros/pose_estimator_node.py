"""The pose estimator lifecycle node: depth + 2D detections of any detector in; oriented 3D objects out."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from robot_vision.detection import DetectorSettings
from robot_vision.errors import InputError
from robot_vision.pipeline import FrameResult, PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.node_base import LATCHED, PipelineNode, main_for
from robot_vision.types import Detections

#: Encodings accepted for the instance-label image (uint16, pixel = Detection2D id).
LABEL_ENCODINGS = ('mono16', '16UC1')

#: How far (fraction of the image size) a detection box may reach outside the depth image.
BOX_MARGIN = 0.05


def instance_masks(labels: Image, detections: Detection2DArray, shape: Tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool masks of the detections from a mono16 instance-label image.

    Mask i holds the pixels equal to ``int(detections[i].id)`` (row i + 1 when the id is not a
    number), the convention of :func:`robot_vision.ros.conversions.detection_ids`. ``shape`` is
    the depth image's (H, W); another size or encoding is an InputError.
    """
    if labels.encoding not in LABEL_ENCODINGS:
        raise InputError(f'instance-label image encoding: expected one of {list(LABEL_ENCODINGS)} '
                         f'(pixel = Detection2D id), got {labels.encoding!r}')
    image = cv.image_to_numpy(labels)
    if image.shape != tuple(shape):
        raise InputError(f'instance-label image is {image.shape[1]}x{image.shape[0]} but depth is '
                         f'{shape[1]}x{shape[0]}: both must come from the same (aligned) camera image')
    values = [int(d.id) if d.id.strip().isdigit() else row + 1 for row, d in enumerate(detections.detections)]
    return image[None] == np.asarray(values, np.int64).reshape(-1, 1, 1)  # ids beyond uint16: empty masks


def check_boxes(detections: Detections, shape: Tuple[int, int]) -> None:
    """InputError when a box reaches beyond the (H, W) depth image by more than BOX_MARGIN of its size."""
    size = np.array([shape[1], shape[0]], np.float32)
    margin = BOX_MARGIN * size
    outside = np.any(detections.xyxy[:, :2] < -margin, axis=1) | np.any(detections.xyxy[:, 2:] > size + margin,
                                                                          axis=1)
    if outside.any():
        row = int(np.argmax(outside))
        raise InputError(f'detection {row} box {detections.xyxy[row].round(1).tolist()} lies outside the '
                         f'{shape[1]}x{shape[0]} depth image: does the detector run on an image of another size?')


class PoseEstimatorNode(PipelineNode):
    """Estimate the oriented 3D box and 6-DoF pose of each 2D detection of any detector from aligned depth.

    Subscribed (relative, remappable; sensor-data QoS by default, see ``input_reliability``),
      approximately synchronised (``sync_slop_s``): ``camera/aligned_depth_to_color/image_raw``
      (sensor_msgs/Image 16UC1/32FC1, or CompressedImage by ``depth_transport``, aligned to the image
      the detector saw), ``detections``
      (vision_msgs/Detection2DArray from robot_vision's detector_node, Isaac ROS, depthai, ...) and,
      when ``use_instance_labels``, ``instance_labels`` (mono16, pixel = Detection2D id: the
      masks; without it each detection's box is used). Also ``camera/color/camera_info``
      (sensor_msgs/CameraInfo), ``label_info`` (vision_msgs/LabelInfo, TRANSIENT_LOCAL: the class
      names for name-valued class ids and ``object_models``) and ``/tf``, ``/tf_static`` for
      camera -> ``fixed_frame`` (the floor prior, when ``segmentation.use_frame_up``).
    Published: ``objects`` (vision_msgs/Detection3DArray in the depth image's frame: oriented box,
      pose also in results[0].pose, numeric class id, Detection3D.id = the source Detection2D id),
      ``object_points`` (sensor_msgs/PointCloud2), ``object_markers`` (visualization_msgs/
      MarkerArray), ``/diagnostics``; every output carries the depth image's header stamp. Poses of
      classes listed in ``object_models`` are refined by model registration.
    Parameters: robot_vision.ros.node_parameters (pose_estimator_node) plus every pipeline setting
      (``segmentation.*``, ``registration.*``, ``object_models``; ``detector.*`` is not used).
    Bad input (boxes or label image of another size than depth, a label image that is not mono16)
    skips the set with a throttled error; the node keeps running.
    """

    EXECUTABLE = 'pose_estimator_node'
    OUTPUTS = ('objects', 'object_points', 'object_markers')

    def __init__(self, node_name: str = 'pose_estimator', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.class_names: Dict[int, str] = {}

    def setup(self, settings: PipelineSettings) -> None:
        """Load the object models; no detector (the detections arrive on a topic)."""
        super().setup(dataclasses.replace(settings, detector=DetectorSettings(backend='depth')))

    def teardown(self) -> None:
        """Forget the models and the class names."""
        super().teardown()
        self.class_names = {}

    def inputs(self) -> List[Tuple[str, type, str]]:
        """Depth, detections and, with ``use_instance_labels``, the instance-label image."""
        chosen = [self.image_input('depth'),
                  ('detections', Detection2DArray, self.params['detections_topic'])]
        if self.params['use_instance_labels']:
            chosen.append(('labels', Image, self.params['instance_labels_topic']))
        return chosen

    def extra_subscriptions(self) -> None:
        """The detector's latched class names."""
        self.subscribe(LabelInfo, self.params['label_info_topic'], self._on_label_info, LATCHED)

    def _on_label_info(self, msg: LabelInfo) -> None:
        self.class_names = cv.label_info_to_names(msg)

    def process(self, msgs: Dict[str, Any]) -> None:
        """Turn one synchronised set into 3D objects and publish them."""
        frame = self.frame(depth=msgs['depth'])
        stamp, shape = msgs['depth'].header.stamp, frame.depth.shape
        source = msgs['detections']
        detections = cv.msg_to_detections(source, self.class_names)
        check_boxes(detections, shape)
        warnings: List[str] = []
        if 'labels' in msgs:
            masks = instance_masks(msgs['labels'], source, shape)
            empty = [source.detections[i].id for i in np.flatnonzero(~masks.any(axis=(1, 2)))]
            if empty:
                warnings.append(f'instance labels: no pixels for detection ids {empty}')
            detections = dataclasses.replace(detections, mask=masks)
        settings = self.pipeline.settings
        if settings.segmentation.use_frame_up and settings.segmentation.up_vector is None:
            frame.camera_to_fixed = self.lookup(settings.fixed_frame, frame.frame_id, frame.stamp, 'floor prior')
        timings: Dict[str, float] = {}
        objects = self.pipeline.estimate(frame, detections, self.class_names, warnings, timings)
        result = FrameResult.empty(frame.stamp, frame.frame_id, settings.fixed_frame, frame.intrinsics,
                                   self.class_names)
        result.objects = objects
        numeric = [d.id.strip() for d in source.detections]
        if all(text.isdigit() for text in numeric):  # markers and cloud coloured by the source's ids
            result.detections = dataclasses.replace(detections, tracker_id=np.array([int(t) for t in numeric]))
        self.outputs['objects'].publish(cv.objects_to_msg(objects, frame.frame_id, stamp,
                                                          ids=_source_ids(source, objects.detection_index)))
        self.publish(result, ('object_points', 'object_markers'), stamp)
        self.finished(frame.stamp, timings, warnings)


def _source_ids(source: Detection2DArray, rows: Sequence[int]) -> List[str]:
    """The Detection2D id of each source row (row + 1 when the detector left the id empty)."""
    return [source.detections[int(row)].id or str(int(row) + 1) for row in rows]


def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision pose_estimator_node`` (Ctrl-C or external shutdown stop it)."""
    main_for(PoseEstimatorNode, args)
