"""End to end: small torch nets with YOLO layouts, exported to ONNX/TorchScript, decoded to known boxes."""

import cv2
import numpy as np
import pytest
import torch

from robot_vision.detection import DetectorSettings, available_detectors, create_detector
from robot_vision.detection.testing_models import (COLOUR_SCORES, ColourBoxNet, export_onnx,
                                                   export_torchscript, ultralytics_metadata)
from robot_vision.errors import ConfigError, InputError, ModelError
from robot_vision.types import CameraIntrinsics, RGBDFrame

NAMES = ['red', 'green', 'blue']

# (x1, y1, x2, y2) in pixels of a 480x640 (HxW) image; multiples of 4 so masks are exact.
RED = (100, 60, 260, 180)
GREEN = (400, 300, 520, 420)

LAYOUTS = {  # name -> (ColourBoxNet head, nm, task, end2end metadata)
    'detect': ('detect', 0, 'detect', None),
    'segment': ('detect', 4, 'segment', None),
    'end2end': ('end2end', 0, 'detect', True),
    'end2end-segment': ('end2end', 4, 'segment', True),
}


def scene(height=480, width=640, boxes=((0, RED), (1, GREEN))):
    image = np.zeros((height, width, 3), np.uint8)
    for channel, (x1, y1, x2, y2) in boxes:
        image[y1:y2, x1:x2] = 0
        image[y1:y2, x1:x2, channel] = 255
    return image


