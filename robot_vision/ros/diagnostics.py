"""Self-diagnosis for the nodes: input rates, latency, drops, and the causes users hit most (QoS, TF, units)."""

from __future__ import annotations

import collections
import threading
import time
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSCompatibility, QoSProfile, qos_check_compatible

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def qos_problem(node: Node, topic: str, subscription_qos: QoSProfile) -> Optional[str]:
    """Explain why a subscription gets nothing: no publisher, or publishers with incompatible QoS."""
    infos = node.get_publishers_info_by_topic(node.resolve_topic_name(topic))
    if not infos:
        return f'no publisher on {node.resolve_topic_name(topic)}'
    reasons = []
    for info in infos:
        compatibility, reason = qos_check_compatible(info.qos_profile, subscription_qos)
        if compatibility == QoSCompatibility.ERROR:
            reasons.append(f'{info.node_namespace.rstrip("/")}/{info.node_name}: {reason}')
    if reasons:
        return (f'{len(reasons)} publisher(s) on {node.resolve_topic_name(topic)} have QoS incompatible with '
                f'this subscription ({"; ".join(reasons)}); set the *_qos parameter to match, e.g. '
                f'reliable vs best_effort')
    return None


#: Fast DDS's default shared-memory segment; larger samples cross processes as fragmented UDP.
FASTDDS_DEFAULT_SHM_SEGMENT = 512 * 1024
FASTDDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def large_image_problem(topic: str, size_bytes: int, rmw: str, environment: Dict[str, str]) -> Optional[str]:
    """Explain the slow path of images over Fast DDS's default 512 KiB shared memory, or None.

    Only this process's environment can be checked: with a profile set here, the publisher is
    assumed to have one too.
    """
    if (not rmw.startswith('rmw_fastrtps') or size_bytes <= FASTDDS_DEFAULT_SHM_SEGMENT
            or any(environment.get(name) for name in FASTDDS_PROFILE_VARIABLES)):
        return None
    return (f'{topic}: {size_bytes // 1024} KiB images exceed Fast DDS\'s default 512 KiB shared-memory '
            f'segment, so between processes they go as fragmented UDP (about 13 ms instead of 2 ms per '
            f'600 KiB here, and best-effort subscribers lose whole images); give this node and the camera '
            f'driver config/fastdds_large_images.xml through FASTRTPS_DEFAULT_PROFILES_FILE '
            f'(FASTDDS_DEFAULT_PROFILES_FILE on Kilted), as launch/robot_vision.launch.py does')


class RateMeter:
    """Message rate over a sliding window of arrival times (thread-safe)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._times: Deque[float] = collections.deque()
        self._window = window_s
        self._lock = threading.Lock()
        self.count = 0
        self.last: Optional[float] = None

    def tick(self, now: Optional[float] = None) -> None:
        """Record one message."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            self.last = now
            while self._times and now - self._times[0] > self._window:
                self._times.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        """Messages per second over the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times if now - t <= self._window]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class PairingWatch:
    """The latest header stamp of each synchronised input: why sets do not form, and time going back.

    ``arrived`` returns the input's previous stamp when the new one is earlier (a looped bag, a
    restarted camera or simulation), after which every input starts afresh. ``pairing_problem``
    explains inputs that all arrive while no set formed for ``grace_s`` seconds (counted from the
    moment every input had arrived), with the measured offset of their latest stamps and the slop.
    """

    def __init__(self, names: List[str], slop_s: float, grace_s: float = 2.0) -> None:
        self._names, self._slop, self._grace = list(names), slop_s, grace_s
        self.stamps: Dict[str, float] = {}
        self.last_set: Optional[float] = None

    def arrived(self, name: str, stamp: float) -> Optional[float]:
        """Record an input's stamp; return its previous stamp when time went back, else None."""
        previous = self.stamps.get(name)
        if previous is not None and stamp < previous:
            self.stamps = {name: stamp}
            return previous
        self.stamps[name] = stamp
        return None

    def paired(self) -> None:
        """Record that a set formed."""
        self.last_set = time.monotonic()

    def pairing_problem(self, now: Optional[float] = None) -> Optional[str]:
        """Why the inputs arrive but form no set (None while sets form or an input is still missing)."""
        now = time.monotonic() if now is None else now
        if len(self._names) < 2 or len(self.stamps) < len(self._names):
            return None
        if self.last_set is None:
            self.last_set = now  # every input arrived: the grace starts
        if now - self.last_set < self._grace:
            return None
        latest = {name: self.stamps[name] for name in self._names}
        early, late = min(latest, key=latest.get), max(latest, key=latest.get)
        offset = latest[late] - latest[early]
        return (f'{" and ".join(self._names)} arrive but do not pair (no set for {now - self.last_set:.1f} s): '
                f'their latest stamps differ by {offset * 1e3:.0f} ms ({late} ahead of {early}), sync_slop_s is '
                f'{self._slop * 1e3:.0f} ms; check that the drivers stamp the images of one exposure alike, or '
                f'raise sync_slop_s')


