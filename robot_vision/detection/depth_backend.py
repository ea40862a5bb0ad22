"""The ``depth`` backend: class-agnostic instances from the depth core, as 2D detections with masks."""

from __future__ import annotations

from typing import List

import numpy as np

from robot_vision.detection.base import Detector, register_detector
from robot_vision.detection.settings import DetectorSettings
from robot_vision.errors import ConfigError, InputError
from robot_vision.types import Detections, Objects3D, RGBDFrame


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight (N, 4) float32 xyxy pixel boxes of (N, H, W) bool masks (x2, y2 exclusive; zeros if empty)."""
    masks = np.asarray(masks, bool)
    if masks.ndim != 3:
        raise InputError(f'masks: expected (N, H, W) bool, got shape {masks.shape}')
    n, height, width = masks.shape
    cols, rows = masks.any(axis=1), masks.any(axis=2)            # (N, W), (N, H)
    x1, y1 = cols.argmax(axis=1), rows.argmax(axis=1)
    x2, y2 = width - cols[:, ::-1].argmax(axis=1), height - rows[:, ::-1].argmax(axis=1)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
    boxes[~cols.any(axis=1)] = 0.0
    return boxes.reshape(n, 4)


def detections_from_objects(objects: Objects3D) -> Detections:
    """2D detections of 3D objects that carry image masks, row for row (detection i is object i).

    Boxes are the tight xyxy boxes of ``objects.mask`` (N, H, W) in pixels; ``confidence`` and
    ``class_id`` are copied; masks are kept. An object with an empty mask gets a zero box.
    Raises InputError when the objects have no masks.
    """
    if not isinstance(objects, Objects3D):
        raise InputError(f'detections_from_objects: expected Objects3D, got {type(objects).__name__}')
    if objects.mask is None:
        if len(objects) == 0:
            return Detections.empty()
        raise InputError(f'detections_from_objects: expected Objects3D with (N, H, W) masks, got '
                         f'{len(objects)} objects without masks')
    return Detections(xyxy=boxes_from_masks(objects.mask), confidence=objects.confidence,
                      class_id=objects.class_id, mask=objects.mask)


@register_detector('depth')
class DepthDetector(Detector):
    """Class-agnostic object instances on the support plane, from depth alone (no model).

    Wraps :func:`robot_vision.perception3d.segment_scene` with ``settings.segmentation`` (a
    ``SegmentationSettings``; None: its defaults). Each instance mask becomes a detection whose
    box is the mask's tight box, ``class_id`` -1 and ``confidence`` the instance quality figure;
    instances below ``confidence_threshold`` are dropped and at most ``max_detections`` kept
    (largest first). The full 3D result of the last call is kept in :attr:`last_scene`.
    """

    def __init__(self, settings: DetectorSettings) -> None:
        from robot_vision.perception3d import SegmentationSettings

        segmentation = settings.segmentation if settings.segmentation is not None else SegmentationSettings()
        if not isinstance(segmentation, SegmentationSettings):
            raise ConfigError(f'DetectorSettings.segmentation: expected a perception3d.SegmentationSettings '
                              f'or None, got {type(segmentation).__name__}')
        self.settings = settings
        self.segmentation = segmentation
        self.last_scene = None

    @property
    def class_names(self) -> List[str]:
        """No classes: every detection has class_id -1."""
        return []

    @property
    def needs_depth(self) -> bool:
        """True: reads ``frame.depth`` and ``frame.intrinsics``."""
        return True

    @property
    def has_masks(self) -> bool:
        """True: every detection carries its instance mask."""
        return True

    def detect(self, frame: RGBDFrame) -> Detections:
        """Segment ``frame.depth`` into instances; boxes and (N, H, W) masks in depth-image pixels."""
        from robot_vision.perception3d import segment_scene

        if not isinstance(frame, RGBDFrame):
            raise InputError(f'detect: expected an RGBDFrame, got {type(frame).__name__}')
        if frame.depth is None:
            raise InputError('detect: the depth backend needs frame.depth ((H, W) float32 metres), '
                             'got a frame without depth')
        scene = segment_scene(frame, self.segmentation)
        self.last_scene = scene
        if scene.objects.mask is None:  # no instance at all
            return Detections.empty(mask=np.zeros((0,) + frame.depth.shape, bool))
        dets = detections_from_objects(scene.objects)
        nonempty = dets.mask.reshape(len(dets), -1).any(axis=1)
        keep = (dets.confidence >= self.settings.confidence_threshold) & nonempty
        return dets[np.flatnonzero(keep)[:self.settings.max_detections]]

    def close(self) -> None:
        """Forget the last scene."""
        self.last_scene = None