def box_mask(shape, box, round_corners=False):
    """The rectangle's pixels; with ``round_corners`` minus its 4 corner pixels.

    At gain 1 the prototypes (+10 inside, -10 outside, 4 px cells) are sampled at proto
    coordinate u/4 - 0.375, so an edge pixel sits 0.375 cells from the edge: 20 * 0.625 - 10 =
    +2.5 (on), and a corner pixel gets 20 * 0.625**2 - 10 = -2.19 (off): bilinear rounds corners.
    At gain 2 the weights are 0.75 and 20 * 0.75**2 - 10 = +1.25 keeps the corners.
    """
    mask = np.zeros(shape, bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    if round_corners:
        for y in (box[1], box[3] - 1):
            for x in (box[0], box[2] - 1):
                mask[y, x] = False
    return mask


def frame_of(image):
    h, w = image.shape[:2]
    return RGBDFrame(CameraIntrinsics(w, h, 500.0, 500.0, w / 2, h / 2), color=image)


def export(tmp_path, backend, layout, size=(640, 640), dynamic=False, names=NAMES, nc=3, metadata=True):
    head, nm, task, end2end = LAYOUTS[layout]
    net = ColourBoxNet(head, nc=nc, nm=nm)
    meta = ultralytics_metadata(names, size, task, end2end) if metadata else None
    shape = (1, 3) + tuple(size)
    if backend == 'onnx':
        return export_onnx(net, tmp_path / f'{layout}.onnx', shape, meta, dynamic=dynamic)
    return export_torchscript(net, tmp_path / f'{layout}.torchscript', shape, meta)


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """Every (backend, layout) model, exported once."""
    root = tmp_path_factory.mktemp('models')
    out = {}
    for backend in ('onnx', 'torchscript'):
        for layout in LAYOUTS:
            folder = root / backend
            folder.mkdir(exist_ok=True)
            out[backend, layout] = export(folder, backend, layout)
    return out


def test_registry_lists_backends():
    assert {'onnx', 'torchscript'} <= set(available_detectors())
    with pytest.raises(ConfigError, match='expected one of'):
        create_detector('tensorrt', DetectorSettings())


@pytest.mark.parametrize('backend', ['onnx', 'torchscript'])
@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_known_boxes_and_masks_round_trip(models, backend, layout, artifacts_dir):
    settings = DetectorSettings(model_path=str(models[backend, layout]), backend=backend)
    detector = create_detector(backend, settings)
    assert detector.layout == layout
    assert detector.class_names == NAMES
    assert detector.label_map() == {0: 'red', 1: 'green', 2: 'blue'}
    assert detector.has_masks == (LAYOUTS[layout][1] > 0)
    assert not detector.needs_depth
    image = scene()  # 480x640 into a 640x640 input: gain 1, 80 px of padding top and bottom
    dets = detector.detect(frame_of(image))
    assert dets.class_id.tolist() == [0, 1]
    np.testing.assert_allclose(dets.confidence, COLOUR_SCORES[:2], atol=1e-6)
    np.testing.assert_allclose(dets.xyxy, [RED, GREEN], atol=1e-4)
    if detector.has_masks:
        assert dets.mask.shape == (2, 480, 640)
        np.testing.assert_array_equal(dets.mask[0], box_mask((480, 640), RED, True))
        np.testing.assert_array_equal(dets.mask[1], box_mask((480, 640), GREEN, True))
        if backend == 'onnx' and layout == 'segment':
            overlay = image.copy()
            overlay[dets.mask.any(0)] //= 2
            for x1, y1, x2, y2 in dets.xyxy.astype(int):
                cv2.rectangle(overlay, (x1, y1), (x2 - 1, y2 - 1), (255, 255, 255), 1)
            cv2.imwrite(str(artifacts_dir / 'segment_overlay.png'), overlay[..., ::-1])
    else:
        assert dets.mask is None
    detector.close()


@pytest.mark.parametrize('layout', ['detect', 'segment'])
def test_letterbox_scaling_on_a_small_non_square_image(models, layout):
    """240x320 into 640x640: gain 2, pad 80 px top; boxes and masks come back in the small image's pixels."""
    detector = create_detector('onnx', DetectorSettings(model_path=str(models['onnx', layout])))
    red, green = (50, 30, 130, 90), (200, 150, 260, 210)
    dets = detector.detect_image(scene(240, 320, ((0, red), (1, green))))
    np.testing.assert_allclose(dets.xyxy, [red, green], atol=1e-4)
    if detector.has_masks:
        np.testing.assert_array_equal(dets.mask[0], box_mask((240, 320), red))
        np.testing.assert_array_equal(dets.mask[1], box_mask((240, 320), green))


def test_letterbox_with_a_non_integer_gain(models):
    """300x500 into 640x640 (gain 1.28): boxes within a pixel, masks match the drawn rectangle closely."""
    detector = create_detector('onnx', DetectorSettings(model_path=str(models['onnx', 'segment'])))
    red = (40, 50, 200, 170)
    dets = detector.detect_image(scene(300, 500, ((0, red),)))
    assert dets.class_id.tolist() == [0]
    np.testing.assert_allclose(dets.xyxy[0], red, atol=1.0)
    truth = box_mask((300, 500), red)
    iou = (dets.mask[0] & truth).sum() / (dets.mask[0] | truth).sum()
    assert iou > 0.97


def test_dynamic_size_and_batch(tmp_path):
    path = export(tmp_path, 'onnx', 'segment', size=(320, 320), dynamic=True)
    # dynamic_shape: 480x640 scaled into 640x640 is letterboxed to 480x640 (no padding at all)
    detector = create_detector('onnx', DetectorSettings(model_path=str(path), input_size=(640, 640),
                                                        dynamic_shape=True))
    assert detector.input_size == (640, 640)
    first, second = scene(), scene(boxes=((2, (32, 32, 96, 128)),))
    results = detector.detect_images([first, second])
    np.testing.assert_allclose(results[0].xyxy, [RED, GREEN], atol=1e-4)
    np.testing.assert_array_equal(results[0].mask[1], box_mask((480, 640), GREEN, True))
    assert results[1].class_id.tolist() == [2]
    np.testing.assert_allclose(results[1].xyxy, [(32, 32, 96, 128)], atol=1e-4)
    # without an explicit size the metadata imgsz (320x320) is used: gain 0.5, boxes still in original pixels
    small = create_detector('onnx', DetectorSettings(model_path=str(path)))
    assert small.input_size == (320, 320)
    np.testing.assert_allclose(small.detect_image(first).xyxy, [RED, GREEN], atol=1e-4)
    # a non-square network input
    wide = create_detector('onnx', DetectorSettings(model_path=str(path), input_size=(256, 416)))
    np.testing.assert_allclose(wide.detect_image(first).xyxy, [RED, GREEN], atol=1.0)


def test_torchscript_dynamic_input_size(models):
    detector = create_detector('torchscript', DetectorSettings(
        model_path=str(models['torchscript', 'segment']), backend='torchscript', input_size=(480, 640)))
    dets = detector.detect_image(scene())
    np.testing.assert_allclose(dets.xyxy, [RED, GREEN], atol=1e-4)
    np.testing.assert_array_equal(dets.mask[0], box_mask((480, 640), RED, True))


def test_agnostic_nms_merges_overlapping_classes(models):
    overlapping = scene(boxes=((0, RED), (1, (110, 70, 270, 190))))
    path = str(models['onnx', 'detect'])
    per_class = create_detector('onnx', DetectorSettings(model_path=path)).detect_image(overlapping)
    assert per_class.class_id.tolist() == [0, 1]
    agnostic = create_detector('onnx', DetectorSettings(model_path=path, agnostic_nms=True))
    agnostic = agnostic.detect_image(overlapping)
    assert agnostic.class_id.tolist() == [0]


def test_thresholds_and_max_detections(models):
    path = str(models['onnx', 'detect'])
    strict = create_detector('onnx', DetectorSettings(model_path=path, confidence_threshold=0.85))
    assert strict.detect_image(scene()).class_id.tolist() == [0]
    one = create_detector('onnx', DetectorSettings(model_path=path, max_detections=1))
    assert len(one.detect_image(scene())) == 1
    # with NMS off (IoU threshold 1) the shifted duplicates survive
    loose = create_detector('onnx', DetectorSettings(model_path=path, iou_threshold=1.0))
    assert len(loose.detect_image(scene())) == 4
    assert len(loose.detect_image(np.zeros((480, 640, 3), np.uint8))) == 0


def test_labels_file_and_class_count_mismatch(tmp_path):
    names80 = [f'thing{i}' for i in range(80)]
    path = export(tmp_path, 'onnx', 'detect', names=names80, nc=80)
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(n.upper() for n in names80) + '\n')
    detector = create_detector('onnx', DetectorSettings(model_path=str(path), labels_file=str(labels)))
    assert detector.class_names[:2] == ['THING0', 'THING1'] and len(detector.class_names) == 80
    short = tmp_path / 'short.yaml'
    short.write_text('names:\n  0: red\n  1: green\n  2: blue\n')
    with pytest.raises(ModelError, match='80 class scores .* 3 names'):
        create_detector('onnx', DetectorSettings(model_path=str(path), labels_file=str(short)))
    # metadata names that disagree with the output width
    bad = export(tmp_path / '..', 'onnx', 'detect', names=NAMES + ['extra'], nc=3)
    with pytest.raises(ModelError, match='unknown output layout|class count'):
        create_detector('onnx', DetectorSettings(model_path=str(bad)))


