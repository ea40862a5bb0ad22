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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, TextIO, Tuple

import numpy as np

from robot_vision.compressed_images import DEPTH_ENCODINGS, TRANSPORTS, is_depth
from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import quaternion_from_matrix
from robot_vision.replay.bag import BagSink, BagSource, RawMessage, TopicInfo, topic_table
from robot_vision.replay.progress import Progress
from robot_vision.ros.topics import CAMERA_INFO_WAIT_S, INPUT_TYPES, OUTPUT_TOPICS, resolve

#: Files and folders a replay writes into its output folder (and removes with ``overwrite``).
OUTPUT_NAMES = ('bag', 'results.json', 'summary.json', 'report.html', 'gallery')

RAW_IMAGE, COMPRESSED_IMAGE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'


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
    previous replay's files in the output folder (only those, see OUTPUT_NAMES).
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


# ----------------------------------------------------------------------------- topic selection
def _namespace(topic: str) -> str:
    return topic.rsplit('/', 1)[0]


def select_topics(source: BagSource, codec: Any, overrides: Mapping[str, str] = (),
                  hints: Mapping[str, str] = ()) -> Tuple[Dict[str, str], List[str]]:
    """Choose the topic of each input role; returns ({role: topic}, notes).

    Image topics are told apart by their first message: an Image by its encoding (16UC1/mono16/32FC1
    is depth), a CompressedImage by its format (``compressedDepth`` or a depth encoding is depth,
    see :func:`robot_vision.compressed_images.is_depth`; without an encoding in the format, by the
    topic name). ``overrides`` win; ``hints`` (e.g. the node's configured topic names) are preferred
    when present in the bag (also as the base of a ``.../compressed`` topic), then the usual names
    (``color``/``rgb``, ``aligned``), then raw before compressed. Raises InputError listing the
    bag's topics when no colour or no depth topic can be found.
    """
    topics: Dict[str, TopicInfo] = source.topics
    overrides, hints = dict(overrides), dict(hints)
    notes: List[str] = []
    chosen: Dict[str, str] = {}
    listing = '; '.join(f'{n} [{t}] x{c}' for n, t, c in topic_table(source)) or 'none'
    for role, topic in overrides.items():
        if topic not in topics:
            raise InputError(f'--topics {role}={topic}: no such topic in the bag (topics: {listing})')
        if topics[topic].msgtype not in INPUT_TYPES[role]:
            raise InputError(f'--topics {role}={topic}: expected a {" or ".join(INPUT_TYPES[role])}, '
                             f'got {topics[topic].msgtype}')
        chosen[role] = topic
    outputs = {t.name for t in OUTPUT_TOPICS}
    images = sorted(n for n, t in topics.items() if t.msgtype in (RAW_IMAGE, COMPRESSED_IMAGE)
                    and n.rsplit('/', 1)[-1] not in outputs and t.count > 0)
    kinds = {name: _image_kind(source, codec, name, notes) for name in images}
    for role in ('color', 'depth'):
        if role in chosen:
            continue
        candidates = [n for n in images if kinds[n] == role]
        hint = hints.get(role, '').strip('/')

        def rank(name: str, role: str = role, hint: str = hint) -> Tuple[int, bool, bool, str]:
            plain = name.strip('/')
            base = plain.rsplit('/', 1)[0] if plain.rsplit('/', 1)[-1] in TRANSPORTS else plain
            named = ('color' in name or 'rgb' in name) if role == 'color' else 'aligned' in name
            # the configured topic first, then the usual names, then raw before compressed (lossless)
            return (0 if hint and plain == hint else 1 if hint and base == hint else 2, not named,
                    topics[name].msgtype == COMPRESSED_IMAGE, name)
        candidates.sort(key=rank)
        if not candidates:
            odd = '' if role == 'color' else _not_depth(source, codec, [n for n in images if 'depth' in n
                                                                        and topics[n].msgtype == RAW_IMAGE])
            raise InputError(f'bag {source.path}: no {"colour" if role == "color" else "depth"} image topic '
                             f'(sensor_msgs/Image {"rgb8/bgr8/mono8" if role == "color" else "16UC1/32FC1"} or '
                             f'CompressedImage {"jpeg/png" if role == "color" else "compressedDepth"}) found'
                             f'{odd}; topics: {listing}')
        if len(candidates) > 1:
            notes.append(f'{len(candidates)} {role} topics {sorted(candidates)}: using {candidates[0]} '
                         f'(choose with --topics {role}=TOPIC)')
        chosen[role] = candidates[0]
    if 'camera_info' not in chosen:
        infos = sorted(n for n, t in topics.items() if t.msgtype == 'sensor_msgs/msg/CameraInfo' and t.count)
        hint = hints.get('camera_info', '')
        ranked = sorted(infos, key=lambda n: (n.strip('/') != hint.strip('/'),
                                              _namespace(n) != _namespace(chosen['color']),
                                              _namespace(n) != _namespace(chosen['depth']), n))
        if not ranked:
            raise InputError(f'bag {source.path}: no sensor_msgs/CameraInfo topic found, so the images cannot be '
                             f'deprojected; topics: {listing}')
        chosen['camera_info'] = ranked[0]
    for role, suffix in (('tf', '/tf'), ('tf_static', '/tf_static')):
        if role not in chosen:
            hits = sorted(n for n, t in topics.items() if t.msgtype == 'tf2_msgs/msg/TFMessage'
                          and n.endswith(suffix))
            if hits:
                chosen[role] = hits[0]
    return chosen, notes


