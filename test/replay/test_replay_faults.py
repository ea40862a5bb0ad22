"""The replay keeps its results whatever stops it (signals, a full disk) and fails with one `error:` line.

The signal tests run the real CLI as a process; the disk tests mount a real small tmpfs (root only,
skipped elsewhere with the reason).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from bagtools import stamped_frames, write_bag
from sensor_msgs.msg import Image

from robot_vision.cli import main as cli_main
from robot_vision.datasets import load_pcl_sequence
from robot_vision.replay import ReplaySettings, replay
from robot_vision.ros.conversions import make_header

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def frames(shared_data):
    return stamped_frames(load_pcl_sequence(shared_data / 'pcl_kinect' / 'sequence'))


@pytest.fixture(scope='module')
def long_bag(frames, tmp_path_factory):
    """30 real frames (the 3-frame sequence repeated, stamps 0.25 s apart): long enough to be stopped."""
    return write_bag(tmp_path_factory.mktemp('long') / 'input', stamped_frames(frames * 10))


def _cli(args, capsys):
    code = cli_main(args + ['--quiet'])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_outputs_valid(out: Path) -> dict:
    """Every output exists and is complete; returns the summary."""
    assert (out / 'bag' / 'metadata.yaml').is_file()
    assert yaml.safe_load((out / 'bag' / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    results = json.loads((out / 'results.json').read_text())
    summary = json.loads((out / 'summary.json').read_text())
    assert len(results['frames']) == summary['run']['frames_processed']
    assert (out / 'report.html').read_text().rstrip().endswith('</html>')
    return summary


def _replay_process(bag: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-m', 'robot_vision', 'replay', str(bag), '--out', str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.parametrize('signals', [('SIGTERM',), ('SIGHUP',), ('SIGINT', 'SIGINT')],
                         ids=['SIGTERM', 'SIGHUP', 'double-SIGINT'])
def test_signals_stop_the_replay_and_every_output_is_flushed(long_bag, tmp_path, signals):
    out = tmp_path / 'out'
    process = _replay_process(long_bag, out)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any('/30 frames' in line for line in lines) and time.monotonic() < deadline:  # a frame went by
        time.sleep(0.1)
    for name in signals:
        process.send_signal(getattr(signal, name))
        time.sleep(0.3)
    stdout, _ = process.communicate(timeout=120)
    reader.join(5)
    err = ''.join(lines)
    assert process.returncode == 0, err[-3000:]
    assert 'Traceback' not in err and f'stopping ({signals[0]})' in err
    summary = _assert_outputs_valid(out)
    assert 1 <= summary['run']['frames_processed'] < 30
    assert any(d['message'].startswith(f'stopped by {signals[0]}') for d in summary['diagnostics'])


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / 'disk'
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip('a full disk is simulated with a small tmpfs, which needs root and mount(8)')
    yield mount
    assert subprocess.run(['umount', str(mount)], capture_output=True).returncode == 0, 'a file is still open'


def test_a_full_disk_keeps_what_fits_and_names_what_is_incomplete(long_bag, small_disk, capsys):
    out = small_disk / 'out'
    code, stdout, err = _cli(['replay', str(long_bag), '--out', str(out), '--max-frames', '4', '--gallery', '1'],
                             capsys)
    assert code == 3, err
    assert 'error: output incomplete: bag: writing stopped at' in err and 'No space left on device' in err
    assert 'Traceback' not in err
    for name in ('results.json', 'summary.json', 'report.html'):  # whole or absent, never cut short
        path = out / name
        if path.exists():
            assert name.endswith('html') or json.loads(path.read_text())
        else:
            assert f'{name}: not written: No space left on device' in err
    assert not list(out.rglob('*.partial'))


def test_missing_or_garbage_model_is_one_error_line_and_leaves_nothing_behind(frames, tmp_path, capsys):
    bag = write_bag(tmp_path / 'input', frames[:1])
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    out = tmp_path / 'out'
    for model, expected in ((tmp_path / 'missing.onnx', 'model file not found'),
                            (garbage, 'cannot load ONNX model')):
        config = tmp_path / 'model.yaml'
        config.write_text(f'/**:\n  ros__parameters:\n    detector:\n      backend: onnx\n      model_path: {model}\n')
        code, _, err = _cli(['replay', str(bag), '--out', str(out), '--config', str(config)], capsys)
        assert code == 2 and err.startswith('error: ') and expected in err and err.count('\n') == 1, err
        assert not out.exists()
    code, _, err = _cli(['replay', str(bag), '--out', str(out)], capsys)  # the same folder, fixed config
    assert code == 0, err


def test_bad_node_value_in_the_config_is_one_error_line(frames, tmp_path, capsys):
    bag = write_bag(tmp_path / 'input', frames[:1])
    config = tmp_path / 'soon.yaml'
    config.write_text('/**:\n  ros__parameters:\n    sync_slop_s: soon\n')
    code, _, err = _cli(['replay', str(bag), '--out', str(tmp_path / 'out'), '--config', str(config)], capsys)
    assert code == 2 and err == f"error: {config}: sync_slop_s: expected a number >= 0, got 'soon'\n"


def test_unusable_out_folder_is_one_error_line(frames, tmp_path, capsys):
    bag = write_bag(tmp_path / 'input', frames[:1])
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    for out, reason in ((blocker, 'File exists (a file is in the way)'),
                        (blocker / 'below', 'Not a directory (a file is in the way)')):
        code, _, err = _cli(['replay', str(bag), '--out', str(out)], capsys)
        assert code == 1 and err == f'error: --out {out}: cannot write the outputs there: {reason}\n'


def test_read_only_out_folder_is_one_error_line(frames, small_disk, tmp_path, capsys):
    bag = write_bag(tmp_path / 'input', frames[:1])
    subprocess.run(['mount', '-o', 'remount,ro', str(small_disk)], check=True)
    code, _, err = _cli(['replay', str(bag), '--out', str(small_disk / 'out')], capsys)
    assert code == 1 and err == f'error: --out {small_disk / "out"}: cannot write the outputs there: ' \
                                f'Read-only file system\n'


@pytest.mark.parametrize('encoding, step', [('yuv422', 1280), ('8UC3', 1920)])
def test_depth_topic_of_an_unsupported_encoding_is_named(frames, tmp_path, capsys, encoding, step):
    def odd_depth(frame, stamp):
        msg = Image(header=make_header(frame.frame_id, stamp), height=480, width=640, encoding=encoding, step=step)
        msg.data = bytes(480 * step)
        return msg

    bag = write_bag(tmp_path / 'input', frames[:1], depth_msg=odd_depth)
    code, _, err = _cli(['replay', str(bag), '--out', str(tmp_path / 'out')], capsys)
    assert code == 1 and err.count('\n') == 1
    assert f"/cam/depth/image_raw has encoding '{encoding}', which is not a depth encoding (supported: " \
           f"16UC1, mono16, 32FC1)" in err


@pytest.mark.parametrize('count', [3, 10])
def test_camera_info_logged_after_the_images_is_used_for_the_first_frame(frames, tmp_path, count):
    bag = write_bag(tmp_path / 'input', stamped_frames((frames * 4)[:count]), info_after_images=True)
    run = replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0, write_bag=False), progress=None)
    assert run.processed == count, run.diagnostics
    assert not [d for d in run.diagnostics if d['kind'] == 'calibration']