def test_no_metadata_gives_generic_names(tmp_path):
    path = export(tmp_path, 'onnx', 'detect', metadata=False)
    detector = create_detector('onnx', DetectorSettings(model_path=str(path)))
    assert detector.class_names == ['class_0', 'class_1', 'class_2']
    assert detector.input_size == (640, 640)


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', ['onnx', 'torchscript'])
def test_missing_and_corrupt_model_files(tmp_path, backend):
    with pytest.raises(ModelError, match='not found'):
        create_detector(backend, DetectorSettings(model_path=str(tmp_path / 'nope.onnx'), backend=backend))
    corrupt = tmp_path / 'corrupt.bin'
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match='cannot load'):
        create_detector(backend, DetectorSettings(model_path=str(corrupt), backend=backend))
    with pytest.raises(ConfigError, match='model_path'):
        create_detector(backend, DetectorSettings(backend=backend))


class _Rank3(torch.nn.Module):
    def forward(self, x):
        return x.mean(1, keepdim=True)


class _Gray(torch.nn.Module):
    def forward(self, x):
        return x.mean((1, 2, 3)).reshape(-1, 1, 1).expand(-1, 7, 16)


class _FlatOutput(torch.nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def test_wrong_input_rank_channels_and_output_layout(tmp_path):
    rank3 = export_onnx(_Rank3(), tmp_path / 'rank3.onnx', (1, 3, 64))
    with pytest.raises(ModelError, match=r'expected an image tensor \[B, 3, H, W\]'):
        create_detector('onnx', DetectorSettings(model_path=str(rank3)))
    gray = export_onnx(_Gray(), tmp_path / 'gray.onnx', (1, 1, 64, 64))
    with pytest.raises(ModelError, match=r'\[B, 3, H, W\].*\[1, 1, 64, 64\]'):
        create_detector('onnx', DetectorSettings(model_path=str(gray)))
    flat = export_onnx(_FlatOutput(), tmp_path / 'flat.onnx', (1, 3, 64, 64))
    with pytest.raises(ModelError, match='unknown output layout'):
        create_detector('onnx', DetectorSettings(model_path=str(flat)))


def test_fixed_model_rejects_another_input_size(models):
    with pytest.raises(ModelError, match='fixed input of 640x640'):
        create_detector('onnx', DetectorSettings(model_path=str(models['onnx', 'detect']),
                                                 input_size=(320, 320)))


def test_torchscript_that_fails_at_the_requested_size(tmp_path):
    class Needs64(torch.nn.Module):
        def forward(self, x):
            return x.reshape(1, 3, 64 * 64)[:, :, :4096].reshape(1, 12, 1024)
    path = export_torchscript(Needs64(), tmp_path / 'fixed.torchscript', (1, 3, 64, 64))
    with pytest.raises(ModelError, match='dry run at load time failed'):
        create_detector('torchscript', DetectorSettings(model_path=str(path), backend='torchscript'))


def test_unavailable_provider_is_a_clear_error(models):
    with pytest.raises(ModelError, match="not available.*available providers: .*'CPUExecutionProvider'"):
        create_detector('onnx', DetectorSettings(model_path=str(models['onnx', 'detect']),
                                                 providers=('TensorrtExecutionProvider',)))


@pytest.mark.parametrize('image, message', [
    (np.zeros((480, 640), np.uint8), 'grayscale'),
    (np.zeros((480, 640, 1), np.uint8), 'grayscale'),
    (np.zeros((480, 640, 3), np.uint16), '8-bit'),
    (np.zeros((480, 640, 3), np.float32), '8-bit'),
    (np.zeros((480, 640, 4), np.uint8), r'\(H, W, 3\)'),
])
def test_bad_images_are_input_errors(models, image, message):
    detector = create_detector('onnx', DetectorSettings(model_path=str(models['onnx', 'detect'])))
    with pytest.raises(InputError, match=message):
        detector.detect_image(image)


def test_frame_without_colour_is_an_input_error(models):
    detector = create_detector('onnx', DetectorSettings(model_path=str(models['onnx', 'detect'])))
    depth_only = RGBDFrame(CameraIntrinsics(64, 48, 50.0, 50.0, 32, 24), depth=np.ones((48, 64), np.float32))
    with pytest.raises(InputError, match='no colour image'):
        detector.detect(depth_only)


def test_fixed_batch_model_is_fed_full_batches(tmp_path):
    """A model exported with batch 2: three images go in two runs, the last one padded."""
    net = ColourBoxNet('detect', nc=3, nm=4)
    path = export_onnx(net, tmp_path / 'batch2.onnx', (2, 3, 320, 320),
                       ultralytics_metadata(NAMES, (320, 320), 'segment', batch=2))
    detector = create_detector('onnx', DetectorSettings(model_path=str(path)))
    images = [scene(), scene(boxes=((1, GREEN),)), scene(boxes=((2, RED),))]
    results = detector.detect_images(images)
    assert [r.class_id.tolist() for r in results] == [[0, 1], [1], [2]]
    np.testing.assert_allclose(results[2].xyxy, [RED], atol=1e-4)
