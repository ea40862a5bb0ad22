"""Bag replay throughput: sequential against worker processes on one long bag, and many bags at once.

1. The bundled real-data bag (640x480) looped to 150 (--quick) or 300 frames at 15 Hz, replayed with
   ``workers=1`` (all in one process) and ``workers=2`` in the same run: frames/s, real-time factor,
   the speed-up, and whether the per-frame results are identical; also ``workers=1`` in a child process
   with OpenMP/BLAS single-threaded as the workers run, to tell the pool's gain from the threads' gain.
2. 20 copies of the bundled bag (3 frames each) as one command: one after the other in this process
   (the reference), through the local process pool (2 jobs), and as tasks of a local Ray instance
   (2 CPUs) when the optional ``ray`` package is installed: wall time and the speed-up.

The machine may be shared: the rows carry the load average (1 min) before each measurement, and
the speed-ups are ratios measured in the same run.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import row
from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.bag import BagSink, BagSource
from robot_vision.replay.cli import DEMO_BAG
from robot_vision.replay.multi import replay_many
from robot_vision.replay.pool import SINGLE_THREAD_ENV

RATE_HZ = 15.0
BAGS = 20


def looped_bag(path: Path, frames: int, rate_hz: float = RATE_HZ) -> Path:
    """The bundled bag's frames repeated to ``frames`` frames at ``rate_hz``, stamps rewritten."""
    from robot_vision.ros.bag_codec import MessageCodec
    codec = MessageCodec()
    source = BagSource(DEMO_BAG)
    groups, static = [], []
    for raw in source.messages():
        if raw.topic == '/tf_static':
            static.append(raw)
        elif raw.topic.endswith('camera_info'):
            groups.append([raw])
        else:
            groups[-1].append(raw)
    start = groups[0][0].log_ns
    with BagSink(path) as sink:
        for info in source.topics.values():
            sink.add_topic(info.name, info.msgtype, info.msgdef, info.digest, info.qos,
                           latched=info.name == '/tf_static')
        for raw in static:
            sink.write(raw.topic, raw.log_ns, raw.data)
        for k in range(frames):
            log_ns = start + int(round(k * 1e9 / rate_hz))
            for raw in groups[k % len(groups)]:
                msg = codec.decode(raw.msgtype, raw.data)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(log_ns, 10 ** 9)
                sink.write(raw.topic, log_ns, codec.encode(msg))
    source.close()
    return path


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _sequential_single_threaded(bag: Path, out: Path):
    """workers=1 in a child process with OpenMP/BLAS single-threaded, as the pool's workers run: (summary, frames)."""
    env = {**os.environ, **SINGLE_THREAD_ENV}
    subprocess.run([sys.executable, '-m', 'robot_vision', 'replay', str(bag), '--out', str(out), '--workers', '1',
                    '--quiet'], env=env, check=True, stdout=subprocess.DEVNULL)
    return (json.loads((out / 'summary.json').read_text())['run'],
            json.loads((out / 'results.json').read_text())['frames'])


def _long_bag(tmp: Path, frames: int):
    bag = looped_bag(tmp / 'looped', frames)
    rows, results = [], {}
    load = _load()
    s, results['single'] = _sequential_single_threaded(bag, tmp / 'single-threaded')
    rows.append(row(f'replay 640x480 bag looped to {frames} frames, workers=1, OpenMP/BLAS single-threaded: '
                    f'throughput', s['throughput_fps'], 'fps', wall_s=s['wall_s'], load_1min=load))
    single_wall = s['wall_s']
    for workers in (1, 2):
        load = _load()
        run = replay(bag, tmp / f'workers{workers}', settings=ReplaySettings(workers=workers), progress=None)
        s = run.summary['run']
        results[workers] = (s, json.loads((run.out_dir / 'results.json').read_text())['frames'])
        label = f'replay 640x480 bag looped to {frames} frames at {RATE_HZ:g} Hz, workers={workers}'
        rows.append(row(f'{label}: throughput', s['throughput_fps'], 'fps', frames=s['frames_processed'],
                        wall_s=s['wall_s'], load_1min=load))
        rows.append(row(f'{label}: real-time factor', s['real_time_factor'], 'x',
                        target='>= 1 is faster than real time'))
    rows.append(row('replay looped bag: speed-up of workers=2 over workers=1',
                    results[1][0]['wall_s'] / results[2][0]['wall_s'], 'x',
                    identical_results=results[1][1] == results[2][1]))
    rows.append(row('replay looped bag: speed-up of workers=2 over workers=1 single-threaded',
                    single_wall / results[2][0]['wall_s'], 'x', identical_results=results['single'] == results[2][1]))
    return rows


def _many_bags(tmp: Path, quick: bool):
    folder = tmp / 'bags'
    folder.mkdir()
    bags = []
    for k in range(BAGS):
        bags.append(folder / f'demo_{k:02d}.mcap')
        shutil.copy(DEMO_BAG, bags[-1])
    settings = ReplaySettings(workers=1, gallery_size=0)
    rows, walls = [], {}
    if not quick:  # the reference: one bag after the other in this process
        load, started = _load(), time.perf_counter()
        for bag in bags:
            replay(bag, tmp / 'sequential' / bag.stem, settings=settings, progress=None)
        walls['one after the other'] = time.perf_counter() - started
        rows.append(row(f'{BAGS} bags one after the other in one process: wall time', walls['one after the other'],
                        's', load_1min=load))
    load = _load()
    aggregate = replay_many(bags, tmp / 'pool', settings=settings, jobs=2, progress=None)
    walls['pool'] = aggregate['totals']['wall_s']
    rows.append(row(f'{BAGS} bags through the local pool (2 jobs): wall time', walls['pool'], 's',
                    frames=aggregate['totals']['frames'], failed=aggregate['totals']['failed'], load_1min=load))
    try:
        import ray
    except ImportError:
        rows.append(row(f'{BAGS} bags on a local Ray instance: skipped (ray not installed)', float('nan'), 's'))
    else:
        load, started = _load(), time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            aggregate = replay_many(bags, tmp / 'ray', settings=settings, ray_address='auto', progress=None)
        finally:
            ray.shutdown()
        walls['ray'] = time.perf_counter() - started
        rows.append(row(f'{BAGS} bags on a local Ray instance (2 CPUs, start included): wall time', walls['ray'], 's',
                        frames=aggregate['totals']['frames'], failed=aggregate['totals']['failed'],
                        tasks_wall_s=aggregate['totals']['wall_s'], load_1min=load))
    if 'one after the other' in walls:
        for engine in ('pool', 'ray'):
            if engine in walls:
                rows.append(row(f'{BAGS} bags: speed-up of the {engine} over one after the other',
                                walls['one after the other'] / walls[engine], 'x'))
    return rows


def run(quick: bool):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        replay(DEMO_BAG, tmp / 'warm-up', settings=ReplaySettings(workers=1, write_bag=False), progress=None)
        return _long_bag(tmp, 150 if quick else 300) + _many_bags(tmp, quick)
