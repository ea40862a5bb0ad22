"""Stream real 640x480 RGB-D at 15 Hz through the perception node (a separate process) over DDS.

Reports p50/p95 latency from image stamp to Detection3DArray and to the best grasp, the node's CPU %,
its RSS at start and end, and the frames it dropped by its latest-frame policy (from /diagnostics).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from benchmarks.harness import row
from robot_vision.datasets import load_pcl_sequence, shared_data_dir
from robot_vision.ros import conversions as cv

ROOT = Path(__file__).resolve().parent.parent


def _percentiles(values):
    values = np.asarray(values) if values else np.full(1, np.nan)
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def run(quick: bool):
    if shared_data_dir() is None:
        print('  skipped: ../shared/data not found')
        return []
    duration = 10.0 if quick else 60.0
    rows = []
    for mode, extra in (('depth-only', ['-p', 'mode:=depth']), ('rgbd', [])):
        rows += _stream(mode, extra, duration)
    return rows


def _stream(mode, extra, duration):
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ['ROS_DOMAIN_ID'] = str(150 + os.getpid() % 50)
    frames = load_pcl_sequence()
    node_exe = Path(sys.executable).parent / 'perception_node'
    process = subprocess.Popen([str(node_exe), '--ros-args', '--params-file', str(ROOT / 'config/robot_vision.yaml'),
                                '-p', 'fixed_frame:=kinect_rgb_optical_frame', *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('stream_bench', context=context)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub_color = node.create_publisher(Image, 'camera/color/image_raw', qos)
    pub_depth = node.create_publisher(Image, 'camera/aligned_depth_to_color/image_raw', qos)
    pub_info = node.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
    static = node.create_publisher(TFMessage, '/tf_static', QoSProfile(
        depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE))
    identity = TransformStamped()
    identity.header.frame_id = identity.child_frame_id = 'unused'
    static.publish(TFMessage(transforms=[identity]))
    lat_objects, lat_grasp, dropped = [], [], [0]

    def now_s():
        return node.get_clock().now().nanoseconds * 1e-9

    node.create_subscription(Detection3DArray, 'objects',
                             lambda m: lat_objects.append((now_s() - cv.stamp_to_seconds(m.header.stamp)) * 1e3), 10)
    node.create_subscription(PoseStamped, 'best_grasp',
                             lambda m: lat_grasp.append((now_s() - cv.stamp_to_seconds(m.header.stamp)) * 1e3), 10)

    def on_diag(msg):
        for status in msg.status:
            for kv in status.values:
                if kv.key.startswith('frames dropped'):
                    dropped[0] = int(kv.value)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    encoded = [(cv.numpy_to_image(f.color, 'rgb8', f.frame_id),
                cv.numpy_to_image(np.round(np.nan_to_num(f.depth) * 1000).astype(np.uint16), '16UC1', f.frame_id),
                cv.intrinsics_to_camera_info(f.intrinsics, f.frame_id)) for f in frames]
    try:
        deadline = time.monotonic() + 60
        while node.count_subscribers('camera/color/image_raw') == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        proc = psutil.Process(process.pid)
        warm_end = time.monotonic() + 3.0
        sent, start, rss_start = 0, None, None
        next_t = time.monotonic()
        cpu_start = None
        while True:
            t = time.monotonic()
            if start is None and t >= warm_end:
                start, rss_start = t, proc.memory_info().rss
                cpu_start = proc.cpu_times()
                lat_objects.clear()
                lat_grasp.clear()
            if start is not None and t - start >= duration:
                break
            if t >= next_t:
                color, depth, info = encoded[sent % len(encoded)]
                stamp = node.get_clock().now().to_msg()
                for msg in (info, color, depth):
                    msg.header.stamp = stamp
                pub_info.publish(info)
                pub_color.publish(color)
                pub_depth.publish(depth)
                sent += 1
                next_t += 1.0 / 15.0
            executor.spin_once(timeout_sec=max(0.0, min(0.005, next_t - time.monotonic())))
        elapsed = time.monotonic() - start
        cpu_end = proc.cpu_times()
        cpu = ((cpu_end.user + cpu_end.system) - (cpu_start.user + cpu_start.system)) / elapsed * 100
        rss_end = proc.memory_info().rss
        end_wait = time.monotonic() + 2.0
        while time.monotonic() < end_wait:
            executor.spin_once(timeout_sec=0.1)
    finally:
        process.terminate()
        process.wait(timeout=20)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    o50, o95 = _percentiles(lat_objects)
    g50, g95 = _percentiles(lat_grasp)
    target = mode == 'depth-only'
    return [
        row(f'node {mode}: latency stamp -> objects p50', o50, 'ms', 'p50 <= 60 ms' if target else None,
            p95_ms=o95, ok=(o50 <= 60 and o95 <= 120) if target else None),
        row(f'node {mode}: latency stamp -> objects p95', o95, 'ms', 'p95 <= 120 ms' if target else None),
        row(f'node {mode}: latency stamp -> best grasp p50', g50, 'ms', p95_ms=g95),
        row(f'node {mode}: outputs per second', len(lat_objects) / duration, 'Hz', 'input 15 Hz'),
        row(f'node {mode}: CPU of the node process', cpu, '%'),
        row(f'node {mode}: RSS start', rss_start / 2**20, 'MiB'),
        row(f'node {mode}: RSS growth', (rss_end - rss_start) / rss_start * 100, '%', '< 5 %',
            ok=bool((rss_end - rss_start) / rss_start < 0.05)),
        row(f'node {mode}: frames dropped by policy', dropped[0], 'frames', f'of {sent} sent'),
    ]
