"""2D detections (masks or boxes) lifted to 3D instances on real frames, with background rejection."""

import numpy as np
import pytest

from robot_vision.datasets import load_ycb_frame
from robot_vision.errors import InputError
from robot_vision.perception3d import SegmentationSettings, objects_from_detections, segment_scene
from robot_vision.types import Detections


def box_of(mask, pad=0):
    ys, xs = np.nonzero(mask)
    return [xs.min() - pad, ys.min() - pad, xs.max() + 1 + pad, ys.max() + 1 + pad]


@pytest.fixture
def milk(milk_frame, milk_gt):
    return milk_frame, milk_gt


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_mask_and_box_detections_of_the_milk_carton(milk):
    frame, gt = milk
    seg = segment_scene(frame)
    dets = Detections(xyxy=np.array([box_of(gt), box_of(gt, pad=25), [0, 400, 200, 480]], np.float32),
                      confidence=np.array([0.9, 0.8, 0.7], np.float32),
                      class_id=np.array([3, 3, 5], np.int32))
    with_mask = Detections(xyxy=dets.xyxy[:1], confidence=dets.confidence[:1], class_id=dets.class_id[:1],
                           mask=gt[None])
    from_mask = objects_from_detections(frame, with_mask, plane=seg.plane)
    assert len(from_mask) == 1 and iou(from_mask.mask[0], gt) > 0.9
    from_boxes = objects_from_detections(frame, dets, plane=seg.plane)
    # The third box covers the near bottle with no depth (closer than the sensor's range): dropped.
    assert from_boxes.detection_index.tolist() == [0, 1]
    assert from_boxes.class_id.tolist() == [3, 3]
    np.testing.assert_allclose(from_boxes.confidence, [0.9, 0.8])
    for i in range(2):
        # Floor around and behind the carton is rejected: the box result is the carton.
        assert iou(from_boxes.mask[i], gt) > 0.85
        heights = from_boxes.points[i] @ seg.plane[:3] + seg.plane[3]
        assert heights.min() > 0
        assert 0.23 < from_boxes.size[i, 2] < 0.28
        assert np.allclose(from_boxes.pose[i, :3, 2], seg.plane[:3])
    # Without a plane the support is found internally, with the same result.
    no_plane = objects_from_detections(frame, dets)
    assert iou(no_plane.mask[1], from_boxes.mask[1]) > 0.98


def test_box_in_front_of_background_keeps_the_front_object(shared_data):
    """YCB frame 1: a loose box round the mustard bottle also holds the cracker box behind it."""
    frame = load_ycb_frame(1)
    seg = segment_scene(frame)
    sizes = seg.objects.size
    mustard = int(np.flatnonzero((sizes[:, 2] > 0.16) & (sizes[:, 2] < 0.22) & (sizes[:, 0] < 0.09))[0])
    reference = seg.objects.mask[mustard] & np.isfinite(frame.depth)  # lifted masks hold pixels with depth
    dets = Detections(xyxy=np.array([box_of(reference, pad=20)], np.float32),
                      confidence=np.ones(1, np.float32), class_id=np.zeros(1, np.int32))
    lifted = objects_from_detections(frame, dets, plane=seg.plane)
    assert len(lifted) == 1
    precision = (lifted.mask[0] & reference).sum() / lifted.mask[0].sum()
    recall = (lifted.mask[0] & reference).sum() / reference.sum()
    assert precision > 0.9 and recall > 0.8, (precision, recall)
    assert abs(np.median(lifted.points[0][:, 2]) - np.median(seg.objects.points[mustard][:, 2])) < 0.02


def test_detection_inputs(milk):
    frame, gt = milk
    empty = objects_from_detections(frame, Detections.empty())
    assert len(empty) == 0 and empty.mask.shape == (0, 480, 640)
    bad_mask = Detections(xyxy=np.zeros((1, 4), np.float32), confidence=np.ones(1, np.float32),
                          class_id=np.zeros(1, np.int32), mask=np.zeros((1, 10, 10), bool))
    with pytest.raises(InputError, match=r'detections.mask: expected \(N, 480, 640\)'):
        objects_from_detections(frame, bad_mask)
    with pytest.raises(InputError, match='expected a Detections'):
        objects_from_detections(frame, np.zeros((1, 4)))
    # A box outside the image and a degenerate box are dropped, not raised on.
    odd = Detections(xyxy=np.array([[700, 500, 800, 600], [10, 10, 10, 50]], np.float32),
                     confidence=np.ones(2, np.float32), class_id=np.zeros(2, np.int32))
    assert len(objects_from_detections(frame, odd, SegmentationSettings())) == 0
