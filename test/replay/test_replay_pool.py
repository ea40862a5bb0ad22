"""Faster replays: worker processes give the sequential results; many bags through a local pool or Ray."""

import json
import shutil

import numpy as np
import pytest
from bagtools import stamped_frames, write_bag

from robot_vision.cli import main as cli_main
from robot_vision.datasets import load_pcl_sequence
from robot_vision.errors import ConfigError, InputError
from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.bag import BagSource
from robot_vision.replay.cli import DEMO_BAG
from robot_vision.replay.multi import find_bags, replay_many


def _frames(run):
    return json.loads((run.out_dir / 'results.json').read_text())['frames']


def test_pooled_replay_of_the_bundled_bag_equals_the_sequential_one(tmp_path):
    one = replay(DEMO_BAG, tmp_path / 'one', settings=ReplaySettings(workers=1, gallery_size=2), progress=None)
    two = replay(DEMO_BAG, tmp_path / 'two', settings=ReplaySettings(workers=2, gallery_size=2), progress=None)
    assert one.exit_code == two.exit_code == 0 and len(_frames(one)) == 3
    assert sum(len(f['objects']) for f in _frames(one)) > 0
    assert _frames(two) == _frames(one)
    assert two.diagnostics == one.diagnostics
    assert sorted(p.name for p in (two.out_dir / 'gallery').iterdir()) == ['frame_00000.jpg', 'frame_00002.jpg']
    for run in (one, two):  # overlays and object clouds are opt-in; the other result topics are all there
        source = BagSource(run.bag_path)
        assert '/robot_vision/detections_overlay' not in source.topics
        assert '/robot_vision/object_points' not in source.topics
        assert source.topics['/robot_vision/objects'].count == 3
        assert source.topics['/robot_vision/grasps'].count == 3
        source.close()


def test_pooled_replay_of_a_longer_bag_equals_the_sequential_one(shared_data, tmp_path):
    """Nine frames with tracks carried across them: tracking and grasps stay in bag order."""
    frames = stamped_frames(load_pcl_sequence(shared_data / 'pcl_kinect' / 'sequence') * 3)
    bag = write_bag(tmp_path / 'input', frames, 'mcap')
    settings = dict(gallery_size=3, overlays=True, clouds=True)
    one = replay(bag, tmp_path / 'one', settings=ReplaySettings(workers=1, **settings), progress=None)
    two = replay(bag, tmp_path / 'two', settings=ReplaySettings(workers=2, **settings), progress=None)
    assert len(_frames(one)) == 9 and _frames(two) == _frames(one)
    assert max(t['hits'] for t in _frames(one)[-1]['tracks']) >= 5  # tracks lived through the pooled frames
    from robot_vision.ros.bag_codec import MessageCodec
    codec = MessageCodec()
    counts, results = [], []
    for run in (one, two):
        source = BagSource(run.bag_path)
        counts.append({name: info.count for name, info in source.topics.items()})
        results.append([(raw.topic, raw.log_ns, repr(codec.decode(raw.msgtype, raw.data)))  # CDR padding varies
                        for raw in source.messages() if raw.topic.startswith('/robot_vision/')])
        source.close()
    assert counts[1] == counts[0] and counts[0]['/robot_vision/detections_overlay'] == 9
    assert results[1] == results[0]  # every field of every result message (instance labels: the masks came back whole)
    limited = replay(bag, tmp_path / 'five', settings=ReplaySettings(workers=2, max_frames=5, write_bag=False),
                     progress=None)
    assert _frames(limited) == _frames(one)[:5]


def test_workers_setting_is_validated():
    with pytest.raises(ConfigError, match='workers'):
        ReplaySettings(workers=0)


@pytest.fixture(scope='module')
def bag_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('bags')
    for k in range(3):
        shutil.copy(DEMO_BAG, folder / f'demo_{k}.mcap')
    return folder


@pytest.fixture(scope='module')
def single_frames(tmp_path_factory):
    run = replay(DEMO_BAG, tmp_path_factory.mktemp('single') / 'out',
                 settings=ReplaySettings(workers=1, write_bag=False, gallery_size=0), progress=None)
    return _frames(run)


def test_a_folder_of_bags_replays_in_a_local_pool_with_one_report(bag_folder, single_frames, tmp_path, capsys):
    assert cli_main(['replay', str(bag_folder), '--out', str(tmp_path / 'a'), '--jobs', '2', '--no-bag',
                     '--gallery', '0', '--quiet']) == 0
    assert '3 bags (0 failed): 9 of 9 frames' in capsys.readouterr().out
    aggregate = json.loads((tmp_path / 'a' / 'aggregate.json').read_text())
    assert [row['out'] for row in aggregate['bags']] == [str(tmp_path / 'a' / f'demo_{k}') for k in range(3)]
    assert aggregate['totals']['frames'] == 9 and aggregate['totals']['failed'] == 0
    assert aggregate['totals']['objects'] == 3 * sum(len(f['objects']) for f in single_frames)
    assert len(aggregate['worst_frames']) == 9
    assert aggregate['worst_frames'][0]['frame_ms'] >= aggregate['worst_frames'][-1]['frame_ms'] > 0
    assert 'Slowest frames' in (tmp_path / 'a' / 'aggregate.html').read_text()
    for k in range(3):
        assert json.loads((tmp_path / 'a' / f'demo_{k}' / 'results.json').read_text())['frames'] == single_frames
    # two bags named on the command line, then the comparison of the two runs bag by bag
    assert cli_main(['replay', str(bag_folder / 'demo_0.mcap'), str(bag_folder / 'demo_2.mcap'), '--out',
                     str(tmp_path / 'b'), '--no-bag', '--gallery', '0', '--quiet']) == 0
    assert cli_main(['compare', str(tmp_path / 'a'), str(tmp_path / 'b'), '--out', str(tmp_path / 'cmp')]) == 0
    out = capsys.readouterr().out
    assert 'note: bags only in A: demo_1' in out
    rows = json.loads((tmp_path / 'cmp' / 'compare_all.json').read_text())['bags']
    assert [r['bag'] for r in rows] == ['demo_0', 'demo_2']
    assert all(r['frames_common'] == r['frames_identical'] == 3 and r['detections_only_a'] == 0 for r in rows)