def _image_kind(source: BagSource, codec: Any, name: str, notes: List[str]) -> str:
    """'color' or 'depth' for an image topic, from its first message's encoding or compressed format."""
    info = source.topics[name]
    first = next(iter(source.messages([name])), None)
    msg = None
    if first is not None:
        try:
            msg = codec.decode(first.msgtype, first.data)
        except InputError as exc:
            notes.append(f'topic {name}: first message unreadable ({exc})')
    if info.msgtype == COMPRESSED_IMAGE:
        return 'depth' if is_depth(msg.format if msg is not None else '', name) else 'color'
    encoding = msg.encoding if msg is not None else ''
    return 'depth' if encoding in DEPTH_ENCODINGS or (not encoding and 'depth' in name) else 'color'


def _not_depth(source: BagSource, codec: Any, names: List[str]) -> str:
    """'; TOPIC has encoding 'yuv422', which is not a depth encoding (...)' for each raw image topic of ``names``."""
    found = []
    for name in names:
        first = next(iter(source.messages([name])), None)
        try:
            encoding = codec.decode(first.msgtype, first.data).encoding if first is not None else ''
        except InputError:
            continue
        if encoding:
            found.append(f'; {name} has encoding {encoding!r}, which is not a depth encoding (supported: '
                         f'{", ".join(DEPTH_ENCODINGS)})')
    return ''.join(found)


# ----------------------------------------------------------------------------- records
def _r(values: Any, digits: int = 5) -> Any:
    array = np.asarray(values, np.float64)
    if array.ndim == 0:
        value = float(array)
        return round(value, digits) if math.isfinite(value) else None
    return [_r(v, digits) for v in array]


def _pose_record(pose: np.ndarray) -> Dict[str, Any]:
    return {'position': _r(pose[:3, 3]), 'quaternion': _r(quaternion_from_matrix(pose[:3, :3]))}


