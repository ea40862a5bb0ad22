"""One interface over tf2_ros/message_filters (on a robot) and builtin equivalents (where they are missing).

Nothing else in robot_vision imports ``tf2_ros`` or ``message_filters``: nodes use

* :class:`TransformSource` -- TF lookups at a stamp with a timeout. Wraps ``tf2_ros.Buffer`` +
  ``TransformListener`` when ``tf2_ros`` imports, otherwise a builtin listener of ``/tf`` and
  ``/tf_static`` over a :class:`TransformBuffer` (interpolating, chaining, tf2's QoS).
* :class:`ApproximateSync` -- approximate-time synchronisation of N header-stamped inputs. Wraps
  ``message_filters.ApproximateTimeSynchronizer`` when ``message_filters`` imports, otherwise the
  builtin :class:`ApproximateTimePolicy`.
* :func:`launch_available` -- whether ``launch``/``launch_ros`` import (for launch_testing tests).

``backend`` on both classes says which path is in use (``'tf2_ros'`` / ``'message_filters'`` or
``'builtin'``); pass ``backend='builtin'`` to force the builtin path. Times are float seconds of the
messages' header stamps (ROS time, i.e. sim time under ``use_sim_time``). Transforms are 4x4 float64
matrices mapping points in ``source_frame`` to ``target_frame`` (``p_target = T @ p_source``).
"""

from __future__ import annotations

import bisect
import functools
import importlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rclpy.callback_groups import CallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from robot_vision.errors import ConfigError, InputError, TransformError
from robot_vision.geometry import invert_transform, make_transform, matrix_from_quaternion

try:  # the ROS distro's packages, present on a robot, absent from PyPI
    import tf2_ros as _tf2_ros
except ImportError:  # pragma: no cover - depends on the machine
    _tf2_ros = None
try:
    import message_filters as _message_filters
except ImportError:  # pragma: no cover - depends on the machine
    _message_filters = None

__all__ = ['TransformSource', 'TransformBuffer', 'ApproximateSync', 'ApproximateTimePolicy',
           'launch_available', 'TF_QOS', 'TF_STATIC_QOS']

#: QoS of tf2_ros' dynamic listener: reliable, volatile, keep last 100.
TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
#: QoS of tf2_ros' static listener: reliable, transient local (late joiners get the latched set), keep last 100.
TF_STATIC_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)

_STAMP_TOLERANCE_S = 1e-6  # float seconds of epoch stamps resolve to ~0.2 us; bounds are checked with this slack
_POLL_S = 0.005  # sleep between polls while a lookup waits for data


@functools.lru_cache(maxsize=1)
def launch_available() -> bool:
    """Return whether the ``launch`` and ``launch_ros`` packages import (needed by launch_testing tests)."""
    try:
        importlib.import_module('launch')
        importlib.import_module('launch_ros')
    except ImportError:
        return False
    return True


def _pick_backend(requested: Optional[str], native: str, available: bool, what: str) -> str:
    if requested is None:
        return native if available else 'builtin'
    if requested not in (native, 'builtin'):
        raise ConfigError(f'backend: expected None, {native!r} or \'builtin\', got {requested!r}')
    if requested == native and not available:
        raise ConfigError(f'backend: {native!r} requested but the {native} package does not import '
                          f'here; use backend=None or \'builtin\' for the {what} fallback')
    return requested


