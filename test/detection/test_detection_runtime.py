"""Runtime options of the YOLO backends: ONNX Runtime session options, input shape choice, TorchScript errors."""

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from robot_vision.detection import DetectorSettings, create_detector, yolo
from robot_vision.detection.onnx_backend import SPINNING_KEYS
from robot_vision.detection.testing_models import (ColourBoxNet, YoloNano, calibrate_detections, export_onnx,
                                                   export_torchscript, ultralytics_metadata)
from robot_vision.errors import ConfigError, ModelError

NAMES = ['red', 'green', 'blue']
RED, GREEN = (100, 60, 260, 180), (400, 300, 520, 420)


def scene(height=480, width=640):
    image = np.zeros((height, width, 3), np.uint8)
    for channel, (x1, y1, x2, y2) in ((0, RED), (1, GREEN)):
        image[y1:y2, x1:x2, channel] = 255
    return image


@pytest.fixture(scope='module')
def onnx_models(tmp_path_factory):
    """A segmentation ColourBoxNet exported with a fixed 640x640 input and with a dynamic one."""
    root = tmp_path_factory.mktemp('runtime')
    meta = ultralytics_metadata(NAMES, (640, 640), 'segment')
    net = ColourBoxNet('detect', nm=4)
    return {'static': export_onnx(net, root / 'static.onnx', (1, 3, 640, 640), meta),
            'dynamic': export_onnx(net, root / 'dynamic.onnx', (1, 3, 640, 640), meta, dynamic=True)}


def test_session_options_are_applied(onnx_models):
    settings = DetectorSettings(model_path=str(onnx_models['static']), intra_op_num_threads=1,
                                inter_op_num_threads=2, execution_mode='parallel', memory_arena=False)
    detector = create_detector('onnx', settings)
    options = detector.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 2
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert not options.enable_cpu_mem_arena and not options.enable_mem_pattern
    np.testing.assert_allclose(detector.detect_image(scene()).xyxy, [RED, GREEN], atol=1e-4)


def test_spinning_is_off_by_default_and_can_be_turned_on(onnx_models):
    default = create_detector('onnx', DetectorSettings(model_path=str(onnx_models['static'])))
    options = default.session.get_session_options()
    assert [options.get_session_config_entry(key) for key in SPINNING_KEYS] == ['0', '0']
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.enable_cpu_mem_arena and options.enable_mem_pattern
    spinning = create_detector('onnx', DetectorSettings(model_path=str(onnx_models['static']), allow_spinning=True))
    options = spinning.session.get_session_options()
    assert [options.get_session_config_entry(key) for key in SPINNING_KEYS] == ['1', '1']


@pytest.mark.parametrize('field, value', [
    ('intra_op_num_threads', -1), ('inter_op_num_threads', 1.5), ('inter_op_num_threads', True),
    ('execution_mode', 'fast'), ('allow_spinning', 'no'), ('memory_arena', 1), ('dynamic_shape', 'yes'),
])
def test_runtime_settings_reject_bad_values(field, value):
    with pytest.raises(ConfigError, match=f'DetectorSettings.{field}: expected'):
        DetectorSettings(**{field: value})


def test_dynamic_shape_follows_the_model(onnx_models):
    """A dynamic-size export gets rectangular inputs without any setting; a fixed one stays square."""
    image = scene()
    dynamic = create_detector('onnx', DetectorSettings(model_path=str(onnx_models['dynamic'])))
    assert dynamic.dynamic_shape and dynamic.input_size == (640, 640)
    assert dynamic._letterbox(image).image.shape == (480, 640, 3)
    static = create_detector('onnx', DetectorSettings(model_path=str(onnx_models['static'])))
    assert not static.dynamic_shape and static._letterbox(image).image.shape == (640, 640, 3)
    forced = create_detector('onnx', DetectorSettings(model_path=str(onnx_models['dynamic']), dynamic_shape=False))
    assert not forced.dynamic_shape and forced._letterbox(image).image.shape == (640, 640, 3)
    results = [d.detect_image(image) for d in (dynamic, static, forced)]
    for result in results:   # the same boxes and masks whichever input shape ran
        np.testing.assert_allclose(result.xyxy, [RED, GREEN], atol=1e-4)
        np.testing.assert_array_equal(result.mask, results[0].mask)


def test_dynamic_shape_on_a_fixed_size_model_is_a_model_error(onnx_models):
    with pytest.raises(ModelError, match='dynamic_shape: the model has a fixed input of 640x640'):
        create_detector('onnx', DetectorSettings(model_path=str(onnx_models['static']), dynamic_shape=True))


class FixedSize(torch.nn.Module):
    """A net that only runs at the size it is built for (as a traced export): [1, 7, 256] out."""

    def __init__(self, height, width):
        super().__init__()
        self.size = 3 * height * width

    def forward(self, x):
        return x.reshape(1, self.size)[:, :7 * 256].reshape(1, 7, 256)