def frame_record(index: int, result: Any) -> Dict[str, Any]:
    """A JSON-ready, deterministic record of one FrameResult (no wall-clock values)."""
    names = result.class_names or {}
    dets, objects, grasps, tracks = result.detections, result.objects, result.grasps, result.tracks

    def class_name(c: int) -> str:
        return names.get(int(c), 'object' if c < 0 else str(int(c)))

    record: Dict[str, Any] = {
        'index': index, 'stamp': round(float(result.stamp), 6), 'frame_id': result.frame_id,
        'detections': [{'xyxy': _r(dets.xyxy[i], 2), 'class_id': int(dets.class_id[i]),
                        'class': class_name(dets.class_id[i]), 'confidence': _r(dets.confidence[i], 4),
                        'mask_pixels': None if dets.mask is None else int(dets.mask[i].sum())}
                       for i in range(len(dets))],
        'objects': [{**_pose_record(objects.pose[i]), 'size': _r(objects.size[i]),
                     'class_id': int(objects.class_id[i]), 'class': class_name(objects.class_id[i]),
                     'confidence': _r(objects.confidence[i], 4),
                     'detection_index': int(objects.detection_index[i]), 'points': int(len(objects.points[i]))}
                    for i in range(len(objects))],
        'grasps': {'count': len(grasps), 'reason': result.grasp_reason,
                   'scores': _r(grasps.score, 4), 'widths': _r(grasps.width),
                   'object_index': [int(k) for k in grasps.object_index],
                   'best': ({**_pose_record(grasps.pose[0]), 'width': _r(grasps.width[0]),
                             'score': _r(grasps.score[0], 4), 'object_index': int(grasps.object_index[0])}
                            if len(grasps) else None)},
        'tracks': [{'id': int(tracks.track_id[i]), 'position': _r(tracks.position[i]),
                    'velocity': _r(tracks.velocity[i]), 'size': _r(tracks.size[i]), 'yaw': _r(tracks.yaw[i]),
                    'class_id': int(tracks.class_id[i]), 'state': int(tracks.state[i]),
                    'moving': bool(tracks.moving[i]), 'hits': int(tracks.hits[i]),
                    'last_seen': round(float(tracks.last_seen[i]), 6)}
                   for i in range(len(tracks))],
        'fixed_frame': result.fixed_frame,
        'plane': None if result.plane is None else _r(result.plane),
        'warnings': list(result.warnings),
    }
    return record


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
    pipeline = Pipeline(pipeline_settings)  # before any output exists: a bad model leaves nothing behind
    try:
        _prepare_out(out_dir, settings.overwrite)
    except InputError:
        pipeline.close()
        raise
    role_of = {topic: role for role, topic in roles.items()}
    fixed_frame = pipeline_settings.fixed_frame
    expected = min(source.topics[roles['color']].count, source.topics[roles['depth']].count)
    if settings.max_frames:
        expected = min(expected, int(settings.max_frames))
    gallery_at = set(np.unique(np.linspace(0, max(expected - 1, 0), settings.gallery_size).round().astype(int))
                     .tolist()) if settings.gallery_size and expected else set()

    run = ReplayRun(out_dir=out_dir)
    sink = BagSink(out_dir / 'bag') if settings.write_bag else None
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
        for topic in OUTPUT_TOPICS:
            sink.add_topic(resolve(settings.prefix, topic.name), topic.msg_type, latched=topic.latched)
        run.bag_path = out_dir / 'bag'
    pairs: List[Tuple[_Item, _Item]] = []
    policy = ApproximateTimePolicy(2, settings.queue_size, settings.slop, lambda c, d: pairs.append((c, d)))
    tf = TransformBuffer(cache_time_s=60.0)
    state: Dict[str, Any] = {'intrinsics': None, 'label_info': None, 'tf_problem': None,
                             'last': {'color': -math.inf, 'depth': -math.inf}, 'color_stamps': []}
    timings: List[Dict[str, float]] = []
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

    def process(color_item: _Item, depth_item: _Item) -> None:
        stamp = color_item.stamp
        if state['intrinsics'] is None:
            diagnostics.add('calibration', f'no camera_info on {roles["camera_info"]} before this frame: skipped',
                            stamp)
            return
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
            return
        t1 = time.perf_counter()
        try:
            result = pipeline.process(frame)
        except (InputError, ConfigError) as exc:
            diagnostics.add('pipeline', f'frame skipped: {exc}', stamp)
            return
        t2 = time.perf_counter()
        index = len(run.frames)
        run.frames.append(frame_record(index, result))
        for warning in result.warnings:
            units = 'depth scale' in warning or 'implausibly' in warning
            diagnostics.add('units' if units else 'pipeline', warning, stamp, key='depth unit' if units else None)
        overlay = codec.overlay(color, result, camera_to_fixed) if sink is not None or index in gallery_at else None
        if sink is not None:
            for name, msg in codec.result_messages(result, color, camera_to_fixed, overlay):
                if name == 'label_info':
                    key = tuple(sorted(result.class_names.items()))
                    if key == state['label_info']:
                        continue
                    state['label_info'] = key
                write(resolve(settings.prefix, name), color_item.log_ns, codec.encode(msg))
        if index in gallery_at:
            gallery.append((index, stamp, overlay))
        t3 = time.perf_counter()
        timings.append({**{k: float(v) for k, v in result.timings_ms.items()},
                        'decode': (t1 - t0) * 1e3, 'record': (t3 - t2) * 1e3, 'frame': (t3 - t0) * 1e3})
        bar.update()

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
        return bool(settings.max_frames) and len(run.frames) >= settings.max_frames

    try:
        for raw in source.messages():
            if done():
                break
            if stop.received:
                diagnostics.add('run', f'stopped by {stop.received}: the outputs hold the frames processed so far')
                break
            bag_span[0], bag_span[1] = min(bag_span[0], raw.log_ns), max(bag_span[1], raw.log_ns)
            if raw.topic in copied:
                write(raw.topic, raw.log_ns, raw.data)
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