def _check_finite(name: str, value: float, minimum: float, error: type, strict: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise error(f'{name}: expected a number, got {value!r}') from None
    bad = not math.isfinite(value) or (value <= minimum if strict else value < minimum)
    if bad:
        relation = '>' if strict else '>='
        raise error(f'{name}: expected a finite number {relation} {minimum}, got {value!r}')
    return value


def _stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# ============================================================================ TF: pure buffer
def _slerp(q0: np.ndarray, q1: np.ndarray, alpha: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (x, y, z, w), shortest arc, unit result."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: normalised lerp is exact to float precision
        q = q0 + alpha * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(dot, 1.0))
    sin_theta = math.sin(theta)
    return (math.sin((1.0 - alpha) * theta) * q0 + math.sin(alpha * theta) * q1) / sin_theta


@dataclass
class _Edge:
    """Transforms of one child frame in its parent frame: one static value, or a time-ordered history."""

    parent: str
    static: bool
    stamps: List[float] = field(default_factory=list)
    translations: List[np.ndarray] = field(default_factory=list)
    quaternions: List[np.ndarray] = field(default_factory=list)

    def at(self, stamp_s: float) -> Optional[np.ndarray]:
        """The 4x4 parent<-child transform at ``stamp_s`` (interpolated), or None outside the buffer."""
        if self.static:
            return make_transform(matrix_from_quaternion(self.quaternions[0]), self.translations[0])
        first, last = self.stamps[0], self.stamps[-1]
        if stamp_s < first - _STAMP_TOLERANCE_S or stamp_s > last + _STAMP_TOLERANCE_S:
            return None
        stamp_s = min(max(stamp_s, first), last)
        i = bisect.bisect_left(self.stamps, stamp_s)
        if self.stamps[i] == stamp_s or i == 0:
            return make_transform(matrix_from_quaternion(self.quaternions[i]), self.translations[i])
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        alpha = (stamp_s - t0) / (t1 - t0)
        translation = (1.0 - alpha) * self.translations[i - 1] + alpha * self.translations[i]
        rotation = _slerp(self.quaternions[i - 1], self.quaternions[i], alpha)
        return make_transform(matrix_from_quaternion(rotation), translation)


class TransformBuffer:
    """A thread-safe TF tree with per-edge history: what tf2's BufferCore does, in numpy, without ROS.

    Each child frame has one parent edge (the latest parent wins, as a re-parented frame drops its
    history). Dynamic edges keep a time-ordered history of ``cache_time_s`` seconds behind their newest
    stamp (as tf2: each insertion first prunes data older than that behind the newest stamp so far, and
    rejects new data older than it); lookups between two stamps interpolate the translation linearly
    and the rotation by slerp; lookups outside an edge's interval fail with an extrapolation error
    (exact boundary stamps are fine). Static edges are valid at all times. Answers and error kinds are
    those of tf2's BufferCore on the same data (test/ros/test_compat_tf.py compares them).
    Lookups chain through the tree via the common ancestor of both frames::

                 odom                 lookup('camera_optical', 'odom', t) =
                   |  (dynamic)         inv(T_odom_optical(t))
               base_link              T_odom_optical(t) = T_odom_base(t) @ T_base_cam @ T_cam_opt
                   |  (static)
              camera_link
                   |  (static)
             camera_optical
    """

    def __init__(self, cache_time_s: float = 10.0):
        self.cache_time_s = _check_finite('cache_time_s', cache_time_s, 0.0, ConfigError, strict=True)
        self._edges: Dict[str, _Edge] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing
    def set_transform(self, parent: str, child: str, stamp_s: float, translation: Sequence[float],
                      quaternion: Sequence[float], static: bool = False) -> bool:
        """Insert the pose of ``child`` in ``parent`` (metres; quaternion x, y, z, w) at ``stamp_s`` seconds.

        Returns False (and stores nothing) for dynamic data older than the cache window behind the
        edge's newest stamp, as tf2 ignores it. Raises InputError for empty or '/'-prefixed frame ids,
        parent == child, non-finite values or a zero quaternion.
        """
        for name, frame in (('parent frame_id', parent), ('child_frame_id', child)):
            if not isinstance(frame, str) or not frame or frame.startswith('/'):
                raise InputError(f'{name}: expected a non-empty frame id without a leading \'/\', got {frame!r}')
        if parent == child:
            raise InputError(f'child_frame_id: expected a frame different from its parent, got {child!r} for both')
        t = np.asarray(translation, np.float64).reshape(-1)
        q = np.asarray(quaternion, np.float64).reshape(-1)
        if t.shape != (3,) or q.shape != (4,) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
            raise InputError(f'transform {parent!r} -> {child!r}: expected a finite 3-vector and quaternion, '
                             f'got translation {t.tolist()} and rotation {q.tolist()}')
        norm = float(np.linalg.norm(q))
        if norm < 1e-9:
            raise InputError(f'transform {parent!r} -> {child!r}: expected a non-zero quaternion, got {q.tolist()}')
        q = q / norm
        stamp_s = float(stamp_s)
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != bool(static):
                edge = self._edges[child] = _Edge(parent, bool(static))
            if static:
                edge.stamps, edge.translations, edge.quaternions = [stamp_s], [t], [q]
                return True
            if edge.stamps:  # as tf2's TimeCache: prune against the newest stamp before this one, then insert
                oldest_kept = edge.stamps[-1] - self.cache_time_s
                cut = bisect.bisect_left(edge.stamps, oldest_kept)
                del edge.stamps[:cut], edge.translations[:cut], edge.quaternions[:cut]
                if stamp_s < oldest_kept:
                    return False
            i = bisect.bisect_left(edge.stamps, stamp_s)
            if i < len(edge.stamps) and edge.stamps[i] == stamp_s:
                edge.translations[i], edge.quaternions[i] = t, q
            else:
                edge.stamps.insert(i, stamp_s)
                edge.translations.insert(i, t)
                edge.quaternions.insert(i, q)
            return True

    def clear(self) -> None:
        """Forget every transform (e.g. after a jump back in sim time)."""
        with self._lock:
            self._edges.clear()

    # ------------------------------------------------------------------ reading
    def frames(self) -> List[str]:
        """All frame ids seen so far (parents and children), sorted."""
        with self._lock:
            return self._frames_locked()

    def _frames_locked(self) -> List[str]:
        names = set(self._edges)
        names.update(edge.parent for edge in self._edges.values())
        return sorted(names)

    def can_transform(self, target_frame: str, source_frame: str, stamp_s: float) -> bool:
        """Return whether :meth:`lookup` would succeed now."""
        try:
            self.lookup(target_frame, source_frame, stamp_s)
        except TransformError:
            return False
        return True

    def lookup(self, target_frame: str, source_frame: str, stamp_s: float) -> np.ndarray:
        """The 4x4 float64 transform mapping points in ``source_frame`` to ``target_frame`` at ``stamp_s``.

        ``stamp_s`` = 0 means the latest time at which every edge of the chain has data (tf2's
        convention). Raises TransformError (``reason`` 'invalid', 'missing_frame', 'disconnected' or
        'extrapolation') with the known frames and the buffered interval in the message.
        """
        for name, frame in (('target_frame', target_frame), ('source_frame', source_frame)):
            if not isinstance(frame, str) or not frame or frame.startswith('/'):
                raise TransformError(f'{name}: expected a non-empty frame id without a leading \'/\', '
                                     f'got {frame!r}', 'invalid')
        stamp_s = _check_finite('stamp_s', stamp_s, 0.0, InputError)
        if target_frame == source_frame:
            return np.eye(4)
        what = f'transform from {source_frame!r} to {target_frame!r}'
        with self._lock:
            known = self._frames_locked()
            for frame in (source_frame, target_frame):
                if frame not in known:
                    listing = ', '.join(known) if known else 'none: no transforms received yet'
                    raise TransformError(f'{what}: frame {frame!r} does not exist in the TF tree; '
                                         f'known frames: [{listing}]', 'missing_frame')
            source_chain = self._chain(source_frame)
            target_chain = self._chain(target_frame)
            ancestor = next((f for f in source_chain if f in set(target_chain)), None)
            if ancestor is None:
                # tf2 walks both chains at the stamp: an edge without data there is reported before the trees
                # are found disconnected (a stamp-0 lookup checks connectivity only).
                for child in source_chain[:-1] + target_chain[:-1] if stamp_s else []:
                    if self._edges[child].at(stamp_s) is None:
                        raise self._extrapolation_error(what, stamp_s, child, self._edges[child])
                raise TransformError(f'{what}: the frames are not connected: {source_frame!r} is in the tree '
                                     f'rooted at {source_chain[-1]!r}, {target_frame!r} in the tree rooted at '
                                     f'{target_chain[-1]!r}; known frames: [{", ".join(known)}]', 'disconnected')
            up_source = source_chain[:source_chain.index(ancestor)]
            up_target = target_chain[:target_chain.index(ancestor)]
            edges = [(child, self._edges[child]) for child in up_source + up_target]
            if stamp_s == 0.0:
                stamp_s = self._latest_common_time(edges, what)
            matrices = {}
            for child, edge in edges:
                matrix = edge.at(stamp_s)
                if matrix is None:
                    raise self._extrapolation_error(what, stamp_s, child, edge)
                matrices[child] = matrix
        source_in_ancestor = np.eye(4)
        for child in up_source:  # walk up: T_anc_src = T_anc_p @ ... @ T_p1_src
            source_in_ancestor = matrices[child] @ source_in_ancestor
        target_in_ancestor = np.eye(4)
        for child in up_target:
            target_in_ancestor = matrices[child] @ target_in_ancestor
        return invert_transform(target_in_ancestor) @ source_in_ancestor

    def _chain(self, frame: str) -> List[str]:
        """The frame, its parent, ... up to the root of its tree."""
        chain = [frame]
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]].parent
            if parent in chain:
                raise TransformError(f'the TF tree has a loop: {" -> ".join(chain + [parent])}', 'invalid')
            chain.append(parent)
        return chain

    def _latest_common_time(self, edges: List[Tuple[str, _Edge]], what: str) -> float:
        dynamic = [(child, edge) for child, edge in edges if not edge.static]
        if not dynamic:
            return 0.0  # all static: valid at any time
        latest = min(edge.stamps[-1] for _, edge in dynamic)
        oldest = max(edge.stamps[0] for _, edge in dynamic)
        if oldest > latest + _STAMP_TOLERANCE_S:
            spans = '; '.join(f'{edge.parent!r} -> {child!r}: [{edge.stamps[0]:.6f}, {edge.stamps[-1]:.6f}] s'
                              for child, edge in dynamic)
            raise TransformError(f'{what} at the latest time (stamp 0): the chain\'s edges have no common time '
                                 f'in their buffers ({spans})', 'extrapolation')
        return latest

    def _extrapolation_error(self, what: str, stamp_s: float, child: str, edge: _Edge) -> TransformError:
        first, last = edge.stamps[0], edge.stamps[-1]
        if stamp_s > last:
            direction, gap = 'into the future', stamp_s - last
        else:
            direction, gap = 'into the past', first - stamp_s
        return TransformError(
            f'{what} at {stamp_s:.6f} s would require extrapolation {direction} by {gap:.6f} s: edge '
            f'{edge.parent!r} -> {child!r} has data only for [{first:.6f}, {last:.6f}] s '
            f'({len(edge.stamps)} transforms, cache_time {self.cache_time_s:g} s)', 'extrapolation')


