"""Learned 2D detection and instance segmentation (YOLO ONNX/TorchScript), plus depth-only instances.

Usage::

    from robot_vision.detection import DetectorSettings, create_detector
    detector = create_detector('onnx', DetectorSettings(model_path='yolo11n-seg.onnx'))
    detections = detector.detect(frame)      # Detections in frame.color pixels
"""

from robot_vision.detection import depth_backend, onnx_backend, torchscript_backend  # noqa: F401 - registers
from robot_vision.detection.base import (Detector, YoloDetector, available_detectors, create_detector,
                                         register_detector)
from robot_vision.detection.depth_backend import (DepthDetector, boxes_from_masks,
                                                  detections_from_objects)
from robot_vision.detection.labels import (ModelMetadata, label_map, load_labels_file, names_from_value,
                                           parse_metadata)
from robot_vision.detection.onnx_backend import OnnxDetector
from robot_vision.detection.settings import DetectorSettings
from robot_vision.detection.torchscript_backend import TorchScriptDetector

__all__ = [
    'DepthDetector', 'Detector', 'DetectorSettings', 'ModelMetadata', 'OnnxDetector', 'TorchScriptDetector',
    'YoloDetector', 'available_detectors', 'boxes_from_masks', 'create_detector', 'detections_from_objects',
    'label_map', 'load_labels_file', 'names_from_value', 'parse_metadata', 'register_detector',
]
