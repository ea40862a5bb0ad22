"""Pieces of the replay: output topic table, label and overlay images, obstacle cloud, config, progress."""

import io
from pathlib import Path

import numpy as np
import pytest

from robot_vision.errors import ConfigError, InputError
from robot_vision.replay import ReplaySettings, load_config
from robot_vision.replay.bag import type_hash
from robot_vision.replay.progress import Progress
from robot_vision.ros import conversions as cv
from robot_vision.ros.outputs import instance_label_image, obstacle_points
from robot_vision.ros.topics import OUTPUT_TOPIC_TYPES, OUTPUT_TOPICS, output_topic, resolve
from robot_vision.types import Detections, Tracks, TrackState

ROOT = Path(__file__).resolve().parents[2]


def test_topic_table_is_complete_and_resolves():
    assert len({t.name for t in OUTPUT_TOPICS}) == len(OUTPUT_TOPICS) == 14
    assert OUTPUT_TOPIC_TYPES['best_grasp'] == 'geometry_msgs/msg/PoseStamped'
    assert output_topic('obstacles').frame == 'fixed' and output_topic('label_info').latched
    assert resolve('/robot_vision', 'objects') == '/robot_vision/objects'
    assert resolve('', 'objects') == resolve('/', '/objects') == '/objects'
    with pytest.raises(InputError, match='expected one of'):
        output_topic('nope')


def test_vision_msgs_definitions_hash_like_the_upstream_package():
    """The .msg definitions written into bags give the upstream type hash (wire compatibility)."""
    assert type_hash('vision_msgs/msg/Detection2DArray') == (
        'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968')
    assert type_hash('tf2_msgs/msg/TFMessage') == (
        'RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087')


def _dets(boxes, masks=None):
    n = len(boxes)
    return Detections(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4), confidence=np.ones(n),
                      class_id=np.zeros(n), mask=masks)


def test_instance_labels_from_masks_keep_small_objects_on_top():
    big = np.zeros((6, 8), bool)
    big[1:5, 1:7] = True
    small = np.zeros((6, 8), bool)
    small[2:4, 2:4] = True
    labels = instance_label_image(_dets([[2, 2, 4, 4], [1, 1, 7, 5]], np.stack([small, big])), (6, 8))
    assert labels.dtype == np.uint16
    assert labels[3, 3] == 1 and labels[1, 6] == 2 and labels[0, 0] == 0
    assert instance_label_image(_dets(np.zeros((0, 4))), (6, 8)).sum() == 0
    # With 2D track ids the pixels carry the track ids, as Detection2D.id does.
    tracked = Detections(xyxy=[[2, 2, 4, 4], [1, 1, 7, 5]], confidence=[1, 1], class_id=[0, 0],
                         mask=np.stack([small, big]), tracker_id=[40, 7])
    labels = instance_label_image(tracked, (6, 8))
    assert labels[3, 3] == 40 and labels[1, 6] == 7
    assert [d.id for d in cv.detections_to_msg(tracked, 'cam', 0.0).detections] == ['40', '7']


def test_instance_labels_from_boxes_and_size_checks():
    labels = instance_label_image(_dets([[0, 0, 3, 2]]), (4, 5))
    assert labels[:2, :3].tolist() == [[1, 1, 1], [1, 1, 1]] and labels.sum() == 6
    with pytest.raises(InputError, match='expected masks of 4x5'):
        instance_label_image(_dets([[0, 0, 1, 1]], np.zeros((1, 3, 3), bool)), (4, 5))


def test_obstacle_points_lie_on_the_track_boxes():
    tracks = Tracks(track_id=[1, 2], position=[[1, 0, 0.1], [3, 3, 0.2]], velocity=np.zeros((2, 3)),
                    covariance=np.tile(np.eye(6), (2, 1, 1)), size=[[0.2, 0.1, 0.2], [0.4, 0.4, 0.4]],
                    yaw=[np.pi / 2, 0.0], class_id=[0, 0], confidence=[1, 1],
                    state=[TrackState.CONFIRMED, TrackState.DELETED], moving=[False, False], hits=[3, 3],
                    last_seen=[0.0, 0.0])
    points = obstacle_points(tracks, spacing=0.05)
    assert points.dtype == np.float32 and len(points) > 20
    local = points - [1, 0, 0.1]
    # yaw 90 degrees: the box's x extent (0.2) lies along the fixed y axis
    assert np.allclose(np.abs(local).max(axis=0), [0.05, 0.1, 0.1], atol=1e-6)
    assert len(obstacle_points(Tracks.empty())) == 0


def test_config_file_sections_and_node_keys():
    settings, node = load_config(str(ROOT / 'config' / 'robot_vision.yaml'))
    assert node['sync_slop_s'] > 0 and 'color_topic' in node
    assert settings.fixed_frame
    with pytest.raises(ConfigError):
        ReplaySettings(slop=-1.0)
    with pytest.raises(ConfigError, match='roles'):
        ReplaySettings(topics={'colour': '/x'})


def test_typo_in_config_is_an_error(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('robot_vision:\n  ros__parameters:\n    sync_slop: 0.1\n')
    with pytest.raises(ConfigError, match='sync_slop'):
        load_config(str(path))


def test_progress_lines_on_a_pipe():
    stream = io.StringIO()
    bar = Progress(20, stream)
    for _ in range(20):
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 12
    assert lines[-1].startswith('[########################] 20/20 frames 100%') and 'ETA' in lines[-1]
