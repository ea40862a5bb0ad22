"""Bad input to the replay: damaged bags, missing topics, mismatched or unknown images, unsorted stamps."""

import json
import shutil

import numpy as np
import pytest
from bagtools import stamped_frames, write_bag
from sensor_msgs.msg import Image

from robot_vision.cli import main as cli_main
from robot_vision.datasets import load_pcl_sequence
from robot_vision.errors import InputError
from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.bag import BagSink, storage_file
from robot_vision.ros.conversions import make_header, numpy_to_image

QUIET = ReplaySettings(gallery_size=1)


@pytest.fixture(scope='module')
def frames(shared_data):
    return stamped_frames(load_pcl_sequence(shared_data / 'pcl_kinect' / 'sequence'))


def _cli(args, capsys):
    code = cli_main(args + ['--quiet'])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_corrupt_file_is_a_clear_error_with_exit_code_1(tmp_path, capsys):
    bag = tmp_path / 'noise.mcap'
    bag.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    code, _, err = _cli(['replay', str(bag), '--out', str(tmp_path / 'out')], capsys)
    assert code == 1
    assert 'could not open it' in err and 'noise.mcap' in err


def test_missing_bag_is_a_clear_error(tmp_path, capsys):
    code, _, err = _cli(['replay', str(tmp_path / 'nothing.mcap'), '--out', str(tmp_path / 'out')], capsys)
    assert code == 1 and 'does not exist' in err


def test_truncated_mcap_keeps_the_frames_before_the_damage(frames, tmp_path):
    bag = write_bag(tmp_path / 'input', frames)
    data = storage_file(bag).read_bytes()
    cut = tmp_path / 'cut.mcap'
    cut.write_bytes(data[:int(len(data) * 0.7)])
    run = replay(cut, tmp_path / 'out', settings=QUIET, progress=None)
    assert 1 <= run.processed < 3
    kinds = {d['kind'] for d in run.diagnostics}
    assert 'bag' in kinds
    assert any('salvaged' in d['message'] for d in run.diagnostics)
    results = json.loads((tmp_path / 'out' / 'results.json').read_text())
    assert len(results['frames']) == run.processed  # partial results flushed
    assert (tmp_path / 'out' / 'report.html').is_file() and (tmp_path / 'out' / 'bag' / 'metadata.yaml').is_file()


def test_bag_without_image_topics_names_what_it_found(tmp_path, capsys):
    bag = tmp_path / 'tf_only'
    with BagSink(bag) as sink:
        sink.add_topic('/tf_static', 'tf2_msgs/msg/TFMessage')
        sink.add_topic('/camera_info', 'sensor_msgs/msg/CameraInfo')
    code, _, err = _cli(['replay', str(bag), '--out', str(tmp_path / 'out')], capsys)
    assert code == 1
    assert 'no colour image topic' in err and '/tf_static [tf2_msgs/msg/TFMessage]' in err


def test_bag_without_depth_or_camera_info(frames, tmp_path):
    bag = write_bag(tmp_path / 'input', frames[:1], info=False)
    with pytest.raises(InputError, match='no sensor_msgs/CameraInfo topic'):
        replay(bag, tmp_path / 'out', settings=QUIET, progress=None)
    with pytest.raises(InputError, match='no such topic'):
        replay(bag, tmp_path / 'out2', settings=ReplaySettings(topics={'depth': '/nope'}), progress=None)


def test_mismatched_sizes_skip_frames_and_exit_non_zero(frames, tmp_path, capsys):
    def half_depth(frame, stamp):
        raw = np.zeros((240, 320), np.uint16)
        return numpy_to_image(raw, '16UC1', frame.frame_id, stamp)

    bag = write_bag(tmp_path / 'input', frames[:2], depth_msg=half_depth)
    code, out, err = _cli(['replay', str(bag), '--out', str(tmp_path / 'out')], capsys)
    assert code == 1
    assert 'depth image is 320x240 (WxH) but the camera intrinsics are for 640x480' in err
    assert 'no frame could be processed' in err and 'report:' in out
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['run']['frames_processed'] == 0 and summary['run']['exit_code'] == 1
    assert [d['count'] for d in summary['diagnostics'] if d['kind'] == 'input'] == [2]


