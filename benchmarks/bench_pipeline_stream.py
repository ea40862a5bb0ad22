"""The core pipeline in-process on the node benchmark's stream: per-frame time and RSS over a minute at 15 Hz.

The same input as ``bench_node_stream`` without DDS and node threads: the three frames of
:func:`robot_vision.datasets.load_pcl_sequence` in turn, depth round-tripped through 16UC1
millimetres as the node decodes it, the camera -> odom pose that puts the floor at z = 0, the
settings of ``config/robot_vision.yaml``, stamps 1/15 s apart. Cases: ``depth-only`` (no colour
image) and ``rgbd``. The first ``WARMUP_S`` seconds of frames are not measured; "RSS start" is
read when they end (as in the node benchmark), so the growth says whether memory keeps growing.

Rows per case: p50/p95 of the wall time of :meth:`Pipeline.process` per frame, of the time to the
objects (every stage before tracking and grasps: what the node publishes first), of the grasp
and tracking stages, and of the process CPU time per frame (meaningful on a shared machine);
RSS at start and end and its growth (the ``every_50_frames_mib`` field of the growth row
holds the whole series: glibc's heap makes RSS move by a few MiB from frame to frame, so look for
a trend, not at two samples). Frames are processed back to back, so this is the compute
per frame, not a latency: the node keeps up with the stream when the p95 wall time is below
1/15 s. Run: ``.venv/bin/python -m benchmarks --only pipeline_stream [--quick]``.
"""

import dataclasses
import time
from typing import Dict, List

import numpy as np
import psutil

from benchmarks.bench_node_stream import CONFIG, RATE_HZ, TARGET_P50_MS, TARGET_P95_MS, TARGET_RSS_GROWTH, WARMUP_S
from benchmarks.bench_node_stream import _camera_pose as camera_pose
from benchmarks.harness import row
from robot_vision.camera import decode_depth
from robot_vision.datasets import load_pcl_sequence, shared_data_dir
from robot_vision.pipeline import Pipeline
from robot_vision.replay.runner import load_config

#: Stages of FrameResult.timings_ms that come after the objects are known.
LATER_STAGES = ('grasps', 'track')


def run(quick: bool) -> List[dict]:
    """Stream 10 s (quick) or 60 s of frames through the pipeline for each case."""
    if shared_data_dir() is None:
        print('  skipped: ../shared/data not found')
        return []
    frames = load_pcl_sequence()
    pose = camera_pose(frames[0])
    frames = [dataclasses.replace(f, camera_to_fixed=pose, depth=decode_depth(
        np.round(np.nan_to_num(f.depth) * 1000).astype(np.uint16), encoding='16UC1')) for f in frames]
    count = int((10.0 if quick else 60.0) * RATE_HZ)
    rows = []
    for case, color in (('depth-only', False), ('rgbd', True)):
        case_frames = frames if color else [dataclasses.replace(f, color=None) for f in frames]
        rows += _stream(case, case_frames, count)
    return rows


def _stream(case: str, frames, count: int) -> List[dict]:
    settings, _ = load_config(str(CONFIG))
    pipeline = Pipeline(settings)
    process = psutil.Process()
    warmup = int(WARMUP_S * RATE_HZ)
    wall: List[float] = []
    cpu: List[float] = []
    stages: Dict[str, List[float]] = {}
    rss: List[float] = []
    objects = grasps = 0
    t0 = frames[0].stamp
    for i in range(warmup + count):
        frame = dataclasses.replace(frames[i % len(frames)], stamp=t0 + i / RATE_HZ)
        if i == warmup:
            rss.append(process.memory_info().rss)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = pipeline.process(frame)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if i < warmup:
            continue
        wall.append(elapsed * 1e3)
        cpu.append(elapsed_cpu * 1e3)
        timings = result.timings_ms
        stages.setdefault('objects', []).append(sum(v for k, v in timings.items()
                                                    if k not in LATER_STAGES and k != 'total'))
        for key in LATER_STAGES:
            stages.setdefault(key, []).append(timings.get(key, 0.0))
        objects += len(result.objects)
        grasps += len(result.grasps)
        if (i - warmup) % 50 == 49:
            rss.append(process.memory_info().rss)
    rss.append(process.memory_info().rss)
    pipeline.close()
    growth = (rss[-1] - rss[0]) / rss[0]
    per_frame = 1e3 / RATE_HZ
    label = f'pipeline {case}, {count} frames'
    rows = [
        _percentiles(f'{label}: process() wall per frame', wall, f'p95 <= {per_frame:.1f} ms (keeps up at 15 Hz)',
                     np.percentile(wall, 95) <= per_frame, objects_per_frame=objects / count,
                     grasps_per_frame=grasps / count),
        _percentiles(f'  {case}: time to objects (stages before tracking and grasps)', stages['objects'],
                     f'p50 <= {TARGET_P50_MS:.0f} ms, p95 <= {TARGET_P95_MS:.0f} ms',
                     np.percentile(stages['objects'], 50) <= TARGET_P50_MS
                     and np.percentile(stages['objects'], 95) <= TARGET_P95_MS),
    ]
    rows += [_percentiles(f'  {case}: stage {key}', stages[key]) for key in LATER_STAGES]
    rows.append(_percentiles(f'  {case}: process CPU time per frame', cpu))
    rows.append(row(f'  {case}: RSS at start (after {WARMUP_S:.0f} s of frames)', rss[0] / 2**20, 'MiB'))
    rows.append(row(f'  {case}: RSS at end', rss[-1] / 2**20, 'MiB', max_mib=max(rss) / 2**20))
    rows.append(row(f'  {case}: RSS growth', growth * 100, '%', f'< {TARGET_RSS_GROWTH * 100:.0f} %',
                    ok=bool(growth < TARGET_RSS_GROWTH),
                    every_50_frames_mib=[round(value / 2**20, 1) for value in rss]))
    return rows


def _percentiles(name: str, values: List[float], target=None, ok=None, **extra) -> dict:
    result = row(name, float(np.percentile(values, 50)), 'ms', target, p95_ms=float(np.percentile(values, 95)),
                 n=len(values), **extra)
    if ok is not None:
        result['ok'] = bool(ok)
    return result