class NodeDiagnostics:
    """Collects a node's health figures and publishes them on /diagnostics as DiagnosticArray.

    ``inputs`` maps an input name to (topic, subscription QoS). Problems reported with
    :meth:`problem` stay active for ``hold_s`` seconds after the last report. The status is named
    ``<node>: <name>``.
    """

    def __init__(self, node: Node, inputs: Dict[str, Tuple[str, QoSProfile]], input_timeout_s: float = 3.0,
                 hold_s: float = 5.0, name: str = 'perception') -> None:
        self._node = node
        self._name = name
        self._inputs = inputs
        self.timeout = input_timeout_s
        self._hold = hold_s
        self.rates = {name: RateMeter() for name in inputs}
        self.latency_ms: Deque[float] = collections.deque(maxlen=300)
        self.stage_ms: Dict[str, Deque[float]] = collections.defaultdict(lambda: collections.deque(maxlen=300))
        self.processed = 0
        self.dropped = 0
        self.errors = 0
        #: Further counters, published as they are named.
        self.counts: Dict[str, int] = {}
        self._problems: Dict[str, Tuple[int, str, float]] = {}
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)

    def problem(self, key: str, message: str, level: int = WARN) -> None:
        """Report a problem (e.g. 'tf', 'depth_units'); it shows in diagnostics while it recurs."""
        level = bytes([level]) if isinstance(level, int) else level  # the message constants are bytes
        with self._lock:
            self._problems[key] = (level, message, time.monotonic())

    def processed_frame(self, latency_ms: float, timings_ms: Dict[str, float]) -> None:
        """Record one processed frame: stamp-to-publish latency and per-stage times."""
        with self._lock:
            self.processed += 1
            self.latency_ms.append(latency_ms)
            for stage, value in timings_ms.items():
                self.stage_ms[stage].append(value)

    def stage(self, name: str, value_ms: float) -> None:
        """Record one time (ms) of a stage that runs apart from the frame (e.g. on another thread)."""
        with self._lock:
            self.stage_ms[name].append(value_ms)

    def active_problems(self) -> List[Tuple[int, str, str]]:
        """(level, key, message) of the problems reported within the hold time, plus input checks."""
        now = time.monotonic()
        with self._lock:
            found = [(lvl, key, msg) for key, (lvl, msg, t) in self._problems.items() if now - t <= self._hold]
        if now - self._started > self.timeout:
            for name, (topic, qos) in self._inputs.items():
                last = self.rates[name].last
                if last is None or now - last > self.timeout:
                    why = qos_problem(self._node, topic, qos)
                    silence = 'no message yet' if last is None else f'no message for {now - last:.1f} s'
                    found.append((WARN, f'input_{name}', f'{name}: {silence}' + (f'; {why}' if why else
                                                                                 '; a publisher exists')))
        return found

    def publish(self) -> DiagnosticArray:
        """Build and publish the DiagnosticArray (call from a 1 Hz timer)."""
        node_name = self._node.get_fully_qualified_name()
        now = time.monotonic()
        problems = self.active_problems()
        level = max([OK] + [p[0] for p in problems])
        with self._lock:
            lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(0)
            values = [KeyValue(key=f'{name} rate (Hz)', value=f'{meter.rate(now):.2f}')
                      for name, meter in self.rates.items()]
            values += [KeyValue(key='frames processed', value=str(self.processed)),
                       KeyValue(key='frames dropped (latest-frame policy)', value=str(self.dropped)),
                       KeyValue(key='frame errors', value=str(self.errors))]
            values += [KeyValue(key=key, value=str(value)) for key, value in self.counts.items()]
            if lat.size:
                values += [KeyValue(key='latency p50 (ms)', value=f'{np.percentile(lat, 50):.1f}'),
                           KeyValue(key='latency p95 (ms)', value=f'{np.percentile(lat, 95):.1f}')]
            values += [KeyValue(key=f'stage {stage} median (ms)', value=f'{np.median(list(v)):.1f}')
                       for stage, v in self.stage_ms.items() if v]
        values += [KeyValue(key=key, value=msg) for _, key, msg in problems]
        summary = 'ok' if not problems else '; '.join(msg for _, _, msg in problems)
        status = DiagnosticStatus(level=level, name=f'{node_name}: {self._name}', message=summary[:500],
                                  hardware_id=node_name, values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self.publisher.publish(array)
        return array
