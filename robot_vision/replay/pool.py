"""Frames of a replay in worker processes: detection, segmentation and 3D objects in parallel.

Frames are independent until tracking, so :class:`FramePool` hands each decoded frame to one of
``workers`` processes, each with its own :class:`~robot_vision.pipeline.Pipeline`, which runs
:meth:`~robot_vision.pipeline.Pipeline.perceive` on it. The replay keeps up to
:data:`AHEAD_PER_WORKER` frames per worker in flight and takes their results back in bag order,
then tracks, plans grasps (the stream planner keeps each object's grasps from frame to frame, so
its state lives in the parent) and records them there, exactly as the sequential replay does:
the results are identical. Workers are started with 'spawn' (no thread or ONNX Runtime state of
the parent is copied), ignore SIGINT (the parent stops them) and build their pipeline once. Their
OpenMP and BLAS libraries run single-threaded (``SINGLE_THREAD_ENV``, unless the environment sets
them): the workers already share the cores between them, and on the 2-core development machine
per-library thread pools on top made a 60-frame replay about 1.6x slower.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Tuple

from robot_vision.errors import ConfigError, InputError

#: Frames submitted per worker before the oldest result is waited for (keeps the workers busy
#: while the parent tracks and writes, and bounds the memory of frames in flight).
AHEAD_PER_WORKER = 2

#: Thread-count variables of OpenMP, OpenBLAS and MKL given to the workers (read when they load).
SINGLE_THREAD_ENV = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

_PIPELINE: Any = None


def default_workers() -> int:
    """Worker processes a replay uses by default: min(2, CPU cores available to this process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(1, min(2, cores))


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes started inside get SINGLE_THREAD_ENV (where the environment does not set them)."""
    added = {k: v for k, v in SINGLE_THREAD_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            del os.environ[name]


def _start(settings: Any) -> None:
    global _PIPELINE
    from robot_vision.pipeline import Pipeline
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _PIPELINE = Pipeline(settings)


def _ready() -> None:
    """A task that returns once a worker has started and built its pipeline."""


def _perceive(frame: Any) -> Tuple[Optional[Any], Optional[str]]:
    """(FrameResult without tracks and grasps, None), or (None, why the frame was skipped)."""
    try:
        return _PIPELINE.perceive(frame), None
    except (InputError, ConfigError) as exc:
        return None, str(exc)


class FramePool:
    """``workers`` processes running ``Pipeline(settings).perceive`` on the frames given to :meth:`submit`."""

    def __init__(self, settings: Any, workers: int) -> None:
        if workers < 2:
            raise ConfigError(f'FramePool: expected at least 2 workers, got {workers}')
        self.capacity = AHEAD_PER_WORKER * workers
        self._executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn'),
                                             initializer=_start, initargs=(settings,))
        # the executor starts a process per task submitted while none is idle: start them all now,
        # with the single-thread environment (the parent's own libraries are loaded already)
        with single_threaded_children():
            started = [self._executor.submit(_ready) for _ in range(workers)]
        for future in started:
            future.result()

    def submit(self, frame: Any) -> Future:
        """Start perceiving ``frame``; the future gives (FrameResult or None, skip reason or None)."""
        return self._executor.submit(_perceive, frame)

    def close(self) -> None:
        """Stop the workers (frames still queued are dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
