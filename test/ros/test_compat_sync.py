"""Approximate-time synchronisation: the builtin policy on synthetic stamps, and ApproximateSync over real DDS."""

import importlib.util
import os
import random
import threading
import time

import pytest
import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from robot_vision.errors import ConfigError, InputError
from robot_vision.ros.compat import ApproximateSync, ApproximateTimePolicy

MESSAGE_FILTERS = importlib.util.find_spec('message_filters') is not None
NO_MESSAGE_FILTERS = ('message_filters is not installed: it is not on PyPI; the development setup installs it from '
                      '../shared/ros_src when that folder exists (a robot has it from its ROS distro)')


def msg(stamp_s: float, tag: str = '') -> PointStamped:
    out = PointStamped()
    ns = int(round(stamp_s * 1e9))
    out.header.stamp.sec, out.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    out.header.frame_id = tag
    return out


def stamp(m) -> float:
    return round(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, 6)


class Recorder:
    def __init__(self):
        self.sets = []

    def __call__(self, *msgs):
        self.sets.append(tuple(stamp(m) for m in msgs))


def make(n=2, queue_size=10, slop_s=0.01):
    rec = Recorder()
    return ApproximateTimePolicy(n, queue_size, slop_s, rec), rec


def feed(policy, events):
    for index, t in events:
        policy.add(index, msg(t))


def check_invariants(policy, rec, n):
    assert policy.received == n * policy.matched + policy.dropped + policy.pending
    assert policy.matched == len(rec.sets)
    for s in rec.sets:
        assert max(s) - min(s) <= policy.slop_s + 1e-9, s
    for j in range(n):
        column = [s[j] for s in rec.sets]
        assert column == sorted(column) and len(set(column)) == len(column)


