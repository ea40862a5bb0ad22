"""The depth backend on real RGB-D frames, and learned 2D detections lifted to 3D by the depth core."""

import numpy as np
import pytest

from robot_vision.datasets import load_ycb_frame
from robot_vision.detection import (DetectorSettings, boxes_from_masks, create_detector,
                                    detections_from_objects)
from robot_vision.detection.testing_models import ColourBoxNet, export_onnx, ultralytics_metadata
from robot_vision.errors import ConfigError, InputError
from robot_vision.perception3d import SegmentationSettings, objects_from_detections
from robot_vision.types import CameraIntrinsics, Objects3D, RGBDFrame


def test_boxes_from_masks_by_hand():
    masks = np.zeros((3, 6, 8), bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 5, 7] = True
    boxes = boxes_from_masks(masks)
    np.testing.assert_array_equal(boxes, [[2, 1, 5, 3], [7, 5, 8, 6], [0, 0, 0, 0]])
    with pytest.raises(InputError, match=r'\(N, H, W\)'):
        boxes_from_masks(masks[0])


def test_depth_backend_on_a_real_ycb_frame(shared_data):
    frame = load_ycb_frame(1, shared_data / 'ycb_posecnn')
    detector = create_detector('depth', DetectorSettings(backend='depth'))
    assert detector.needs_depth and detector.has_masks
    assert detector.class_names == [] and detector.label_map() == {}
    dets = detector.detect(frame)
    objects = detector.last_scene.objects
    assert detector.last_scene.ok and len(dets) >= 3
    assert (dets.class_id == -1).all() and dets.mask.shape == (len(dets), 480, 640)
    assert (dets.confidence >= 0.25).all()
    # every box is the tight box of its mask, and the masks are the depth core's instance masks
    for box, mask in zip(dets.xyxy.astype(int), dets.mask):
        rows, cols = np.nonzero(mask)
        assert (box == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).all()
        assert any((mask == m).all() for m in objects.mask)
    aligned = detections_from_objects(objects)          # row i is object i, nothing filtered
    assert len(aligned) == len(objects) and (aligned.class_id == objects.class_id).all()
    np.testing.assert_array_equal(aligned.mask, objects.mask)
    strict = create_detector('depth', DetectorSettings(backend='depth', confidence_threshold=0.99,
                                                       max_detections=2))
    assert len(strict.detect(frame)) <= 2


def test_detections_from_objects_needs_masks():
    assert len(detections_from_objects(Objects3D.empty())) == 0
    one = Objects3D(pose=np.eye(4)[None], size=np.ones((1, 3)), centroid=np.zeros((1, 3)),
                    confidence=[1.0], class_id=[2], detection_index=[-1])
    with pytest.raises(InputError, match='without masks'):
        detections_from_objects(one)


def test_depth_backend_errors():
    with pytest.raises(ConfigError, match='SegmentationSettings'):
        create_detector('depth', DetectorSettings(backend='depth', segmentation={'min_depth': 0.1}))
    settings = DetectorSettings(backend='depth', segmentation=SegmentationSettings())
    detector = create_detector('depth', settings)
    colour_only = RGBDFrame(CameraIntrinsics(8, 6, 5.0, 5.0, 4, 3), color=np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(InputError, match='needs frame.depth'):
        detector.detect(colour_only)


def test_learned_masks_lifted_to_3d_match_the_depth_instances(shared_data, tmp_path):
    """Paint one depth instance red, detect it with an exported segmentation net, lift it with real depth."""
    frame = load_ycb_frame(1, shared_data / 'ycb_posecnn')
    depth_detector = create_detector('depth', DetectorSettings(backend='depth'))
    instances = depth_detector.detect(frame)
    target = depth_detector.last_scene.objects[0]
    painted = np.zeros_like(frame.color)
    painted[target.mask[0]] = (255, 0, 0)
    net = ColourBoxNet('detect', nc=3, nm=4)
    path = export_onnx(net, tmp_path / 'seg.onnx', (1, 3, 640, 640),
                       ultralytics_metadata(['red', 'green', 'blue'], (640, 640), 'segment'))
    learned = create_detector('onnx', DetectorSettings(model_path=str(path)))
    frame2 = RGBDFrame(frame.intrinsics, color=painted, depth=frame.depth)
    dets = learned.detect(frame2)
    assert dets.class_id.tolist() == [0]
    np.testing.assert_allclose(dets.xyxy[0], instances.xyxy[0], atol=1e-4)
    # the prototypes are the 4x4-pooled mask, so the outline is only as fine as a 4 px grid
    iou = (dets.mask[0] & target.mask[0]).sum() / (dets.mask[0] | target.mask[0]).sum()
    assert iou > 0.9
    objects = objects_from_detections(frame2, dets, SegmentationSettings(), depth_detector.last_scene.plane)
    assert objects.detection_index.tolist() == [0] and objects.class_id.tolist() == [0]
    assert np.linalg.norm(objects.centroid[0] - target.centroid[0]) < 0.01