def test_bag_search_errors(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='holds none'):
        find_bags([tmp_path / 'empty'])
    with pytest.raises(InputError, match='no such bag'):
        find_bags([tmp_path / 'missing'])
    assert cli_main(['replay', str(tmp_path / 'empty'), '--out', str(tmp_path / 'x'), '--quiet']) == 1


def test_bags_on_a_local_ray_instance(bag_folder, single_frames, tmp_path):
    ray = pytest.importorskip('ray', reason='the optional ray package is not installed')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        aggregate = replay_many(find_bags([bag_folder]), tmp_path / 'ray',
                                settings=ReplaySettings(write_bag=False, gallery_size=0), ray_address='auto',
                                progress=None)
    finally:
        ray.shutdown()
    assert aggregate['engine'] == 'ray' and aggregate['totals']['frames'] == 9
    for k in range(3):
        assert json.loads((tmp_path / 'ray' / f'demo_{k}' / 'results.json').read_text())['frames'] == single_frames


def test_a_killed_worker_leaves_the_rest_to_the_main_process(monkeypatch, tmp_path):
    import os
    import signal

    from robot_vision.replay import runner
    from robot_vision.replay.pool import FramePool

    class KillingPool(FramePool):
        submitted = 0

        def submit(self, frame):
            KillingPool.submitted += 1
            if KillingPool.submitted == 2:  # a worker dies (killed, out of memory) with frames in flight
                os.kill(next(iter(self._executor._processes)), signal.SIGKILL)
            return super().submit(frame)

    one = replay(DEMO_BAG, tmp_path / 'one', settings=ReplaySettings(workers=1, write_bag=False, gallery_size=0),
                 progress=None)
    monkeypatch.setattr(runner, 'FramePool', KillingPool)
    two = replay(DEMO_BAG, tmp_path / 'two', settings=ReplaySettings(workers=2, write_bag=False, gallery_size=0),
                 progress=None)
    assert two.exit_code == 0 and _frames(two) == _frames(one)
    assert [d['kind'] for d in two.diagnostics] == ['run'] and 'worker process stopped' in two.diagnostics[0]['message']


def test_masks_travel_back_from_the_workers_exactly():
    from robot_vision.pipeline import Pipeline
    from robot_vision.replay.pool import pack_masks, unpack_masks
    frame = load_pcl_sequence()[0]
    mask = Pipeline().perceive(frame).detections.mask
    assert mask is not None and mask.shape[0] > 0
    packed = pack_masks(mask)
    assert np.array_equal(unpack_masks(packed), mask)
    assert sum(crop.nbytes for _, _, crop in packed[1]) < mask.nbytes / 4
    some = mask.copy()
    some[0] = False  # an empty mask
    assert np.array_equal(unpack_masks(pack_masks(some)), some)
    assert unpack_masks(pack_masks(None)) is None
    assert unpack_masks(pack_masks(mask[:0])).shape == (0,) + mask.shape[1:]


def test_a_killed_grasp_process_leaves_the_grasps_to_the_main_process(monkeypatch, tmp_path):
    """A pooled replay plans grasps in a process of its own; when it dies, a new one plans the frame again."""
    import os
    import signal

    from robot_vision.pipeline import Pipeline

    one = replay(DEMO_BAG, tmp_path / 'one', settings=ReplaySettings(workers=1, write_bag=False, gallery_size=0),
                 progress=None)
    add_grasps, calls = Pipeline.add_grasps, []

    def killing(self, result, frame):
        calls.append(frame.stamp)
        if len(calls) == 2:
            process = self.grasp_planner._pool._workers[0].process
            os.kill(process.pid, signal.SIGKILL)
            process.join(10.0)
        return add_grasps(self, result, frame)

    monkeypatch.setattr(Pipeline, 'add_grasps', killing)
    two = replay(DEMO_BAG, tmp_path / 'two', settings=ReplaySettings(workers=2, write_bag=False, gallery_size=0),
                 progress=None)
    assert two.exit_code == 0 and _frames(two) == _frames(one)
    assert len(calls) == 4  # the second frame was planned twice
    assert [d['kind'] for d in two.diagnostics] == ['run'] and 'grasp process stopped' in two.diagnostics[0]['message']
    assert 'main process' in two.diagnostics[0]['message']