def test_equal_stamps_interleaved_all_match():
    policy, rec = make()
    feed(policy, [(i % 2, 1.0 + (i // 2) / 30) for i in range(20)])
    assert rec.sets == [(round(1.0 + k / 30, 6),) * 2 for k in range(10)]
    assert (policy.matched, policy.dropped, policy.pending) == (10, 0, 0)


def test_one_input_lagging_a_whole_burst_behind():
    policy, rec = make(queue_size=20)
    feed(policy, [(0, 1.0 + k / 30) for k in range(8)])  # colour arrives first, detections later
    assert rec.sets == [] and policy.pending == 8
    feed(policy, [(1, 1.0 + k / 30) for k in range(8)])
    assert len(rec.sets) == 8 and all(a == b for a, b in rec.sets)
    check_invariants(policy, rec, 2)


def test_nearest_message_wins_regardless_of_arrival_order():
    """A at 0, 33 ms, 66 ms; B offset by 30 ms: B(30) pairs with A(33), not the first A(0) it could see."""
    policy, rec = make(slop_s=0.05)
    feed(policy, [(0, 0.0), (1, 0.030), (0, 0.033), (1, 0.063), (0, 0.066), (1, 0.096), (0, 0.099)])
    assert rec.sets == [(0.033, 0.030), (0.066, 0.063), (0.099, 0.096)]
    assert policy.dropped == 1  # A(0): older than a matched message of its input
    check_invariants(policy, rec, 2)


def test_waits_for_a_message_at_or_after_the_pivot():
    policy, rec = make(slop_s=0.05)
    feed(policy, [(0, 1.000), (1, 1.010)])
    assert rec.sets == []  # a message of input 0 nearer to 1.010 may still come
    feed(policy, [(0, 1.100)])  # decides it: 1.000 is the nearest
    assert rec.sets == [(1.000, 1.010)]


def test_out_of_order_arrival_within_an_input():
    """Messages of one input arriving out of order are queued in stamp order while the other input lags."""
    policy, rec = make(slop_s=0.005)
    feed(policy, [(0, 2.0), (0, 1.0), (0, 3.0), (1, 1.002), (1, 2.003), (1, 3.001)])
    assert rec.sets == [(1.0, 1.002), (2.0, 2.003), (3.0, 3.001)]
    assert policy.dropped == 0
    check_invariants(policy, rec, 2)


def test_late_message_behind_a_newer_pivot_is_dropped():
    """In-order delivery per input is assumed: once 3.001 arrives on input 1, 1.0 and 2.0 cannot match."""
    policy, rec = make(slop_s=0.005)
    feed(policy, [(0, 1.0), (0, 2.0), (0, 3.0), (1, 3.001), (1, 1.002)])
    assert rec.sets == [(3.0, 3.001)] and policy.dropped == 3
    check_invariants(policy, rec, 2)


def test_message_older_than_the_last_match_is_dropped_on_arrival():
    policy, rec = make()
    feed(policy, [(0, 5.0), (1, 5.0), (0, 4.0), (0, 5.0)])
    assert rec.sets == [(5.0, 5.0)] and policy.dropped == 2 and policy.pending == 0


def test_duplicate_stamp_replaces_the_queued_message():
    policy, rec = make()
    policy.add(0, msg(1.0, 'first'))
    policy.add(0, msg(1.0, 'second'))
    got = []
    policy._callback = lambda a, b: got.append(a.header.frame_id)
    policy.add(1, msg(1.0))
    assert got == ['second'] and policy.dropped == 1


def test_queue_overflow_drops_the_oldest():
    policy, rec = make(queue_size=5, slop_s=0.02)
    feed(policy, [(0, 1.0 + k * 0.1) for k in range(8)])  # input 1 silent
    assert policy.dropped == 3 and policy.pending == 5
    feed(policy, [(1, 1.41)])
    assert rec.sets == [(1.4, 1.41)]
    assert policy.dropped == 4  # 1.3 older than the matched 1.4; 1.5, 1.6, 1.7 still queued
    check_invariants(policy, rec, 2)


def test_nothing_within_slop_never_matches():
    policy, rec = make(slop_s=0.01)
    feed(policy, [(0, 1.0), (1, 1.5), (0, 2.0), (1, 2.5), (0, 3.0)])
    assert rec.sets == []
    check_invariants(policy, rec, 2)


def test_span_over_slop_falls_back_to_messages_before_the_pivot():
    """Nearest choices 106 ms and 91 ms span 15 ms > slop 10 ms: take 93 ms and 91 ms instead."""
    policy, rec = make(n=3, slop_s=0.010)
    feed(policy, [(1, 0.093), (1, 0.106), (2, 0.091), (2, 0.115), (0, 0.100)])
    assert rec.sets == [(0.100, 0.093, 0.091)]
    check_invariants(policy, rec, 3)


@pytest.mark.parametrize('rates_hz,jitter_s,slop_s,latency_s', [
    ((30.0, 30.0), 0.0, 0.005, 0.0),         # same camera: identical stamps
    ((30.0, 10.0), 0.002, 0.02, 0.0),        # detections at a third of the image rate
    ((30.0, 15.0, 5.0), 0.003, 0.02, 0.0),   # three inputs, three rates
    ((30.0, 30.0), 0.004, 0.01, 0.05),       # per-message transport latency up to 50 ms
    ((25.0, 7.0), 0.01, 0.03, 0.12),         # irregular stamps, a slow input arriving up to 120 ms late
])
def test_irregular_rates_keep_the_invariants(rates_hz, jitter_s, slop_s, latency_s):
    rng = random.Random(7)
    n = len(rates_hz)
    policy, rec = make(n=n, queue_size=30, slop_s=slop_s)
    events = []
    for j, rate in enumerate(rates_hz):
        arrival = 0.0
        for k in range(int(rate * 4)):  # 4 s of data
            t = 100.0 + k / rate + rng.uniform(-jitter_s, jitter_s)
            arrival = max(arrival, t + rng.uniform(0.0, latency_s))  # each topic is delivered in order
            events.append((arrival, j, t))
    events.sort()
    feed(policy, [(j, t) for _, j, t in events])
    check_invariants(policy, rec, n)
    slowest = min(rates_hz)
    assert policy.matched >= int(slowest * 4) - 1, (policy.matched, policy.dropped)
    if jitter_s == 0.0:
        assert all(len(set(s)) == 1 for s in rec.sets) and policy.dropped == 0


def test_concurrent_adds_are_consistent():
    policy, rec = make(n=2, queue_size=250, slop_s=0.001)

    def produce(index):
        for k in range(200):
            policy.add(index, msg(1.0 + k * 0.01))

    threads = [threading.Thread(target=produce, args=(j,)) for j in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check_invariants(policy, rec, 2)
    assert policy.matched == 200 and policy.dropped == 0


@pytest.mark.parametrize('kwargs,field', [
    (dict(n_inputs=0), 'inputs'), (dict(queue_size=0), 'queue_size'), (dict(queue_size=2.5), 'queue_size'),
    (dict(slop_s=-0.1), 'slop_s'), (dict(slop_s=float('nan')), 'slop_s'), (dict(callback=None), 'callback'),
])
def test_invalid_settings_name_the_field(kwargs, field):
    args = dict(n_inputs=2, queue_size=10, slop_s=0.01, callback=print)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=field):
        ApproximateTimePolicy(**args)


def test_headerless_message_and_bad_index_are_input_errors():
    policy, _ = make()
    with pytest.raises(InputError, match='header.stamp'):
        policy.add(0, String(data='x'))
    with pytest.raises(InputError, match='index'):
        policy.add(2, msg(1.0))


# ----------------------------------------------------------------------------- real DDS
@pytest.mark.ros
@pytest.mark.parametrize('backend', ['builtin', 'message_filters'])
def test_approximate_sync_over_dds(ros_context, backend):
    if backend == 'message_filters' and not MESSAGE_FILTERS:
        pytest.skip(NO_MESSAGE_FILTERS)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node = Node('sync_listener', context=ros_context)
    talker = Node('sync_talker', context=ros_context)
    with pytest.raises(ConfigError, match='header'):
        ApproximateSync(node, [(String, 'a', qos)], 10, 0.01, print)
    got = []
    topic_a, topic_b = f'rv{os.getpid()}_in_a', f'rv{os.getpid()}_in_b'  # unique even if a domain id collides
    sync = ApproximateSync(node, [(PointStamped, topic_a, qos), (PointStamped, topic_b, qos)], 10, 0.01,
                           lambda a, b: got.append((stamp(a), stamp(b))), backend=backend)
    assert sync.backend == backend and len(sync.subscriptions) == 2
    pub_a = talker.create_publisher(PointStamped, topic_a, qos)
    pub_b = talker.create_publisher(PointStamped, topic_b, qos)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(talker)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (pub_a.get_subscription_count() and pub_b.get_subscription_count()
                                                   and all(s.get_publisher_count() for s in sync.subscriptions)):
            executor.spin_once(timeout_sec=0.05)
        assert all(s.get_publisher_count() >= 1 for s in sync.subscriptions)
        probe = 1.0  # handshake: a volatile reader may miss samples sent while it is still matching
        while not got and time.monotonic() < deadline:
            pub_a.publish(msg(probe))
            pub_b.publish(msg(probe))
            executor.spin_once(timeout_sec=0.05)
            probe += 1.0
        assert got, 'no synchronised pair arrived during the handshake'
        drain = time.monotonic() + 0.5  # probes still in flight
        while time.monotonic() < drain:
            executor.spin_once(timeout_sec=0.05)
        got.clear()
        matched0, dropped0 = sync.matched, sync.dropped
        for k in range(10):
            t = 50.0 + k * 0.1
            pub_a.publish(msg(t))
            pub_b.publish(msg(t + 0.003))  # b is 3 ms late: within slop
            executor.spin_once(timeout_sec=0.01)
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        talker.destroy_node()
    assert got == [(round(50.0 + k * 0.1, 6), round(50.003 + k * 0.1, 6)) for k in range(10)]
    assert (sync.matched - matched0, sync.dropped - dropped0) == (10, 0)


# ----------------------------------------------------------------------------- against message_filters itself
def _camera_streams(rng, n, rate_hz, jitter_s, drop, latency_s, seconds=3.0):
    """(input, stamp) arrivals of n camera topics stamped per frame.

    With stamp jitter, lost messages and transport latency (each topic delivered in order, the topics
    interleaved by their arrival time).
    """
    events, arrival = [], [0.0] * n
    for k in range(int(rate_hz * seconds)):
        for j in range(n):
            if rng.random() < drop:
                continue
            t = round(100.0 + k / rate_hz + rng.uniform(-jitter_s, jitter_s), 6)
            arrival[j] = max(arrival[j], t + rng.uniform(0.0, latency_s))
            events.append((arrival[j], j, t))
    return [(j, t) for _, j, t in sorted(events)]


def _detections_behind_images(rng, seconds=3.0):
    """Images at 30 Hz and detections of every third image (same stamps) arriving up to 80 ms later."""
    events = []
    for k in range(int(30 * seconds)):
        t = round(100.0 + k / 30 + rng.uniform(-0.002, 0.002), 6)
        events.append((t, 0, t))
        if k % 3 == 0:
            events.append((t + rng.uniform(0.0, 0.08), 1, t))
    return [(j, t) for _, j, t in sorted(events)]


#: Name -> (number of inputs, arrivals from a random generator).
SYNC_CASES = {
    'colour+depth same stamps': (2, lambda rng: _camera_streams(rng, 2, 30.0, 0.0, 0.0, 0.005)),
    'colour+depth+info, 3 ms jitter': (3, lambda rng: _camera_streams(rng, 3, 30.0, 0.003, 0.0, 0.01)),
    'lost messages, 20 ms latency': (2, lambda rng: _camera_streams(rng, 2, 30.0, 0.002, 0.1, 0.02)),
    'latency over a frame period (120 ms)': (2, lambda rng: _camera_streams(rng, 2, 15.0, 0.002, 0.05, 0.12)),
    'detections behind images': (2, _detections_behind_images),
}


@pytest.mark.parametrize('case', list(SYNC_CASES))
def test_builtin_policy_pairs_as_message_filters(case):
    """The same arrivals into message_filters' ApproximateTimeSynchronizer and the builtin policy: the same sets.

    Camera-like streams: equal or jittered stamps (jitter well below the slop), lost messages, transport latency
    up to several frame periods, a slower input. (Where the stamp jitter approaches the slop the two can differ:
    message_filters pairs greedily on arrival, the builtin policy waits while a nearer message may still come.)
    """
    message_filters = pytest.importorskip('message_filters', reason=NO_MESSAGE_FILTERS)
    n, arrivals = SYNC_CASES[case]
    counts = []
    for seed in range(20):
        events = arrivals(random.Random(seed))
        policy, rec = make(n=n, queue_size=10, slop_s=0.01)
        filters = [message_filters.SimpleFilter() for _ in range(n)]
        real = message_filters.ApproximateTimeSynchronizer(filters, 10, 0.01)
        theirs = Recorder()
        real.registerCallback(theirs)
        for j, t in events:
            m = msg(t)
            policy.add(j, m)
            filters[j].signalMessage(m)
        assert rec.sets == theirs.sets, (seed, [s for s in rec.sets if s not in theirs.sets],
                                         [s for s in theirs.sets if s not in rec.sets])
        counts.append(len(theirs.sets))
    assert min(counts) > 0
