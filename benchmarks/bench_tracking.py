"""Tracker update cost: 100 tracks x 100 detections (3D constant velocity / acceleration, and 2D)."""

import numpy as np

from benchmarks.harness import measure
from robot_vision.tracking import (Observations, Tracker, Tracker2D, Tracker2DSettings, TrackerSettings)
from robot_vision.types import Detections


def _frames_3d(n_objects: int, n_frames: int, seed: int = 0):
    """Objects on a 1 m grid moving at up to 1 m/s, observed with 2 cm noise in shuffled order."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_objects)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n_objects]
    start = np.column_stack([grid * 1.0, np.full(n_objects, 0.5)])
    velocity = np.column_stack([rng.uniform(-1, 1, (n_objects, 2)) * 0.7, np.zeros(n_objects)])
    frames = []
    for k in range(n_frames):
        t = 0.1 * k
        pos = start + velocity * t + rng.normal(0, 0.02, (n_objects, 3))
        order = rng.permutation(n_objects)
        frames.append((t, Observations(position=pos[order], size=np.full((n_objects, 3), 0.4),
                                       yaw=np.zeros(n_objects), class_id=np.zeros(n_objects, np.int32),
                                       confidence=np.full(n_objects, 0.9, np.float32))))
    return frames


def _frames_2d(n_objects: int, n_frames: int, seed: int = 0):
    """Boxes on an 80 px grid moving at up to 50 px/s with 2 px noise."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_objects)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n_objects] * 80.0
    velocity = rng.uniform(-50, 50, (n_objects, 2))
    frames = []
    for k in range(n_frames):
        t = 0.1 * k
        c = grid + velocity * t + rng.normal(0, 2.0, (n_objects, 2))
        order = rng.permutation(n_objects)
        xyxy = np.hstack([c - 30, c + 30])[order]
        frames.append((t, Detections(xyxy=xyxy, confidence=np.full(n_objects, 0.9),
                                     class_id=np.zeros(n_objects, np.int32))))
    return frames


def _timed_updates(name, tracker, frames, repeat, target_ms=None):
    for t, obs in frames[:10]:   # warm up: every track confirmed
        tracker.update(obs, t)
    it = iter(frames[10:])

    def step():
        t, obs = next(it)
        tracker.update(obs, t)

    result = measure(name, step, repeat=repeat, warmup=3, target_ms=target_ms)
    result['tracks'] = len(tracker)
    return result


def run(quick: bool):
    repeat = 30 if quick else 200
    n_frames = 10 + 3 + repeat
    rows = []
    frames = _frames_3d(100, n_frames)
    rows.append(_timed_updates('Tracker.update 100 tracks x 100 detections (CV)', Tracker(), frames, repeat,
                               target_ms=5.0))
    rows.append(_timed_updates('Tracker.update 100 tracks x 100 detections (CA)',
                               Tracker(TrackerSettings(constant_acceleration=True)), frames, repeat))
    rows.append(_timed_updates('Tracker2D.update 100 tracks x 100 boxes', Tracker2D(Tracker2DSettings()),
                               _frames_2d(100, n_frames), repeat))
    tracker = Tracker()
    for t, obs in frames[:10]:
        tracker.update(obs, t)
    rows.append(measure('Tracker.predict 100 tracks', lambda: tracker.predict(1.05), repeat=repeat))
    return rows
