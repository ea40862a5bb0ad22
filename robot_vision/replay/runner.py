"""Replay a rosbag2 through the core pipeline: pair frames, run, record result topics, summarise.

``replay(bag, out_dir)`` reads colour, depth, camera_info and TF from the bag (topics detected
by message type and encoding, or given), pairs colour and depth by approximate time with the
nodes' own policy (:class:`robot_vision.ros.compat.ApproximateTimePolicy`), looks the camera up
in the fixed frame with the nodes' TF buffer, runs :class:`~robot_vision.pipeline.Pipeline` on
each pair in bag order, and writes into ``out_dir``::

    out_dir/
      bag/             rosbag2 (mcap, zstd): every input message + every result topic
      results.json     per-frame results; deterministic (no wall-clock values)
      summary.json     the report's numbers: counts, classes, tracks, grasps, latency, diagnostics
      report.html      self-contained report (plots and gallery embedded)
      gallery/         annotated frames (JPEG)

Problems with the input (undecodable or mismatched images, missing calibration, stamps going
back, unpaired frames, sync gaps, implausible depth units, a damaged bag) become diagnostics;
whatever was processed is always flushed to the outputs.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Mapping, Optional, TextIO, Tuple

import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.replay.bag import BagSink, BagSource, RawMessage
from robot_vision.replay.pool import FramePool
from robot_vision.replay.progress import Progress
from robot_vision.replay.records import frame_record
from robot_vision.replay.selection import select_topics
from robot_vision.ros.topics import CAMERA_INFO_WAIT_S, INPUT_TYPES, OUTPUT_TOPICS, resolve

#: Files and folders a replay writes into its output folder (and removes with ``overwrite``).
OUTPUT_NAMES = ('bag', 'results.json', 'summary.json', 'report.html', 'gallery')

#: Frames whose output messages may wait for the writer thread of a pooled replay.
MAX_QUEUED_WRITES = 8
#: Result topics a replay writes only when asked (``overlays``, ``clouds``): the costliest to build and store.
OPT_IN_TOPICS = {'detections_overlay': 'overlays', 'object_points': 'clouds'}


@dataclass(frozen=True)
class ReplaySettings:
    """How to replay a bag (units in brackets).

    ``slop`` [s]: the largest stamp difference of a colour/depth pair (default 0.03).
    ``queue_size``: messages per input the approximate-time policy keeps (default 10).
    ``topics``: role -> topic overrides, roles 'color', 'depth', 'camera_info', 'tf', 'tf_static'.
    ``depth_scale`` [m per unit]: overrides the depth encoding's unit (None: 16UC1 mm, 32FC1 m).
    ``prefix``: namespace of the result topics in the output bag (default '/robot_vision').
    ``max_frames``: stop after this many processed frames (0: all). ``gallery_size``: annotated
    frames kept for the report. ``write_bag``: write the output bag. ``overwrite``: replace the
    previous replay's files in the output folder (only those, see OUTPUT_NAMES). ``workers``: processes
    that find the objects of several frames at once (1: all in this process; see
    :mod:`robot_vision.replay.pool`; the results are the same). ``overlays`` / ``clouds``: also write
    the annotated image (``detections_overlay``) / the objects' point cloud (``object_points``) of
    every frame into the output bag (off by default: they are the costliest topics to build and store).
    ``compress``: zstd chunk compression of the output bag (off by default, as ``ros2 bag record``:
    the copied camera images make the bag about 3x larger without it, and compressing them costs
    about 9 ms of CPU per 640x480 frame, 7 % of a 15 Hz replay's CPU on two cores).
    """

    slop: float = 0.03
    queue_size: int = 10
    topics: Tuple[Tuple[str, str], ...] = ()
    depth_scale: Optional[float] = None
    prefix: str = '/robot_vision'
    max_frames: int = 0
    gallery_size: int = 8
    write_bag: bool = True
    overwrite: bool = False
    workers: int = 1
    overlays: bool = False
    clouds: bool = False
    compress: bool = False

    def __post_init__(self) -> None:
        """Validate every field; ConfigError names the field, the expected and the actual value."""
        topics = self.topics
        if isinstance(topics, Mapping):
            topics = tuple(sorted(topics.items()))
        object.__setattr__(self, 'topics', tuple((str(r), str(t)) for r, t in topics))
        for role, _ in self.topics:
            if role not in INPUT_TYPES:
                raise ConfigError(f'ReplaySettings.topics: expected roles among {sorted(INPUT_TYPES)}, got {role!r}')
        if not (isinstance(self.slop, (int, float)) and math.isfinite(self.slop) and self.slop >= 0):
            raise ConfigError(f'ReplaySettings.slop: expected a non-negative number of seconds, got {self.slop!r}')
        if self.depth_scale is not None and not (math.isfinite(self.depth_scale) and self.depth_scale > 0):
            raise ConfigError(f'ReplaySettings.depth_scale: expected a positive number of metres per unit or '
                              f'None, got {self.depth_scale!r}')
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or self.queue_size < 1:
            raise ConfigError(f'ReplaySettings.queue_size: expected an integer >= 1, got {self.queue_size!r}')
        if int(self.max_frames) < 0:
            raise ConfigError(f'ReplaySettings.max_frames: expected >= 0 (0: all), got {self.max_frames}')
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f'ReplaySettings.workers: expected an integer >= 1, got {self.workers!r}')
        if int(self.gallery_size) < 0:
            raise ConfigError(f'ReplaySettings.gallery_size: expected >= 0, got {self.gallery_size}')


@dataclass
class ReplayRun:
    """What a replay produced: paths, per-frame records, the summary and diagnostics."""

    out_dir: Path
    frames: List[Dict[str, Any]] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)
    diagnostics: List[Dict[str, Any]] = field(default_factory=list)
    bag_path: Optional[Path] = None
    report_path: Optional[Path] = None
    #: Outputs that could not be written completely (disk full, I/O error), each with the reason.
    incomplete: List[str] = field(default_factory=list)
    #: Per processed frame, its stage times in ms ('frame': decode to written, with a pool also the wait).
    timings: List[Dict[str, float]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        """Number of frames the pipeline processed."""
        return len(self.frames)

    @property
    def exit_code(self) -> int:
        """3 when an output is incomplete, else 0 when at least one frame was processed, else 1."""
        return 3 if self.incomplete else 0 if self.frames else 1


def load_config(path: Optional[str]) -> Tuple[Any, Dict[str, Any]]:
    """Read PipelineSettings and the node parameters from a YAML file's ``robot_vision`` section.

    Accepts the plain form (``robot_vision: {detector: ...}``) and the ROS parameter-file forms
    (``/**: {ros__parameters: {...}}``, as in config/robot_vision.yaml, or ``robot_vision:
    {ros__parameters: {...}}``). Returns (PipelineSettings, node params). Keys that are neither
    pipeline settings nor parameters of a robot_vision node raise ConfigError.
    """
    from robot_vision.config import load_yaml_section
    from robot_vision.pipeline import PipelineSettings
    from robot_vision.ros.node_parameters import ALL_NAMES, check_value
    if path is None:
        return PipelineSettings(), {}
    try:
        section = dict(load_yaml_section(path, '/**'))
    except ConfigError:
        section = dict(load_yaml_section(path, 'robot_vision'))
    if 'ros__parameters' in section:
        section = dict(section['ros__parameters'] or {})
    fields = {f.name for f in dataclasses.fields(PipelineSettings)}
    node = {k: section.pop(k) for k in list(section) if k not in fields and k in ALL_NAMES}
    problems = [p for p in (check_value(k, v) for k, v in node.items()) if p]
    if problems:
        raise ConfigError(f'{path}: ' + '; '.join(problems))
    return PipelineSettings.from_dict(section), node


# ----------------------------------------------------------------------------- the replay
class _Diagnostics:
    """Collects diagnostics; repeated (kind, message) pairs are counted rather than repeated."""

    def __init__(self) -> None:
        self.items: List[Dict[str, Any]] = []
        self._index: Dict[Tuple[str, str], Dict[str, Any]] = {}

    def add(self, kind: str, message: str, stamp: Optional[float] = None, key: Optional[str] = None) -> None:
        """Record a diagnostic; entries with the same (kind, key or message) are counted, the first kept."""
        key = (kind, message if key is None else key)
        if key in self._index:
            self._index[key]['count'] += 1
            return
        item = {'kind': kind, 'message': message, 'stamp': None if stamp is None else round(stamp, 6),
                'count': 1}
        self._index[key] = item
        self.items.append(item)


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / '.robot_vision_write_test'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as exc:
        blocked = isinstance(exc, (FileExistsError, NotADirectoryError))
        raise InputError(f'--out {out_dir}: cannot write the outputs there: {exc.strerror or exc}'
                         f'{" (a file is in the way)" if blocked else ""}') from exc
    present = [n for n in OUTPUT_NAMES if (out_dir / n).exists()]
    if present and not overwrite:
        raise InputError(f'output folder {out_dir} already holds a replay ({", ".join(present)}); '
                         f'choose another --out or pass --overwrite')
    for name in present:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


class _StopSignals:
    """While a replay runs, SIGINT, SIGTERM and SIGHUP ask it to stop after the message in hand.

    The outputs are then written with every signal deferred, so that a second Ctrl-C (or a
    SIGTERM after it) cannot cut a file short. Handlers are only installed on the main thread.
    """

    NAMES = ('SIGINT', 'SIGTERM', 'SIGHUP')

    def __init__(self, stream: Optional[TextIO]) -> None:
        self.received: Optional[str] = None
        self._stream = stream
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in self.NAMES:
                number = getattr(signal, name, None)
                if number is not None:
                    self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def _on_signal(self, number: int, frame: Any) -> None:
        first = self.received is None
        self.received = self.received or signal.Signals(number).name
        if first and self._stream is not None:
            print(f'\nstopping ({self.received}): writing the outputs of the frames processed so far; further '
                  f'signals are ignored until they are written', file=self._stream, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


class _Item:
    """A decoded input message as the sync policy sees it: ``header`` plus the message, type and log time."""

    __slots__ = ('header', 'msg', 'msgtype', 'log_ns', 'stamp')

    def __init__(self, msg: Any, msgtype: str, log_ns: int, stamp: float):
        self.header, self.msg, self.msgtype, self.log_ns, self.stamp = msg.header, msg, msgtype, log_ns, stamp


def replay(bag: Path | str, out_dir: Path | str, pipeline_settings: Any = None,
           settings: ReplaySettings = ReplaySettings(), topic_hints: Mapping[str, str] = (),
           progress: Optional[TextIO] = sys.stderr) -> ReplayRun:
    """Replay ``bag`` through the pipeline and write the outputs into ``out_dir`` (see module doc).

    ``pipeline_settings`` is a PipelineSettings (None: defaults). ``topic_hints`` maps roles to
    preferred topic names (used when present). ``progress`` is the stream of the progress bar
    (None: silent). Raises InputError when the bag cannot be opened or has no usable topics;
    problems met while replaying become ``run.diagnostics`` and the outputs hold everything
    processed until then. ``run.exit_code`` is 1 when no frame could be processed.
    """
    with _StopSignals(progress) as stop:  # a signal stops the replay, and the outputs are still written
        return _replay(Path(bag), Path(out_dir), pipeline_settings, settings, topic_hints, progress, stop)


def _replay(bag: Path, out_dir: Path, pipeline_settings: Any, settings: ReplaySettings,
            topic_hints: Mapping[str, str], progress: Optional[TextIO], stop: _StopSignals) -> ReplayRun:
    from robot_vision.errors import TransformError
    from robot_vision.grasping.workers import GraspWorkerError
    from robot_vision.pipeline import Pipeline, PipelineSettings
    from robot_vision.ros.bag_codec import MessageCodec
    from robot_vision.replay.report import write_outputs
    from robot_vision.ros.compat import ApproximateTimePolicy, TransformBuffer
    from robot_vision.types import RGBDFrame

    pipeline_settings = pipeline_settings or PipelineSettings()
    source = BagSource(bag)
    codec = MessageCodec()
    diagnostics = _Diagnostics()
    if source.salvaged:
        diagnostics.add('bag', source.error or 'bag index unreadable; records were streamed')
    roles, notes = select_topics(source, codec, dict(settings.topics), topic_hints)
    for note in notes:
        diagnostics.add('topics', note)
    expected = min(source.topics[roles['color']].count, source.topics[roles['depth']].count)
    if settings.max_frames:
        expected = min(expected, int(settings.max_frames))
    pooled = settings.workers > 1 and expected > 1
    # the pipeline before any output exists: a bad model leaves nothing behind
    # pooled, grasps run in a process of their own (BLAS single-threaded there, as in the pool's workers:
    # the parent's BLAS threads made each search about 2x slower beside them), off the parent's GIL
    pipeline = Pipeline(pipeline_settings, grasp_processes=1 if pooled and pipeline_settings.enable_grasps else 0)
    try:
        _prepare_out(out_dir, settings.overwrite)
    except InputError:
        pipeline.close()
        raise
    role_of = {topic: role for role, topic in roles.items()}
    fixed_frame = pipeline_settings.fixed_frame
    gallery_at = set(np.unique(np.linspace(0, max(expected - 1, 0), settings.gallery_size).round().astype(int))
                     .tolist()) if settings.gallery_size and expected else set()

    run = ReplayRun(out_dir=out_dir)
    pool = FramePool(pipeline_settings, settings.workers) if pooled else None
    # with a pool, building, encoding and writing the output messages runs beside it, in bag order
    writer = ThreadPoolExecutor(1, thread_name_prefix='replay-writer') if pool is not None else None
    writes: Deque[Future] = deque()
    in_flight: Deque[Tuple[Tuple[Any, ...], Future]] = deque()
    wanted = [t.name for t in OUTPUT_TOPICS if t.name not in OPT_IN_TOPICS or getattr(settings, OPT_IN_TOPICS[t.name])]
    sink = BagSink(out_dir / 'bag', compress=settings.compress) if settings.write_bag else None
    copied = set()
    if sink is not None:
        results = {resolve(settings.prefix, topic.name) for topic in OUTPUT_TOPICS}
        for info in source.topics.values():
            if info.name in results:
                diagnostics.add('topics', f'{info.name}: the input bag already holds this result topic (a replay of '
                                          f'a replay?); its old messages are not copied to the output bag')
                continue
            try:
                sink.add_topic(info.name, info.msgtype, info.msgdef, info.digest, info.qos,
                               latched=info.name.endswith('tf_static'))
                copied.add(info.name)
            except InputError as exc:
                diagnostics.add('topics', f'{info.name} is not copied to the output bag: {exc}')
        for topic in (t for t in OUTPUT_TOPICS if t.name in wanted):
            sink.add_topic(resolve(settings.prefix, topic.name), topic.msg_type, latched=topic.latched)
        run.bag_path = out_dir / 'bag'
    pairs: List[Tuple[_Item, _Item]] = []
    policy = ApproximateTimePolicy(2, settings.queue_size, settings.slop, lambda c, d: pairs.append((c, d)))
    tf = TransformBuffer(cache_time_s=60.0)
    state: Dict[str, Any] = {'intrinsics': None, 'label_info': None, 'tf_problem': None,
                             'last': {'color': -math.inf, 'depth': -math.inf}, 'color_stamps': [],
                             'pool_failed': None}
    timings = run.timings
    gallery: List[Tuple[int, float, np.ndarray]] = []
    bar = Progress(expected, progress)
    started = time.perf_counter()
    bag_span = [math.inf, -math.inf]

    def camera_pose(frame_id: str, stamp: float) -> Optional[np.ndarray]:
        try:
            return tf.lookup(fixed_frame, frame_id, stamp)
        except (TransformError, InputError) as exc:
            if state['tf_problem'] is None:
                state['tf_problem'] = str(exc)
                diagnostics.add('tf', f'no camera pose in {fixed_frame!r}: {exc}; tracks are kept in the '
                                      f'camera frame', stamp)
            return None

    def prepare(color_item: _Item, depth_item: _Item) -> Optional[Tuple[Any, ...]]:
        """Decode a pair into (RGBDFrame, colour, camera pose, log time, t0, t1); None: skipped."""
        stamp = color_item.stamp
        if state['intrinsics'] is None:
            diagnostics.add('calibration', f'no camera_info on {roles["camera_info"]} before this frame: skipped',
                            stamp)
            return None
        t0 = time.perf_counter()
        try:
            color = codec.color(color_item.msg)
            depth = codec.depth(depth_item.msg, settings.depth_scale)
            frame_id = color_item.msg.header.frame_id or 'camera_color_optical_frame'
            camera_to_fixed = camera_pose(frame_id, stamp)
            frame = RGBDFrame(state['intrinsics'], color=color, depth=depth, stamp=stamp, frame_id=frame_id,
                              camera_to_fixed=camera_to_fixed)
        except InputError as exc:
            diagnostics.add('input', f'frame skipped: {exc}', stamp)
            return None
        return frame, color, camera_to_fixed, color_item.log_ns, t0, time.perf_counter()

    def process(color_item: _Item, depth_item: _Item) -> None:
        prepared = prepare(color_item, depth_item)
        if prepared is None:
            return
        if pool is not None and state['pool_failed'] is None:
            try:
                in_flight.append((prepared, pool.submit(prepared[0])))
            except BrokenProcessPool as exc:
                pool_failed(exc)
                while in_flight:  # the frames before this one first
                    collect()
            else:
                while len(in_flight) >= pool.capacity:
                    collect()
                return
        finish(prepared, *perceive_here(prepared[0]))

    def perceive_here(frame: Any) -> Tuple[Any, Optional[str]]:
        try:
            return pipeline.perceive(frame), None
        except (InputError, ConfigError) as exc:
            return None, str(exc)

    def collect() -> None:
        prepared, future = in_flight.popleft()
        try:
            outcome = future.result()
        except BrokenProcessPool as exc:  # a worker died (killed, out of memory): go on in this process
            pool_failed(exc)
            outcome = perceive_here(prepared[0])
        finish(prepared, *outcome)

    def pool_failed(exc: BaseException) -> None:
        if state['pool_failed'] is None:
            state['pool_failed'] = str(exc)
            diagnostics.add('run', f'a worker process stopped ({exc}); the remaining frames were processed in '
                                   f'the main process, with the same results')

    def finish(prepared: Tuple[Any, ...], result: Any, problem: Optional[str]) -> None:
        """Track, plan grasps, record and write one perceived frame (in bag order)."""
        frame, color, camera_to_fixed, log_ns, t0, t1 = prepared
        if result is not None:
            try:
                pipeline.add_tracks(result, frame)
                try:
                    pipeline.add_grasps(result, frame)
                except GraspWorkerError as exc:  # the grasp process died: this frame on, grasps are planned here
                    diagnostics.add('run', f'the grasp process stopped ({exc}); the grasps of this frame and the '
                                           f'next were planned in the main process, with the same results')
                    pipeline.grasp_planner.close()
                    pipeline.add_grasps(result, frame)
            except (InputError, ConfigError) as exc:
                problem = str(exc)
        if problem is not None:
            diagnostics.add('pipeline', f'frame skipped: {problem}', frame.stamp)
            return
        t2 = time.perf_counter()
        index = len(run.frames)
        run.frames.append(frame_record(index, result))
        for warning in result.warnings:
            units = 'depth scale' in warning or 'implausibly' in warning
            diagnostics.add('units' if units else 'pipeline', warning, frame.stamp,
                            key='depth unit' if units else None)
        if writer is None:
            emit(index, result, color, camera_to_fixed, log_ns)
        else:
            while len(writes) > MAX_QUEUED_WRITES:
                writes.popleft().result()
            writes.append(writer.submit(emit, index, result, color, camera_to_fixed, log_ns))
        t3 = time.perf_counter()
        timings.append({**{k: float(v) for k, v in result.timings_ms.items()},
                        'decode': (t1 - t0) * 1e3, 'record': (t3 - t2) * 1e3, 'frame': (t3 - t0) * 1e3})
        bar.update()

    def emit(index: int, result: Any, color: np.ndarray, camera_to_fixed: Optional[np.ndarray], log_ns: int) -> None:
        """The frame's result messages into the output bag and its overlay into the gallery (when chosen)."""
        overlay = (codec.overlay(color, result, camera_to_fixed)
                   if index in gallery_at or (sink is not None and settings.overlays) else None)
        if sink is not None:
            for name, msg in codec.outputs.result_messages(result, color, camera_to_fixed, overlay, wanted):
                if name == 'label_info':
                    key = tuple(sorted(result.class_names.items()))
                    if key == state['label_info']:
                        continue
                    state['label_info'] = key
                write(resolve(settings.prefix, name), log_ns, codec.encode(msg))
        if index in gallery_at:
            gallery.append((index, result.stamp, overlay))

    def write(topic: str, log_ns: int, data: bytes) -> None:
        nonlocal sink
        if sink is None:
            return
        try:
            sink.write(topic, log_ns, data)
        except OSError as exc:  # disk full, I/O error: keep replaying into the other outputs
            run.incomplete.append(f'bag: writing stopped at {sum(sink.counts.values())} messages: '
                                  f'{exc.strerror or exc}')
            _close_sink(sink, run)
            sink = None

    def done() -> bool:
        return bool(settings.max_frames) and len(run.frames) + len(in_flight) >= settings.max_frames

    def copy(topic: str, log_ns: int, data: bytes) -> None:
        if writer is None:
            write(topic, log_ns, data)
        else:
            writes.append(writer.submit(write, topic, log_ns, data))

    try:
        for raw in source.messages():
            if done():
                break
            if stop.received:
                diagnostics.add('run', f'stopped by {stop.received}: the outputs hold the frames processed so far')
                break
            bag_span[0], bag_span[1] = min(bag_span[0], raw.log_ns), max(bag_span[1], raw.log_ns)
            if raw.topic in copied:
                copy(raw.topic, raw.log_ns, raw.data)
            role = role_of.get(raw.topic)
            if role is None:
                continue
            _consume(raw, role, codec, state, tf, policy, diagnostics, _Item)
            while pairs and not done():
                if state['intrinsics'] is None and raw.log_ns - pairs[0][0].log_ns < CAMERA_INFO_WAIT_S * 1e9:
                    break  # as the nodes do, wait for a CameraInfo logged just after the first images
                process(*pairs.pop(0))
        else:
            while pairs and not done():  # the bag ended while they waited for a CameraInfo
                process(*pairs.pop(0))
    except KeyboardInterrupt:  # only where no handler could be installed (a replay off the main thread)
        diagnostics.add('run', 'interrupted by the user (Ctrl-C): the outputs hold the frames processed so far')
    finally:
        if pool is not None:
            try:
                while in_flight:  # the frames still in the workers (also after a stop signal)
                    collect()
            finally:
                pool.close()
        if writer is not None:
            writer.shutdown(wait=True)
            for future in writes:
                future.result()  # a failure to build a message is raised here, as without a writer
        bar.close()
        wall = time.perf_counter() - started
        if source.error and not source.salvaged:
            diagnostics.add('bag', f'{source.error}: the outputs hold the frames read before it')
        elif source.salvaged and source.error and all(d['message'] != source.error for d in diagnostics.items):
            diagnostics.add('bag', source.error)
        unpaired = policy.dropped + policy.pending
        if unpaired and not done():
            diagnostics.add('dropped', f'{unpaired} colour/depth message(s) were not paired (no partner within '
                                       f'{settings.slop * 1e3:.0f} ms, stamp not after the last pair\'s, or queue '
                                       f'overflow); {policy.matched} pairs formed')
        _sync_gaps(state['color_stamps'], diagnostics)
        if sink is not None:
            _close_sink(sink, run)
        pipeline.close()
        source.close()
        run.diagnostics = diagnostics.items
        span = (bag_span[1] - bag_span[0]) * 1e-9 if math.isfinite(bag_span[0]) else 0.0
        run.summary = write_outputs(run, source_path=Path(bag), roles=roles, timings=timings, gallery=gallery,
                                    wall_s=wall, bag_span_s=span, expected=expected,
                                    pipeline_settings=pipeline_settings, settings=settings)
        run.report_path = out_dir / 'report.html'
    return run


def _close_sink(sink: BagSink, run: ReplayRun) -> None:
    """Close the output bag (index and metadata.yaml); a failure marks the bag incomplete."""
    try:
        sink.close()
    except Exception as exc:  # noqa: BLE001 - after a failed write the writer can fail in any way
        if not any(item.startswith('bag:') for item in run.incomplete):
            run.incomplete.append(f'bag: index and metadata.yaml not written: {exc}')


def _consume(raw: RawMessage, role: str, codec: Any, state: Dict[str, Any], tf: Any, policy: Any,
             diagnostics: _Diagnostics, item: type) -> None:
    """Decode one input message of ``role`` and feed it to the TF buffer, the calibration or the sync policy."""
    try:
        msg = codec.decode(raw.msgtype, raw.data)
    except InputError as exc:
        diagnostics.add('input', f'{raw.topic}: {exc}', raw.log_ns * 1e-9)
        return
    if role in ('tf', 'tf_static'):
        for parent, child, stamp, translation, quaternion in codec.transforms(msg):
            try:
                tf.set_transform(parent, child, stamp, translation, quaternion, static=role == 'tf_static')
            except InputError as exc:
                diagnostics.add('tf', f'{raw.topic}: transform ignored: {exc}', stamp)
        return
    if role == 'camera_info':
        try:
            state['intrinsics'] = codec.intrinsics(msg)
        except InputError as exc:
            diagnostics.add('calibration', f'{raw.topic}: {exc}', raw.log_ns * 1e-9)
        return
    stamp, _ = codec.header(msg)
    if stamp == 0.0:
        diagnostics.add('stamps', f'{raw.topic}: header stamp is zero; such frames cannot be paired by time')
    if stamp <= state['last'][role]:
        diagnostics.add('stamps', f'{raw.topic}: stamp {stamp:.6f} is not after the previous message\'s '
                                  f'{state["last"][role]:.6f} (unsorted stamps)', stamp)
    state['last'][role] = max(stamp, state['last'][role])
    if role == 'color':
        state['color_stamps'].append(stamp)
    policy.add(0 if role == 'color' else 1, item(msg, raw.msgtype, raw.log_ns, stamp))


def _sync_gaps(stamps: List[float], diagnostics: _Diagnostics) -> None:
    """Report colour-stream gaps longer than 2.5 median frame periods."""
    if len(stamps) < 3:
        return
    diffs = np.diff(np.asarray(stamps))
    period = float(np.median(diffs[diffs > 0])) if np.any(diffs > 0) else 0.0
    if period <= 0:
        return
    for k in np.flatnonzero(diffs > 2.5 * period):
        diagnostics.add('sync', f'gap of {diffs[k]:.3f} s in the colour stream after {stamps[k]:.3f} '
                                f'(median period {period:.3f} s): frames missing from the recording',
                        float(stamps[k]))