def test_torchscript_error_names_the_export_size_and_gives_the_full_cause(tmp_path):
    meta = ultralytics_metadata(NAMES, (64, 96), 'detect')
    path = export_torchscript(FixedSize(64, 96), tmp_path / 'fixed.torchscript', (1, 3, 64, 96), meta)
    assert create_detector('torchscript', DetectorSettings(model_path=str(path), backend='torchscript'))
    with pytest.raises(ModelError) as error:
        create_detector('torchscript', DetectorSettings(model_path=str(path), backend='torchscript',
                                                        input_size=(128, 128)))
    message = str(error.value)
    assert 'exported at 64x96' in message and 'set input_size to [64, 96]' in message
    assert 'not 128x128' in message
    # the runtime's own words, in full: TorchScript's traceback ends with the failing reshape
    assert "shape '[1, 18432]' is invalid for input of size 49152" in message
    assert len(message) > 400


def test_torchscript_dynamic_shape_is_checked_at_load_time(tmp_path):
    """dynamic_shape=True on a fixed-size trace fails when loading (a 4:3 dry run), not on the first frame."""
    meta = ultralytics_metadata(NAMES, (128, 128), 'detect')
    path = export_torchscript(FixedSize(128, 128), tmp_path / 'fixed.torchscript', (1, 3, 128, 128), meta)
    plain = create_detector('torchscript', DetectorSettings(model_path=str(path), backend='torchscript'))
    assert not plain.dynamic_shape   # TorchScript records no input shape: square by default
    with pytest.raises(ModelError, match=r'a dry run at load time failed on an input of shape \[1, 3, 96, 128\].*'
                                         r'exported at 128x128.*dynamic_shape to false'):
        create_detector('torchscript', DetectorSettings(model_path=str(path), backend='torchscript',
                                                        dynamic_shape=True))


def test_torchscript_is_frozen_and_matches_eager(tmp_path):
    """The frozen module decodes the same boxes and masks as the network in eager mode."""
    net = ColourBoxNet('detect', nm=4)
    path = export_torchscript(net, tmp_path / 'seg.torchscript', (1, 3, 640, 640),
                              ultralytics_metadata(NAMES, (640, 640), 'segment'))
    detector = create_detector('torchscript', DetectorSettings(model_path=str(path), backend='torchscript'))
    assert isinstance(detector._model, torch.jit.ScriptModule) and not list(detector._model.parameters())
    image = scene()
    result = detector.detect_image(image)
    box = detector._letterbox(image)
    with torch.inference_mode():
        pred, protos = net(torch.from_numpy(yolo.to_blob([box.image])))
    eager = detector.decoder(pred[0].numpy(), protos[0].numpy(), box, box.image.shape[:2])
    np.testing.assert_allclose(result.xyxy, eager.xyxy, atol=1e-4)
    np.testing.assert_array_equal(result.mask, eager.mask)
    np.testing.assert_array_equal(result.class_id, eager.class_id)


def test_runtime_options_are_node_parameters():
    """Every DetectorSettings field is a ``detector.*`` parameter of the nodes; values round-trip."""
    params = pytest.importorskip('robot_vision.ros.params', reason='needs rclpy for the node parameter code')
    leaves = {leaf.name: leaf.default for leaf in params.settings_leaves()}
    assert leaves['detector.allow_spinning'] is False and leaves['detector.dynamic_shape'] is None
    assert leaves['detector.intra_op_num_threads'] == 0 and leaves['detector.inter_op_num_threads'] == 0
    assert leaves['detector.execution_mode'] == 'sequential' and leaves['detector.memory_arena'] is True
    values = {'detector.allow_spinning': True, 'detector.intra_op_num_threads': 1,
              'detector.execution_mode': 'parallel', 'detector.dynamic_shape': False}
    detector = params.settings_from_values(values, params.settings_leaves()).detector
    assert (detector.allow_spinning, detector.intra_op_num_threads, detector.execution_mode,
            detector.dynamic_shape) == (True, 1, 'parallel', False)


def test_ultralytics_comparison_skips_cleanly_without_ultralytics():
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    if importlib.util.find_spec('ultralytics') is not None:
        pytest.skip('ultralytics is importable here: the comparison would run (a benchmark, not a test)')
    script = Path(__file__).resolve().parents[2] / 'benchmarks' / 'compare_ultralytics.py'
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'skipped, ultralytics is not importable' in done.stdout


def test_yolo_nano_segmenter_calibrated_to_a_realistic_count(tmp_path):
    """The YOLO-n-sized segmenter of the benchmarks: YOLO-seg layout, and calibrated to about N detections."""
    rng = np.random.default_rng(0)
    # noise smoothed into blobs, so that the untrained net sees some structure
    image = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 3)
    torch.manual_seed(0)
    net = YoloNano(nm=32).eval()
    count = calibrate_detections(net, image, 12)
    assert 12 <= count <= 16
    with torch.no_grad():
        pred, protos = net(torch.zeros(1, 3, 96, 128))
    assert tuple(pred.shape) == (1, 4 + 80 + 32, 12 * 16 + 6 * 8 + 3 * 4) and tuple(protos.shape) == (1, 32, 24, 32)
    path = export_onnx(net, tmp_path / 'nano-seg.onnx', (1, 3, 96, 128),
                       ultralytics_metadata([f'c{i}' for i in range(80)], (96, 128), 'segment'))
    detector = create_detector('onnx', DetectorSettings(model_path=str(path)))
    result = detector.detect_image(image)
    assert detector.layout == 'segment' and result.mask.shape == (len(result), 96, 128)
    assert abs(len(result) - count) <= 2