# ============================================================================ TF: ROS-facing source
class TransformSource:
    """TF lookups for a node: tf2_ros where it imports, else a builtin listener of /tf and /tf_static.

    Subscribes (builtin backend) ``/tf`` with :data:`TF_QOS` (reliable, volatile, depth 100) and
    ``/tf_static`` with :data:`TF_STATIC_QOS` (reliable, transient local, depth 100), both
    tf2_msgs/TFMessage, in their own reentrant callback group (as tf2_ros does).

    Waiting (``timeout_s`` > 0) polls with short sleeps. The TF callbacks must be able to run
    meanwhile: spin the node with a MultiThreadedExecutor (the TF callback group is reentrant), or
    call from a worker thread. Called from a callback of a SingleThreadedExecutor it cannot deadlock,
    but no new TF data arrives while it waits, so it simply times out.
    """

    def __init__(self, node: Node, cache_time_s: float = 10.0, *, backend: Optional[str] = None):
        self.cache_time_s = _check_finite('cache_time_s', cache_time_s, 0.0, ConfigError, strict=True)
        self.backend = _pick_backend(backend, 'tf2_ros', _tf2_ros is not None, 'TF')
        self._node = node
        self.subscriptions: list = []
        self.rejected = 0  # builtin: transforms refused (malformed, or older than the cache window)
        if self.backend == 'tf2_ros':
            from rclpy.duration import Duration
            self._tf2_buffer = _tf2_ros.Buffer(cache_time=Duration(nanoseconds=int(self.cache_time_s * 1e9)),
                                               node=node)
            self._listener = _tf2_ros.TransformListener(self._tf2_buffer, node)
            self.subscriptions = [self._listener.tf_sub, self._listener.tf_static_sub]
            self.buffer = None
        else:
            from tf2_msgs.msg import TFMessage
            self.buffer = TransformBuffer(self.cache_time_s)
            group = ReentrantCallbackGroup()
            self.subscriptions = [
                node.create_subscription(TFMessage, '/tf', functools.partial(self._on_tf, static=False),
                                         TF_QOS, callback_group=group),
                node.create_subscription(TFMessage, '/tf_static', functools.partial(self._on_tf, static=True),
                                         TF_STATIC_QOS, callback_group=group),
            ]

    def _on_tf(self, msg: Any, static: bool) -> None:
        for transform in msg.transforms:
            tr, rot = transform.transform.translation, transform.transform.rotation
            try:
                stored = self.buffer.set_transform(
                    transform.header.frame_id, transform.child_frame_id, _stamp_s(transform.header.stamp),
                    (tr.x, tr.y, tr.z), (rot.x, rot.y, rot.z, rot.w), static=static)
            except InputError as err:
                stored = False
                self._node.get_logger().warning(f'ignoring a transform on {"/tf_static" if static else "/tf"}: '
                                                f'{err}', throttle_duration_sec=5.0)
            if not stored:
                self.rejected += 1

    def frames(self) -> List[str]:
        """Frame ids known to the buffer, sorted (for diagnostics)."""
        if self.backend == 'tf2_ros':
            import yaml  # tf2 lists frames as YAML: {child: {parent: ..., ...}, ...}
            listing = yaml.safe_load(self._tf2_buffer.all_frames_as_yaml()) or {}
            return sorted(set(listing) | {str(info.get('parent')) for info in listing.values()})
        return self.buffer.frames()

    def _lookup_once(self, target_frame: str, source_frame: str, stamp_s: float) -> np.ndarray:
        if self.backend == 'builtin':
            return self.buffer.lookup(target_frame, source_frame, stamp_s)
        if target_frame == source_frame and target_frame and not target_frame.startswith('/'):
            return np.eye(4)  # as the builtin buffer does, even for a frame not on TF
        from rclpy.time import Time
        when = Time(nanoseconds=int(round(stamp_s * 1e9)))
        try:
            msg = self._tf2_buffer.lookup_transform(target_frame, source_frame, when)
        except _tf2_ros.TransformException as err:
            if isinstance(err, _tf2_ros.LookupException):
                reason = 'missing_frame'
            elif isinstance(err, _tf2_ros.ConnectivityException):
                reason = 'disconnected'
            elif isinstance(err, _tf2_ros.ExtrapolationException):
                reason = 'extrapolation'
            else:
                reason = 'other'
            raise TransformError(f'transform from {source_frame!r} to {target_frame!r} at {stamp_s:.6f} s: '
                                 f'{err}; known frames: [{", ".join(self.frames())}]', reason) from None
        tr, rot = msg.transform.translation, msg.transform.rotation
        return make_transform(matrix_from_quaternion(np.array([rot.x, rot.y, rot.z, rot.w])),
                              np.array([tr.x, tr.y, tr.z]))

    def lookup(self, target_frame: str, source_frame: str, stamp_s: float, timeout_s: float = 0.0) -> np.ndarray:
        """Return the 4x4 float64 transform mapping points in ``source_frame`` to ``target_frame``.

        ``stamp_s``: header stamp in seconds (0 = latest common time). ``timeout_s``: how long to wait
        for the data to arrive (0 = answer from the buffer now). Raises TransformError naming the
        known frames, a missing frame or the extrapolation interval, and how long it waited.
        """
        stamp_s = _check_finite('stamp_s', stamp_s, 0.0, InputError)
        timeout_s = _check_finite('timeout_s', timeout_s, 0.0, InputError)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._lookup_once(target_frame, source_frame, stamp_s)
            except TransformError as err:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or err.reason == 'invalid' or not self._node.context.ok():
                    waited = f'waited {timeout_s:g} s' if timeout_s > 0 else 'timeout 0 s: did not wait'
                    raise TransformError(f'{err} ({waited}; backend {self.backend})', err.reason) from None
            time.sleep(min(_POLL_S, remaining))

    def can_transform(self, target_frame: str, source_frame: str, stamp_s: float, timeout_s: float = 0.0) -> bool:
        """Return whether :meth:`lookup` succeeds within ``timeout_s`` seconds."""
        try:
            self.lookup(target_frame, source_frame, stamp_s, timeout_s)
        except TransformError:
            return False
        return True

    def destroy(self) -> None:
        """Remove the TF subscriptions from the node (e.g. in a lifecycle node's on_cleanup)."""
        if self.backend == 'tf2_ros':
            self._listener.unregister()
        else:
            for sub in self.subscriptions:
                self._node.destroy_subscription(sub)
        self.subscriptions = []


