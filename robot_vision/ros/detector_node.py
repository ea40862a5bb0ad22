"""The detector lifecycle node: colour and/or depth in; 2D detections, instance labels and their overlay out."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple


from robot_vision.errors import ConfigError
from robot_vision.pipeline import FrameResult, PipelineSettings
from robot_vision.ros.node_base import PipelineNode, main_for


class DetectorNode(PipelineNode):
    """Detect object instances in 2D with the configured backend (the first stage of the separate nodes).

    Subscribed (relative, remappable; sensor-data QoS by default, see ``input_reliability``):
      ``camera/color/image_raw`` (sensor_msgs/Image), ``camera/aligned_depth_to_color/image_raw``
      (sensor_msgs/Image 16UC1/32FC1), ``camera/color/camera_info`` (sensor_msgs/CameraInfo); with
      ``color_transport`` / ``depth_transport`` 'compressed' / 'compressedDepth' the images' image_transport
      sub-topics (sensor_msgs/CompressedImage) instead;
      with the ``depth`` backend also ``/tf``, ``/tf_static`` for camera -> ``fixed_frame`` (the
      floor prior of the segmentation, when ``segmentation.use_frame_up``).
      Inputs by ``detector.backend`` and ``mode``: the class-agnostic ``depth`` backend segments the
      depth image and needs it (``mode`` 'rgbd': colour + depth, 'depth': depth only; 'color' fails
      configuration). Model backends (``onnx``, ``torchscript``) run on colour only: with ``mode``
      'rgbd' the depth image is not subscribed (logged), and 'depth' fails configuration.
    Published: ``detections`` (vision_msgs/Detection2DArray), ``instance_labels`` (mono16, pixel =
      the Detection2D id, masks when the backend gives them, else boxes), ``detections_overlay``
      (rgb8, when there is colour), ``label_info`` (vision_msgs/LabelInfo, latched, published on
      activation), ``/diagnostics``; every output carries the input image's header stamp.
    Parameters: robot_vision.ros.node_parameters (detector_node) plus every pipeline setting
      (``detector.*`` picks the backend and its model, ``segmentation.*`` the depth backend).
    Processing: always the latest synchronised frame on a worker thread (see PipelineNode).
    """

    EXECUTABLE = 'detector_node'
    OUTPUTS = ('detections', 'instance_labels', 'detections_overlay', 'label_info')

    def __init__(self, node_name: str = 'detector', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)

    def setup(self, settings: PipelineSettings) -> None:
        """Check that ``mode`` gives the backend its image, then load the detector (model)."""
        backend, mode = settings.detector.backend, self.params['mode']
        if backend == 'depth' and mode == 'color':
            raise ConfigError("mode 'color' subscribes no depth image, but detector.backend 'depth' segments "
                              "depth: use mode 'rgbd' or 'depth', or a model backend (onnx, torchscript)")
        if backend != 'depth' and mode == 'depth':
            raise ConfigError(f"mode 'depth' subscribes no colour image, but detector.backend {backend!r} runs "
                              f"a model on colour: use mode 'rgbd' or 'color', or detector.backend 'depth'")
        super().setup(settings)

    def inputs(self) -> List[Tuple[str, type, str]]:
        """Colour unless ``mode`` is 'depth'; depth only for the depth backend."""
        mode, backend = self.params['mode'], self.settings.detector.backend
        chosen = []
        if mode != 'depth':
            chosen.append(self.image_input('color'))
        if backend == 'depth':
            if mode != 'color':
                chosen.append(self.image_input('depth'))
        elif mode == 'rgbd':
            self.get_logger().info(f'detector.backend {backend!r} detects on colour only: the depth image is '
                                   f'not subscribed')
        return chosen

    def activated(self) -> None:
        """Publish the detector's class names once (latched)."""
        self.publish_label_info(self.pipeline.class_names)

    def process(self, msgs: Dict[str, Any]) -> None:
        """Detect in one frame and publish the detections, the instance labels and the overlay."""
        frame = self.frame(msgs.get('color'), msgs.get('depth'))
        stamp = next(iter(msgs.values())).header.stamp
        settings = self.pipeline.settings
        if frame.depth is not None and settings.segmentation.use_frame_up and settings.segmentation.up_vector is None:
            frame.camera_to_fixed = self.lookup(settings.fixed_frame, frame.frame_id, frame.stamp, 'floor prior')
        warnings: List[str] = []
        start = time.perf_counter()
        detections, _, _ = self.pipeline.detect(frame, warnings)
        timings = {'segment' if settings.detector.backend == 'depth' else 'detect':
                   (time.perf_counter() - start) * 1e3}
        result = FrameResult.empty(frame.stamp, frame.frame_id, settings.fixed_frame, frame.intrinsics,
                                   self.pipeline.class_names)
        result.detections = detections
        self.publish(result, ('detections', 'instance_labels'), stamp)
        if frame.color is not None:
            self.publish(result, ('detections_overlay',), stamp, frame.color)
        self.finished(frame.stamp, timings, warnings)


def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision detector_node`` (Ctrl-C or external shutdown stop it)."""
    main_for(DetectorNode, args)
