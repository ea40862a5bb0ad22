"""Bag replay throughput on the bundled real-data bag: frames/s, real-time factor, replay overhead per frame."""

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness import row
from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.cli import DEMO_BAG


def _runs(repeat: int, write_bag: bool):
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeat):
            settings = ReplaySettings(write_bag=write_bag, gallery_size=8 if write_bag else 0)
            runs.append(replay(DEMO_BAG, Path(tmp) / f'run{k}', settings=settings, progress=None))
    return runs


def run(quick: bool):
    repeat = 1 if quick else 3
    rows = []
    _runs(1, False)  # warm-up: imports, open3d/ORT initialisation, first-call caches
    for write_bag, label in ((True, 'full outputs (bag + report)'), (False, 'results only (no bag)')):
        runs = _runs(repeat, write_bag)
        fps = [r.summary['run']['throughput_fps'] for r in runs]
        rtf = [r.summary['run']['real_time_factor'] for r in runs]
        frames = runs[0].summary['run']['frames_processed']
        rows.append(row(f'replay demo bag, {label}: throughput', float(np.median(fps)), 'fps',
                        frames=frames, runs=repeat))
        rows.append(row(f'replay demo bag, {label}: real-time factor', float(np.median(rtf)), 'x',
                        target='>= 1 is faster than real time', recorded_s=runs[0].summary['run']['recorded_s']))
        latency = runs[-1].summary['latency_ms']
        for stage in ('total', 'decode', 'record'):
            if stage in latency:
                rows.append(row(f'replay demo bag, {label}: {stage} per frame (p50)', latency[stage]['p50'], 'ms'))
    return rows