# ============================================================================ sync: pure policy
def _header_stamp_ns(msg: Any) -> int:
    try:
        stamp = msg.header.stamp
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    except AttributeError:
        raise InputError(f'approximate sync: expected a message with header.stamp, got {type(msg).__name__}') \
            from None


class ApproximateTimePolicy:
    """Approximate-time matching of N inputs by header stamp; pure (no node), thread-safe.

    Algorithm (the *pivot* is the latest of the inputs' oldest queued messages)::

        input 0:  a1   a2      a3          every input keeps a stamp-ordered queue (<= queue_size,
        input 1:    b1      b2      b3     the oldest dropped on overflow)
                        ^ pivot = max over inputs of the oldest stamp (b2 here once a1/b1 are gone)

    1. while every queue is non-empty: pivot = max of the queue heads. Messages older than
       pivot - slop can never be matched (the pivot's input has nothing older) and are dropped.
    2. For every other input take the message nearest to the pivot within slop. If that input has no
       message at or after the pivot yet, a nearer one may still come: decide now only if the input's
       smallest stamp gap seen so far proves the next message cannot be nearer, else wait (like the
       C++ policy's inter-message lower bound; at most one message of that input). If the chosen
       stamps span more than slop, take each input's latest message at or before the pivot instead
       (these are all within slop of the pivot, so the span is <= slop).
    3. Emit the set, drop every older queued message of each input, repeat.

    A message with a stamp at or before its input's last matched stamp is dropped on arrival; a second
    message with the same stamp on an input replaces the first. ``matched`` counts emitted sets,
    ``dropped`` messages discarded without being matched, ``received`` all messages given to
    :meth:`add`. ``callback(*msgs)`` is called outside the lock, once per set, in input order.
    """

    def __init__(self, n_inputs: int, queue_size: int, slop_s: float, callback: Callable[..., None]):
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ConfigError(f'inputs: expected at least 1 input, got {n_inputs!r}')
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigError(f'queue_size: expected an integer >= 1, got {queue_size!r}')
        self.slop_s = _check_finite('slop_s', slop_s, 0.0, ConfigError)
        if not callable(callback):
            raise ConfigError(f'callback: expected a callable, got {callback!r}')
        self.queue_size = queue_size
        self._slop_ns = int(round(self.slop_s * 1e9))
        self._callback = callback
        self._stamps: List[List[int]] = [[] for _ in range(n_inputs)]
        self._msgs: List[List[Any]] = [[] for _ in range(n_inputs)]
        self._last: List[Optional[int]] = [None] * n_inputs
        self._min_gap: List[Optional[int]] = [None] * n_inputs  # smallest stamp gap seen per input (ns)
        self._lock = threading.Lock()
        self.matched = 0
        self.dropped = 0
        self.received = 0

    @property
    def pending(self) -> int:
        """Messages queued and not yet matched or dropped."""
        with self._lock:
            return sum(len(s) for s in self._stamps)

    def add(self, index: int, msg: Any) -> None:
        """Queue ``msg`` (with ``header.stamp``) from input ``index`` and emit every set that is now complete."""
        if not 0 <= index < len(self._stamps):
            raise InputError(f'index: expected 0 <= index < {len(self._stamps)}, got {index}')
        stamp = _header_stamp_ns(msg)
        with self._lock:
            self.received += 1
            stamps, msgs = self._stamps[index], self._msgs[index]
            if self._last[index] is not None and stamp <= self._last[index]:
                self.dropped += 1
                return
            i = bisect.bisect_left(stamps, stamp)
            if i < len(stamps) and stamps[i] == stamp:
                msgs[i] = msg
                self.dropped += 1
            else:
                neighbours = stamps[max(0, i - 1):i + 1] + [self._last[index]]
                gaps = [abs(stamp - other) for other in neighbours if other is not None and other != stamp]
                if gaps:
                    self._min_gap[index] = min(gaps + [self._min_gap[index] or gaps[0]])
                stamps.insert(i, stamp)
                msgs.insert(i, msg)
            if len(stamps) > self.queue_size:
                del stamps[0], msgs[0]
                self.dropped += 1
            sets = self._match_locked()
        for matched in sets:
            self._callback(*matched)

    def _match_locked(self) -> List[Tuple[Any, ...]]:
        out = []
        slop = self._slop_ns
        while all(self._stamps):
            pivot_input = max(range(len(self._stamps)), key=lambda j: (self._stamps[j][0], -j))
            pivot = self._stamps[pivot_input][0]
            too_old = [bisect.bisect_left(s, pivot - slop) for s in self._stamps]
            if any(too_old):
                for j, count in enumerate(too_old):
                    del self._stamps[j][:count], self._msgs[j][:count]
                    self.dropped += count
                continue
            chosen = []
            for j, stamps in enumerate(self._stamps):
                if j == pivot_input:
                    chosen.append(0)
                    continue
                k = bisect.bisect_left(stamps, pivot)  # first at or after the pivot
                if k == len(stamps):
                    gap, latest = self._min_gap[j], stamps[-1]
                    if gap is None or latest + gap - pivot < pivot - latest:
                        return out  # wait: a message nearer to the pivot may still arrive on input j
                    chosen.append(k - 1)
                    continue
                if k == 0 or (stamps[k] - pivot <= slop and stamps[k] - pivot < pivot - stamps[k - 1]):
                    chosen.append(k)
                else:
                    chosen.append(k - 1)
            picked = [self._stamps[j][c] for j, c in enumerate(chosen)]
            if max(picked) - min(picked) > slop:
                chosen = [bisect.bisect_right(s, pivot) - 1 for s in self._stamps]
            out.append(tuple(self._msgs[j][c] for j, c in enumerate(chosen)))
            for j, c in enumerate(chosen):
                self._last[j] = self._stamps[j][c]
                del self._stamps[j][:c + 1], self._msgs[j][:c + 1]
                self.dropped += c
            self.matched += 1
        return out


