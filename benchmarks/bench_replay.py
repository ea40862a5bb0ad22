"""Bag replay throughput: sequential against worker processes on one long bag, and many bags at once.

1. The bundled real-data bag (640x480) looped to 150 (--quick) or 300 frames at 15 Hz, replayed with
   ``workers=1`` (all in one process) and ``workers=2`` in the same run: frames/s, real-time factor,
   the speed-up, and whether the per-frame results are identical; also ``workers=1`` in a child process
   with OpenMP/BLAS single-threaded as the workers run, to tell the pool's gain from the threads' gain.
2. A 1280x720 bag (GraspNet's two RealSense views in turn, :func:`graspnet_bag`; needs ../shared/data),
   20 (--quick) or 40 frames, with ``workers=1`` and ``workers=2``: frames/s and identical results.
3. 20 copies of the bundled bag (3 frames each) as one command: one after the other in this process
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

import numpy as np

from benchmarks.harness import row
from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.bag import BagSink, BagSource
from robot_vision.replay.cli import DEMO_BAG
from robot_vision.replay.multi import replay_many
from robot_vision.processes import SINGLE_THREAD_ENV

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
    with BagSink(path, compress=True) as sink:  # as the bundled bag
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


def graspnet_bag(path: Path, frames: int, rate_hz: float = RATE_HZ) -> Path:
    """A 1280x720 bag: GraspNet-1Billion scene 0000's two RealSense views in turn, ``frames`` frames at ``rate_hz``.

    Colour rgb8, depth 16UC1 mm, CameraInfo, and each view's camera pose in the table frame on
    ``/tf`` (fixed frame 'odom' = the table). The camera jumps between the views every frame, so
    the stream grasp planner searches every object anew (its worst case). Needs ../shared/data.
    """
    from rclpy.serialization import serialize_message
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from robot_vision.geometry import quaternion_from_matrix
    from robot_vision.real_scenes import load_graspnet
    from robot_vision.ros.conversions import intrinsics_to_camera_info, make_header, numpy_to_image
    views = [row.frame for row in load_graspnet() if '/realsense/' in row.name]
    topics = {'info': '/camera/color/camera_info', 'color': '/camera/color/image_raw',
              'depth': '/camera/aligned_depth_to_color/image_raw'}
    encoded = []
    for view in views:
        depth = np.where(np.isfinite(view.depth), np.round(view.depth * 1000.0), 0).astype(np.uint16)
        encoded.append((numpy_to_image(view.color, 'rgb8', view.frame_id),
                        numpy_to_image(depth, '16UC1', view.frame_id),
                        intrinsics_to_camera_info(view.intrinsics, view.frame_id)))
    with BagSink(path, compress=True) as sink:  # as the bundled bag
        sink.add_topic('/tf', 'tf2_msgs/msg/TFMessage')
        sink.add_topic(topics['info'], 'sensor_msgs/msg/CameraInfo')
        sink.add_topic(topics['color'], 'sensor_msgs/msg/Image')
        sink.add_topic(topics['depth'], 'sensor_msgs/msg/Image')
        for k in range(frames):
            view, stamp = views[k % len(views)], 1000.0 + k / rate_hz
            log_ns = int(round(stamp * 1e9))
            pose = TransformStamped(header=make_header('odom', stamp), child_frame_id=view.frame_id)
            t, q = pose.transform.translation, pose.transform.rotation
            t.x, t.y, t.z = (float(v) for v in view.camera_to_fixed[:3, 3])
            q.x, q.y, q.z, q.w = (float(v) for v in quaternion_from_matrix(view.camera_to_fixed[:3, :3]))
            sink.write('/tf', log_ns - 1000, serialize_message(TFMessage(transforms=[pose])))
            for role, msg in zip(('color', 'depth', 'info'), encoded[k % len(views)]):
                msg.header = make_header(view.frame_id, stamp)
                sink.write(topics[role], log_ns, serialize_message(msg))
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


def _hd_bag(tmp: Path, frames: int):
    """The 1280x720 GraspNet bag replayed with workers=1 and workers=2: throughput and identical results."""
    from robot_vision.datasets import shared_data_dir
    if shared_data_dir() is None or not (shared_data_dir() / 'real_clutter').is_dir():
        return [row('replay 1280x720 bag: skipped (../shared/data/real_clutter not found)', float('nan'), 'fps')]
    bag = graspnet_bag(tmp / 'graspnet', frames)
    rows, results = [], {}
    for workers in (1, 2):
        load = _load()
        run = replay(bag, tmp / f'hd-workers{workers}', settings=ReplaySettings(workers=workers), progress=None)
        s = run.summary['run']
        results[workers] = (s, json.loads((run.out_dir / 'results.json').read_text())['frames'])
        rows.append(row(f'replay 1280x720 bag, {frames} frames at {RATE_HZ:g} Hz, workers={workers}: throughput',
                        s['throughput_fps'], 'fps', wall_s=s['wall_s'], load_1min=load,
                        target='>= 5 fps' if workers == 2 else None))
    rows.append(row('replay 1280x720 bag: speed-up of workers=2 over workers=1',
                    results[1][0]['wall_s'] / results[2][0]['wall_s'], 'x',
                    identical_results=results[1][1] == results[2][1]))
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
        return _long_bag(tmp, 150 if quick else 300) + _hd_bag(tmp, 20 if quick else 40) + _many_bags(tmp, quick)
