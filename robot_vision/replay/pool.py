"""Frames of a replay in worker processes: detection, segmentation and 3D objects in parallel.

Frames are independent until tracking, so :class:`FramePool` hands each decoded frame to one of
``workers`` processes, each with its own :class:`~robot_vision.pipeline.Pipeline`, which runs
:meth:`~robot_vision.pipeline.Pipeline.perceive` on it. The replay keeps up to
:data:`AHEAD_PER_WORKER` frames per worker in flight and takes their results back in bag order,
then tracks, plans grasps (the stream planner keeps each object's grasps from frame to frame, so
its state lives in the parent) and records them there, exactly as the sequential replay does:
the results are identical. Workers are started with 'spawn' (no thread or ONNX Runtime state of
the parent is copied), ignore SIGINT (the parent stops them) and build their pipeline once. Their
OpenMP and BLAS libraries run single-threaded (:mod:`robot_vision.processes`, unless the environment sets
them), and so does OpenCV (``cv2.setNumThreads(1)`` in each worker): the workers already share the
cores between them, and on the 2-core development machine per-library thread pools on top made a
60-frame replay about 1.6x slower (OpenCV's alone cost 10-15 % of the CPU per 640x480 frame).

A result travels back with its instance masks cropped to each mask's bounding box
(:func:`pack_masks`, rebuilt exactly by :func:`unpack_masks`): an (N, H, W) bool array is mostly
False, and at 1280x720 with 40 objects it was 39 of the 43 MB pickled per frame, which cost the
parent about 50 ms a frame to take in.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, List, Optional, Tuple

import cv2
import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import mask_windows
from robot_vision.processes import single_threaded_children

#: Frames submitted per worker before the oldest result is waited for (keeps the workers busy
#: while the parent tracks and writes, and bounds the memory of frames in flight).
AHEAD_PER_WORKER = 2

_PIPELINE: Any = None


def default_workers() -> int:
    """Worker processes a replay uses by default: min(2, CPU cores available to this process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(1, min(2, cores))


def _start(settings: Any) -> None:
    global _PIPELINE
    cv2.setNumThreads(1)  # like OpenMP and BLAS: the workers already share the cores
    from robot_vision.pipeline import Pipeline
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _PIPELINE = Pipeline(settings)


def _ready() -> None:
    """A task that returns once a worker has started and built its pipeline."""


def _perceive(frame: Any) -> Tuple[Optional[Any], Optional[str], Any]:
    """(FrameResult without tracks, grasps and masks, None, packed masks), or (None, why it was skipped, None)."""
    try:
        result = _PIPELINE.perceive(frame)
    except (InputError, ConfigError) as exc:
        return None, str(exc), None
    shared = result.objects.mask is result.detections.mask  # as the depth backend gives them: sent once
    packed = (pack_masks(result.detections.mask), shared, None if shared else pack_masks(result.objects.mask))
    object.__setattr__(result.detections, 'mask', None)  # the worker's own copy, about to be sent
    object.__setattr__(result.objects, 'mask', None)
    return result, None, packed


def pack_masks(mask: Optional[np.ndarray]) -> Any:
    """``mask`` (N, H, W) bool as (shape, [(row, column, the mask's bounding-box crop) per mask]); None stays None."""
    if mask is None:
        return None
    crops: List[Tuple[int, int, np.ndarray]] = [
        (0, 0, np.zeros((0, 0), bool)) if window is None else (window[0].start, window[1].start, mask[k][window].copy())
        for k, window in enumerate(mask_windows(mask))]
    return mask.shape, crops


def unpack_masks(packed: Any) -> Optional[np.ndarray]:
    """The (N, H, W) bool array :func:`pack_masks` packed (equal to it element for element)."""
    if packed is None:
        return None
    shape, crops = packed
    mask = np.zeros(shape, bool)
    for k, (row, column, crop) in enumerate(crops):
        mask[k, row:row + crop.shape[0], column:column + crop.shape[1]] = crop
    return mask


class _Outcome:
    """A worker's future whose result has its masks rebuilt: (FrameResult or None, skip reason or None)."""

    def __init__(self, future: Future) -> None:
        self._future = future

    def result(self) -> Tuple[Optional[Any], Optional[str]]:
        result, problem, packed = self._future.result()
        if result is not None:
            detections = unpack_masks(packed[0])
            object.__setattr__(result.detections, 'mask', detections)
            object.__setattr__(result.objects, 'mask', detections if packed[1] else unpack_masks(packed[2]))
        return result, problem


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

    def submit(self, frame: Any) -> _Outcome:
        """Start perceiving ``frame``; ``result()`` gives (FrameResult or None, skip reason or None)."""
        return _Outcome(self._executor.submit(_perceive, frame))

    def close(self) -> None:
        """Stop the workers (frames still queued are dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