# ============================================================================ sync: ROS-facing
class ApproximateSync:
    """Approximate-time synchroniser of header-stamped topics: message_filters where it imports, else builtin.

    ``inputs`` is a list of ``(msg_type, topic, qos_profile)``; ``callback(*msgs)`` gets one message per
    input, in that order, whose stamps lie within ``slop_s`` seconds. ``queue_size`` bounds each
    input's queue. ``subscriptions`` holds the rclpy Subscription of each input (for publisher-count and
    QoS diagnostics); ``matched``/``dropped`` count emitted sets and discarded messages.
    """

    def __init__(self, node: Node, inputs: Sequence[Tuple[type, str, Any]], queue_size: int, slop_s: float,
                 callback: Callable[..., None], *, backend: Optional[str] = None,
                 callback_group: Optional[CallbackGroup] = None):
        inputs = list(inputs)
        if not inputs:
            raise ConfigError('inputs: expected at least one (msg_type, topic, qos_profile), got none')
        for i, item in enumerate(inputs):
            if not isinstance(item, (tuple, list)) or len(item) != 3:
                raise ConfigError(f'inputs[{i}]: expected (msg_type, topic, qos_profile), got {item!r}')
            fields = getattr(item[0], 'get_fields_and_field_types', dict)()
            if 'header' not in fields:
                raise ConfigError(f'inputs[{i}]: expected a message type with a header, got {item[0]!r}')
        self.backend = _pick_backend(backend, 'message_filters', _message_filters is not None,
                                     'synchronisation')
        self._node = node
        self._callback = callback
        self._n = len(inputs)
        self._policy = ApproximateTimePolicy(self._n, queue_size, slop_s, callback)
        self.topics = [topic for _, topic, _ in inputs]
        if self.backend == 'builtin':
            self.subscriptions = [
                node.create_subscription(msg_type, topic, functools.partial(self.add, i), qos,
                                         callback_group=callback_group)
                for i, (msg_type, topic, qos) in enumerate(inputs)]
            return
        kwargs = {'callback_group': callback_group} if callback_group is not None else {}
        self._filters = [_message_filters.Subscriber(node, msg_type, topic, qos_profile=qos, **kwargs)
                         for msg_type, topic, qos in inputs]
        self._sync = _message_filters.ApproximateTimeSynchronizer(self._filters, queue_size, float(slop_s))
        self._received = 0
        self._native_matched = 0
        self._sync.registerCallback(self._on_native_match)
        for f in self._filters:
            f.registerCallback(self._on_native_receive)
        self.subscriptions = [f.sub for f in self._filters]

    def _on_native_receive(self, _msg: Any) -> None:
        self._received += 1

    def _on_native_match(self, *msgs: Any) -> None:
        self._native_matched += 1
        self._callback(*msgs)

    @property
    def matched(self) -> int:
        """Number of sets passed to the callback."""
        return self._policy.matched if self.backend == 'builtin' else self._native_matched

    @property
    def dropped(self) -> int:
        """Number of messages discarded without being matched."""
        if self.backend == 'builtin':
            return self._policy.dropped
        pending = sum(len(q) for q in getattr(self._sync, 'queues', []))
        return max(0, self._received - self._n * self._native_matched - pending)

    def add(self, index: int, msg: Any) -> None:
        """Feed ``msg`` as if it arrived on input ``index`` (the subscriptions call this)."""
        if self.backend == 'builtin':
            self._policy.add(index, msg)
        else:
            self._received += 1
            self._sync.add(msg, self._sync.queues[index], index)

    def destroy(self) -> None:
        """Remove the subscriptions from the node (e.g. in a lifecycle node's on_deactivate/on_cleanup)."""
        for sub in self.subscriptions:
            self._node.destroy_subscription(sub)
        self.subscriptions = []
