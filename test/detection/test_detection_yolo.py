"""YOLO decoding in numpy: letterbox, layout identification, NMS, box rescale and mask assembly."""

import numpy as np
import pytest

from robot_vision.detection import yolo
from robot_vision.errors import InputError, ModelError


@pytest.mark.parametrize('shape, size, auto, out, gain, pad', [
    ((480, 640), (640, 640), False, (640, 640), 1.0, (0, 80)),
    ((240, 320), (640, 640), False, (640, 640), 2.0, (0, 80)),
    ((640, 480), (640, 640), False, (640, 640), 1.0, (80, 0)),
    ((300, 500), (640, 640), False, (640, 640), 1.28, (0, 128)),
    ((480, 640), (640, 640), True, (480, 640), 1.0, (0, 0)),
    ((300, 500), (640, 640), True, (384, 640), 1.28, (0, 0)),   # 384 = 12 * 32
    ((720, 1280), (640, 640), True, (384, 640), 0.5, (0, 12)),
    ((480, 640), (256, 416), False, (256, 416), 256 / 480, (37, 0)),   # 341 px wide: 37 left, 38 right
])
def test_letterbox_geometry(shape, size, auto, out, gain, pad):
    image = np.full(shape + (3,), 200, np.uint8)
    box = yolo.letterbox(image, size, 32, auto)
    assert box.image.shape == out + (3,)
    assert box.gain == pytest.approx(gain)
    assert box.pad == pad
    assert box.shape == shape
    assert yolo.letterbox_shape(shape, size, 32, auto) == out
    if pad[1]:
        assert (box.image[:pad[1]] == 114).all() and box.image[pad[1] + 1, out[1] // 2, 0] == 200


def test_to_blob_is_nchw_in_unit_range():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 51
    blob = yolo.to_blob([image, image])
    assert blob.shape == (2, 3, 4, 6) and blob.dtype == np.float32
    assert blob[1, 0].min() == 1.0 and blob[0, 1].max() == 0.0 and blob[0, 2, 0, 0] == pytest.approx(0.2)
    assert yolo.to_blob([image], np.float16).dtype == np.float16


@pytest.mark.parametrize('pred, protos, names, end2end, expected', [
    ((1, 84, 8400), None, None, None, ('detect', 80, 0)),
    ((1, 116, 8400), (1, 32, 160, 160), None, None, ('segment', 80, 32)),
    ((1, 300, 6), None, None, None, ('end2end', None, 0)),
    ((1, 300, 38), (1, 32, 160, 160), None, None, ('end2end-segment', None, 32)),
    ((1, 84, None), None, None, None, ('detect', 80, 0)),           # dynamic anchors
    ((1, 10, 6), None, None, None, ('end2end', None, 0)),            # K > 6: end-to-end by shape
    ((1, 10, 6), None, 6, None, ('detect', 6, 0)),                   # 6 names fit [1, 4+6, N=6]
    ((1, 10, 6), None, None, False, ('detect', 6, 0)),               # metadata decides
    ((1, 300, 6), None, None, True, ('end2end', None, 0)),
])
def test_identify_layout(pred, protos, names, end2end, expected):
    assert yolo.identify_layout(pred, protos, names, end2end) == expected


@pytest.mark.parametrize('pred, protos, end2end', [
    ((1, 84), None, None),
    ((1, 4, 8400), None, None),
    ((1, 36, 8400), (1, 32, 160, 160), None),   # no room for classes
    ((1, 84, 8400), None, True),                # metadata says end-to-end, shape says no
    ((1, 300, 7), None, True),
    ((1, 116, 8400), (1, 32, 160), None),
])
def test_unknown_layouts_are_model_errors(pred, protos, end2end):
    with pytest.raises(ModelError, match='unknown output layout'):
        yolo.identify_layout(pred, protos, None, end2end)


def reference_nms(boxes, scores, thr):
    """Textbook O(n^2) greedy NMS, one box at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        ok = True
        for j in keep:
            xx1, yy1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            xx2, yy2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
            union = ((boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
                     + (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1]) - inter)
            if inter / union > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_nms_matches_the_textbook_algorithm(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (300, 2))
    wh = rng.uniform(10, 60, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.uniform(0, 1, 300)
    classes = rng.integers(0, 4, 300)
    assert yolo.nms(boxes, scores, 0.45).tolist() == reference_nms(boxes, scores, 0.45)
    kept = yolo.nms(boxes, scores, 0.45, classes)
    expected = []
    for c in range(4):
        idx = np.flatnonzero(classes == c)
        expected += [int(idx[i]) for i in reference_nms(boxes[idx], scores[idx], 0.45)]
    assert sorted(kept.tolist()) == sorted(expected)
    assert list(scores[kept]) == sorted(scores[kept], reverse=True)
    assert len(yolo.nms(boxes, scores, 0.45, classes, max_output=5)) == 5


@pytest.mark.parametrize('block', [1, 7, 64, 256])
def test_blocked_nms_is_exact_for_any_block_size(block):
    rng = np.random.default_rng(block)
    xy = rng.uniform(0, 300, (700, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 120, (700, 2))], 1)
    scores = rng.uniform(0, 1, 700)
    assert yolo.nms(boxes, scores, 0.3, block=block).tolist() == reference_nms(boxes, scores, 0.3)


def test_nms_suppression_chain():
    """Each box overlaps the next (IoU 0.6): greedy keeps every other one, a one-pass matrix NMS would not."""
    boxes = np.array([[4 * i, 0, 4 * i + 16, 10] for i in range(9)], np.float64)   # IoU(i, i+1) = 12/20
    scores = np.linspace(1.0, 0.2, 9)
    assert yolo.nms(boxes, scores, 0.5).tolist() == [0, 2, 4, 6, 8]
    assert reference_nms(boxes, scores, 0.5) == [0, 2, 4, 6, 8]


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert yolo.nms(boxes, scores, 0.5).tolist() == [0, 2]                    # IoU(0,1) = 9/11
    assert yolo.nms(boxes, scores, 0.5, np.array([0, 1, 0, 1])).tolist() == [0, 1, 2]
    assert yolo.nms(boxes, scores, 0.9).tolist() == [0, 1, 2]
    assert yolo.nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_decode_classic_by_hand():
    # 2 classes, 5 candidates: [cx, cy, w, h, s0, s1] per column
    pred = np.array([
        [50, 50, 20, 10, 0.9, 0.1],     # class 0, kept
        [51, 50, 20, 10, 0.8, 0.0],     # duplicate of 0, suppressed
        [51, 50, 20, 10, 0.0, 0.7],     # same place, class 1: kept class-wise
        [200, 100, 40, 40, 0.2, 0.3],   # below 0.25? best 0.3 -> kept, class 1
        [300, 300, 10, 10, 0.2, 0.1],   # best 0.2 < 0.25: dropped
    ], np.float32).T
    cand = yolo.decode_classic(pred, nc=2, nm=0, confidence_threshold=0.25, iou_threshold=0.45,
                               max_detections=10)
    np.testing.assert_allclose(cand.xyxy, [[40, 45, 60, 55], [41, 45, 61, 55], [180, 80, 220, 120]])
    np.testing.assert_allclose(cand.confidence, [0.9, 0.7, 0.3])
    assert cand.class_id.tolist() == [0, 1, 1] and cand.coefficients is None
    agnostic = yolo.decode_classic(pred, 2, 0, 0.25, 0.45, 10, agnostic=True)
    assert agnostic.class_id.tolist() == [0, 1] and agnostic.confidence[1] == pytest.approx(0.3)
    with pytest.raises(ModelError, match=r'expected \[7, N\]'):
        yolo.decode_classic(pred, nc=3, nm=0, confidence_threshold=0.25, iou_threshold=0.45,
                            max_detections=10)


def test_decode_end2end_by_hand():
    pred = np.array([[10, 10, 20, 30, 0.5, 2], [0, 0, 5, 5, 0.9, 0], [0, 0, 0, 0, 0.0, 0]], np.float32)
    cand = yolo.decode_end2end(pred, 0, 0.25, 300)
    assert cand.class_id.tolist() == [0, 2]
    np.testing.assert_allclose(cand.xyxy, [[0, 0, 5, 5], [10, 10, 20, 30]])
    assert len(yolo.decode_end2end(pred, 0, 0.25, 1).xyxy) == 1
    with pytest.raises(ModelError, match=r'expected \[K, 6\]'):
        yolo.decode_end2end(pred[:, :5], 0, 0.25, 300)


def test_scale_boxes_inverts_the_letterbox_and_clips():
    boxes = np.array([[100, 180, 260, 300], [-10, 70, 700, 600]], np.float32)
    out = yolo.scale_boxes(boxes, 2.0, (0, 80), (240, 320))
    np.testing.assert_allclose(out, [[50, 50, 130, 110], [0, 0, 320, 240]])


def test_assemble_masks_from_hand_made_prototypes():
    """One prototype per quadrant of a 64x64 input (16x16 protos); image 32x64 letterboxed with pad 16 top."""
    protos = np.full((2, 16, 16), -10.0, np.float32)
    protos[0, 4:8, 0:8] = 10.0     # input rows 16..31, cols 0..31 -> original rows 0..15, cols 0..31
    protos[1, 8:12, 8:16] = 10.0   # original rows 16..31, cols 32..63
    coefficients = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    boxes = np.array([[0, 0, 64, 32], [0, 0, 64, 32], [0, 0, 20.4, 32]], np.float32)
    masks = yolo.assemble_masks(protos, coefficients, boxes, (64, 64), 1.0, (0, 16), (32, 64))
    assert masks.shape == (3, 32, 64) and masks.dtype == bool
    top_left = np.zeros((32, 64), bool)
    top_left[0:16, 0:32] = True
    bottom_right = np.zeros((32, 64), bool)
    bottom_right[16:32, 32:64] = True
    # bilinear sampling rounds the block corners that have -10 on two sides (see test_detection_backends);
    # the padding rows of the input hold -10 too, so only the corners at the image's left/right edges stay
    top_left[0, 31] = top_left[15, 31] = bottom_right[16, 32] = bottom_right[31, 32] = False
    np.testing.assert_array_equal(masks[0], top_left)
    np.testing.assert_array_equal(masks[1], bottom_right)
    # the same prototype cropped by a narrower box: x2 = 20.4 keeps pixel centres 0.5 .. 19.5
    cropped = top_left.copy()
    cropped[:, 20:] = False
    np.testing.assert_array_equal(masks[2], cropped)
    # a stricter threshold shrinks nothing here (logits are +-10) but a looser one keeps the corners
    loose = yolo.assemble_masks(protos, coefficients[:1], boxes[:1], (64, 64), 1.0, (0, 16), (32, 64), 0.05)
    assert loose[0, 15, 31]
    none = yolo.assemble_masks(protos, coefficients[:0], boxes[:0], (64, 64), 1.0, (0, 16), (32, 64))
    assert none.shape == (0, 32, 64)


@pytest.mark.parametrize('image, message', [
    (np.zeros((4, 4), np.uint8), 'grayscale'),
    (np.zeros((4, 4, 3), np.uint16), '8-bit'),
    (np.zeros((4, 4, 2), np.uint8), r'\(H, W, 3\)'),
    (np.zeros((0, 4, 3), np.uint8), 'non-empty'),
])
def test_check_rgb_image(image, message):
    with pytest.raises(InputError, match=message):
        yolo.check_rgb_image(image)


def test_windowed_mask_assembly_matches_a_full_frame_reference():
    """Per-box windows of the prototypes give the same masks as sampling the whole logit map."""
    import cv2

    rng = np.random.default_rng(3)
    protos = rng.normal(0, 4, (8, 96, 128)).astype(np.float32)      # input 384x512, protos at 1/4
    coefficients = rng.normal(0, 1, (12, 8)).astype(np.float32)
    shape, gain, pad = (300, 420), 512 / 420, (0, 9)                  # 300x420 -> 365x512, 9 px top
    xy = rng.uniform(-20, 400, (12, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 200, (12, 2))], 1).astype(np.float32)
    boxes = yolo.scale_boxes(boxes * gain + [0, 9, 0, 9], gain, pad, shape)
    masks = yolo.assemble_masks(protos, coefficients, boxes, (384, 512), gain, pad, shape, 0.4)
    a, b = gain / 4, (0.5 * gain + np.array(pad)) / 4 - 0.5
    warp = np.array([[a, 0, b[0]], [0, a, b[1]]])
    for i in range(12):
        logits = np.tensordot(coefficients[i], protos, 1)
        full = cv2.warpAffine(logits, warp, (shape[1], shape[0]),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE) > np.log(0.4 / 0.6)
        u, v = np.arange(shape[1]) + 0.5, np.arange(shape[0]) + 0.5
        rows, cols = (v >= boxes[i, 1]) & (v < boxes[i, 3]), (u >= boxes[i, 0]) & (u < boxes[i, 2])
        inside = rows[:, None] & cols[None]
        np.testing.assert_array_equal(masks[i], full & inside)
