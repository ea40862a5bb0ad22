"""Detector settings validation, Ultralytics metadata parsing and labels files."""

import json

import pytest

from robot_vision.detection import (DetectorSettings, label_map, load_labels_file, names_from_value,
                                    parse_metadata)
from robot_vision.detection.labels import ModelMetadata, resolve_class_names
from robot_vision.errors import ConfigError, ModelError


def test_settings_defaults_and_normalisation():
    settings = DetectorSettings(input_size=[480, 640], providers='CPUExecutionProvider')
    assert settings.input_size == (480, 640) and settings.providers == ('CPUExecutionProvider',)
    assert DetectorSettings(input_size=320).input_size == (320, 320)
    assert DetectorSettings().confidence_threshold == 0.25 and DetectorSettings().backend == 'onnx'


@pytest.mark.parametrize('field, value', [
    ('confidence_threshold', 1.5), ('confidence_threshold', 'high'), ('iou_threshold', -0.1),
    ('max_detections', 0), ('max_detections', 2.5), ('max_candidates', True), ('stride', 0),
    ('intra_op_num_threads', -1), ('mask_threshold', 1.0), ('mask_threshold', 0.0), ('pad_value', 256),
    ('input_size', (0, 640)), ('input_size', (1, 2, 3)), ('input_size', 'big'), ('backend', ''),
    ('providers', ()), ('providers', ('',)), ('model_path', None), ('agnostic_nms', 'yes'),
])
def test_settings_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f'DetectorSettings.{field}: expected'):
        DetectorSettings(**{field: value})


def test_ultralytics_onnx_metadata_strings():
    """ONNX metadata_props hold str(python_value), as the Ultralytics exporter writes them."""
    props = {'names': "{0: 'person', 1: 'bicycle', 2: \"traffic light\"}", 'imgsz': '[384, 640]',
             'stride': '32', 'task': 'segment', 'end2end': 'True', 'batch': '1', 'args': "{'half': False}"}
    meta = parse_metadata(props)
    assert meta == ModelMetadata(names=['person', 'bicycle', 'traffic light'], imgsz=(384, 640), stride=32,
                                 task='segment', end2end=True, batch=1)
    assert parse_metadata({}) == ModelMetadata()


def test_torchscript_config_json():
    """TorchScript config.txt is json.dumps(metadata): int keys become strings."""
    config = json.loads(json.dumps({'names': {0: 'cup', 1: 'bowl'}, 'imgsz': [640, 640], 'stride': 32,
                                    'end2end': False}))
    meta = parse_metadata(config)
    assert meta.names == ['cup', 'bowl'] and meta.end2end is False and meta.imgsz == (640, 640)


def test_names_are_parsed_as_literals_never_evaluated():
    with pytest.raises(ModelError, match='literal'):
        names_from_value("__import__('os').system('echo hacked')")
    with pytest.raises(ModelError, match='class ids 0..1'):
        names_from_value({0: 'a', 2: 'b'})
    assert names_from_value('["a", "b"]') == ['a', 'b']


def test_labels_files(tmp_path):
    txt = tmp_path / 'labels.txt'
    txt.write_text('cup\n  bowl  \n\nmug\n')
    assert load_labels_file(str(txt)) == ['cup', 'bowl', 'mug']
    yaml_file = tmp_path / 'data.yaml'
    yaml_file.write_text('path: ../datasets\nnames:\n  0: cup\n  1: bowl\n')
    assert load_labels_file(str(yaml_file)) == ['cup', 'bowl']
    yaml_list = tmp_path / 'list.yml'
    yaml_list.write_text('- cup\n- bowl\n')
    assert load_labels_file(str(yaml_list)) == ['cup', 'bowl']
    json_file = tmp_path / 'names.json'
    json_file.write_text('{"0": "cup", "1": "bowl"}')
    assert load_labels_file(str(json_file)) == ['cup', 'bowl']
    assert label_map(['cup', 'bowl']) == {0: 'cup', 1: 'bowl'}


@pytest.mark.parametrize('name, content, message', [
    ('missing.txt', None, 'existing file'),
    ('empty.txt', '\n\n', 'at least one'),
    ('bad.json', '{"0": ', 'cannot parse'),
    ('bad.yaml', 'names: [a, b', 'cannot parse'),
    ('gaps.yaml', 'names: {0: a, 5: b}', 'class ids'),
])
def test_bad_labels_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_labels_file(str(path))


def test_resolve_class_names(tmp_path):
    meta = ModelMetadata(names=['a', 'b'])
    assert resolve_class_names(2, meta) == ['a', 'b']
    assert resolve_class_names(3, ModelMetadata()) == ['class_0', 'class_1', 'class_2']
    with pytest.raises(ModelError, match='outputs 3 class scores but the model metadata names lists 2'):
        resolve_class_names(3, meta)
    labels = tmp_path / 'l.txt'
    labels.write_text('x\ny\nz\n')
    assert resolve_class_names(3, meta, str(labels)) == ['x', 'y', 'z']
