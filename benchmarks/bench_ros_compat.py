"""Builtin TF buffer lookups and approximate-time sync cost per frame (the fallbacks of robot_vision.ros.compat)."""

import math

import numpy as np
from geometry_msgs.msg import PointStamped

from benchmarks.harness import measure
from robot_vision.ros.compat import ApproximateTimePolicy, TransformBuffer


def _yaw(yaw):
    return [0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]


def _stamped(t):
    msg = PointStamped()
    ns = int(round(t * 1e9))
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    return msg


def run(quick: bool):
    repeat = 50 if quick else 2000
    buf = TransformBuffer(cache_time_s=10.0)
    buf.set_transform('base_link', 'camera_link', 0.0, [0.1, 0.0, 0.5], _yaw(0.3), static=True)
    buf.set_transform('camera_link', 'camera_optical', 0.0, [0.0, 0.0, 0.0], [-0.5, 0.5, -0.5, 0.5], static=True)
    for k in range(1000):  # 10 s of odometry at 100 Hz: a full cache
        t = 100.0 + k * 0.01
        buf.set_transform('map', 'odom', t, [0.01 * k, 0.0, 0.0], _yaw(0.0))
        buf.set_transform('odom', 'base_link', t, [t, 0.0, 0.0], _yaw(0.001 * k))
    stamps = np.random.default_rng(0).uniform(100.5, 109.5, repeat + 10)
    it = iter(stamps)
    rows = [measure('TF lookup map<-camera_optical, 4 edges, interpolated (builtin)',
                    lambda: buf.lookup('map', 'camera_optical', next(it)), repeat, target_ms=1.0),
            measure('TF lookup latest (stamp 0), 4 edges (builtin)',
                    lambda: buf.lookup('map', 'camera_optical', 0.0), repeat, target_ms=1.0)]

    matched = []
    policy = ApproximateTimePolicy(3, 10, 0.01, lambda *m: matched.append(m))
    msgs = [[_stamped(50.0 + k / 30 + 0.001 * j) for j in range(3)] for k in range(repeat + 10)]
    frames = iter(msgs)

    def one_frame():
        frame = next(frames)
        for j in range(3):
            policy.add(j, frame[j])

    rows.append(measure('approximate sync: one 3-input set (3 add() calls, builtin)', one_frame, repeat,
                        target_ms=0.5))
    return rows