def test_unknown_colour_encoding_is_reported(frames, tmp_path):
    def yuv(frame, stamp):
        msg = Image(header=make_header(frame.frame_id, stamp), height=480, width=640, encoding='yuv422',
                    step=1280)
        msg.data = bytes(640 * 480 * 2)
        return msg

    bag = write_bag(tmp_path / 'input', frames[:2], color_msg=yuv)
    run = replay(bag, tmp_path / 'out', settings=QUIET, progress=None)
    assert run.exit_code == 1
    assert any("got 'yuv422'" in d['message'] and d['kind'] == 'input' for d in run.diagnostics)


def test_unsorted_stamps_drop_the_late_frame_and_keep_the_rest(frames, tmp_path):
    stamps = [frames[0].stamp, frames[2].stamp, frames[1].stamp]  # third message goes back in time
    bag = write_bag(tmp_path / 'input', frames, stamps=stamps)
    run = replay(bag, tmp_path / 'out', settings=QUIET, progress=None)
    assert run.exit_code == 0 and run.processed == 2
    assert [f['stamp'] for f in run.frames] == stamps[:2]
    assert any(d['kind'] == 'stamps' and 'unsorted' in d['message'] for d in run.diagnostics)
    assert any(d['kind'] == 'dropped' for d in run.diagnostics)


def test_unpaired_depth_is_reported_as_dropped_frames(frames, tmp_path):
    def late_depth(frame, stamp):
        raw = np.where(np.isfinite(frame.depth), np.round(frame.depth * 1000.0), 0).astype(np.uint16)
        return numpy_to_image(raw, '16UC1', frame.frame_id, stamp + 0.1)

    bag = write_bag(tmp_path / 'input', frames[:2], depth_msg=late_depth)
    run = replay(bag, tmp_path / 'out', settings=ReplaySettings(slop=0.03, gallery_size=0), progress=None)
    assert run.exit_code == 1
    assert any(d['kind'] == 'dropped' and 'not paired' in d['message'] for d in run.diagnostics)


def test_existing_output_folder_is_not_overwritten_without_the_flag(frames, tmp_path):
    bag = write_bag(tmp_path / 'input', frames[:1])
    replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0, write_bag=False), progress=None)
    with pytest.raises(InputError, match='already holds a replay'):
        replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0), progress=None)
    (tmp_path / 'out' / 'mine.txt').write_text('kept')
    replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0, overwrite=True), progress=None)
    assert (tmp_path / 'out' / 'mine.txt').read_text() == 'kept'
    shutil.rmtree(tmp_path / 'out')


def test_depth_unit_and_sync_gap_diagnostics(frames, tmp_path):
    """Depth read with the wrong unit and a hole in the recording are named in the report."""
    import dataclasses
    gappy = [dataclasses.replace(f, stamp=s) for f, s in zip(frames + frames[:1], [1000.0, 1000.25, 1000.5, 1002.0])]
    bag = write_bag(tmp_path / 'input', gappy)
    run = replay(bag, tmp_path / 'out', settings=ReplaySettings(depth_scale=1.0, gallery_size=0, write_bag=False),
                 progress=None)
    units = [d for d in run.diagnostics if d['kind'] == 'units']
    assert units and 'implausibly far' in units[0]['message'] and units[0]['count'] == 4
    gaps = [d for d in run.diagnostics if d['kind'] == 'sync']
    assert len(gaps) == 1 and 'gap of 1.500 s' in gaps[0]['message']
    page = (tmp_path / 'out' / 'report.html').read_text()
    assert 'implausibly far' in page and 'gap of 1.500 s' in page
