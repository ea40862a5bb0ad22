"""Stream real 640x480 RGB-D at 15 Hz for a minute through the robot_vision nodes over DDS: one process or four.

Cases: setup x mode.

- ``single``: the all-in-one ``perception_node`` (node name ``robot_vision``);
  ``separate``: ``detector_node``, ``pose_estimator_node``, ``grasp_planner_node`` and
  ``tracker_node`` as four processes. Every node gets what ``launch/robot_vision.launch.py``
  passes (``config/robot_vision.yaml``, ``detector.backend`` depth, ``fixed_frame`` odom, the
  camera topics under ``/camera``) plus ``input_reliability:=reliable``.
- ``depth-only`` (``mode:=depth``; only depth and CameraInfo are streamed, as from a depth
  camera) and ``rgbd`` (colour too).

DDS: every process gets ``config/fastdds_large_images.xml`` (FASTRTPS_/FASTDDS_DEFAULT_PROFILES_FILE,
as the launch file's ``dds_profile`` does): with Fast DDS's default 512 KiB shared memory, each
600 KiB depth image would cross processes as fragmented UDP (13 ms instead of 2 ms here).

Stream: the three frames of :func:`robot_vision.datasets.load_pcl_sequence` in turn, each stamped
with its publish time, on reliable QoS (best effort loses fragments of 640x480 images between
processes on a loaded machine, and a lost frame would count as nothing), plus a static TF
odom -> camera that puts the floor the core finds in the first frame at z = 0, so that the floor
prior and tracking work as on a robot.

Subscribers: this process subscribes to ``objects``, ``grasps``, ``best_grasp`` and
``/diagnostics``, as a manipulation stack would. The nodes build only the outputs somebody reads
(:meth:`robot_vision.ros.node_base.PipelineNode.publish`), so markers, clouds, label images and the
overlay cost nothing here; with RViz showing all of them the nodes do more work (building and
publishing every output made stamp -> grasps p50 7-16 ms longer in three paired 30 s runs).

Warm-up: the first ``WARMUP_S`` seconds of streaming are not measured. They cover start-up
costs that are not the steady state: DDS matching, first-call allocations (numpy/scipy buffers,
k-d trees), the tracker confirming its tracks. Latencies of frames stamped in the warm-up are
left out, and "RSS at start" is taken after it (see below), so that the growth figure says whether memory
keeps growing while the node runs, not how much start-up allocates.

Measured per case over the window (60 s; ``--quick``: 10 s):

- latency from the image stamp to the DDS reception in this process of ``objects``
  (Detection3DArray; from the pose estimator when separate), of ``grasps`` (PoseArray, published
  for every planned frame with or without a grasp: the end-to-end figure) and of ``best_grasp``
  (only frames with a grasp; the row 'frames answered' says how many): p50 and p95;
- frames answered: ``objects`` messages of frames published in the window over those frames;
- output rate of ``objects``;
- CPU %: user + system time of the node processes and their children (the all-in-one node's grasp
  worker process) over the window (100 % = one core of the machine's two), summed and per node;
  the streaming process's own CPU as an extra field;
- RSS at start and end, summed over the node processes and their children (per node as an extra field): sampled
  every ``RSS_SAMPLE_S`` s, start and end are the medians of the samples in the first and the last
  ``RSS_EDGE_S`` s of the window (one reading swings by +-10 MiB per process as numpy buffers come
  and go, as much as the 5 % target); the growth row also gives the linear trend (MiB/min), the
  range of all samples and their medians per ``RSS_SERIES_S`` s (does RSS level off?);
- frames dropped by the latest-frame policy: the change over the window of every 'dropped'
  counter in the nodes' /diagnostics ('frames dropped (latest-frame policy)' of every node, and
  the perception node's 'grasp sets dropped' of its grasp worker), summed, per counter as an
  extra field (diagnostics come at 1 Hz, so the window edges are +-1 s);
- grasp objects searched and kept (re-checked) over the window (the grasps row's ``grasp_objects``:
  objects still where they were keep their grasps once these pass the checks again);
- each node's per-stage medians from /diagnostics (the last 300 frames) in the latency row's
  ``stages_ms`` field, to see where the time goes; the 1-minute load average at the start and
  the end of the case (other work on the machine slows every figure: compare runs at a similar load).

In-process reference: the same frames (decoded from the messages streamed, with the same camera
pose) through a :class:`~robot_vision.pipeline.Pipeline` of the node's settings in this process,
``REFERENCE_FRAMES`` frames right before and right after each case (the nodes are not running
then), stamped at the stream's rate so that the grasp planner keeps and re-checks grasps as in the
node: ``perceive`` + ``add_tracks`` per frame is the reference of stamp -> objects, plus
``add_grasps`` (planned in this process) that of stamp -> grasps. The ratio rows give node p50 /
reference p50 (issue 18's targets: objects <= 1.5, grasps <= 2.5): absolute times do not transfer
between machines or loads, ratios measured in the same run do.

Node logs go to ``artifacts/node_stream/``. Run: ``.venv/bin/python -m benchmarks --only node_stream [--quick]``;
``NODE_STREAM_CASES='single rgbd'`` (comma-separated case names, 'setup mode') runs only those cases, and
``NODE_STREAM_PARAMS='grasp_niceness=5'`` (comma-separated name=value) gives the nodes more parameters.
"""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped, TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from benchmarks.harness import row
from robot_vision.datasets import load_pcl_sequence, shared_data_dir
from robot_vision.perception3d.box_points import support_plane
from robot_vision.replay.runner import load_config
from robot_vision.ros import conversions as cv
from robot_vision.ros.diagnostics import FASTDDS_PROFILE_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'config' / 'robot_vision.yaml'
#: The Fast DDS profile the launch file gives the nodes (shared memory large enough for the images).
DDS_PROFILE = ROOT / 'config' / 'fastdds_large_images.xml'
LOGS = ROOT / 'artifacts' / 'node_stream'
RATE_HZ = 15.0
WARMUP_S = 5.0
#: Interval of the RSS samples over the window, and the span at each end whose median is 'RSS at start/end' (s).
RSS_SAMPLE_S, RSS_EDGE_S = 0.5, 5.0
#: Bin of the RSS series (medians) on the growth row (s).
RSS_SERIES_S = 10.0
#: Time after the last frame to collect late outputs and the last diagnostics.
DRAIN_S = 3.0
FIXED_FRAME = 'odom'
CAMERA_TOPICS = {'color_topic': '/camera/color/image_raw',
                 'depth_topic': '/camera/aligned_depth_to_color/image_raw',
                 'camera_info_topic': '/camera/color/camera_info'}
#: Executable -> node name, as the launch file starts them.
SETUPS = {'single': {'perception_node': 'robot_vision'},
          'separate': {'detector_node': 'detector', 'pose_estimator_node': 'pose_estimator',
                       'grasp_planner_node': 'grasp_planner', 'tracker_node': 'tracker'}}
MODES = {'depth-only': 'depth', 'rgbd': 'rgbd'}
#: The issue-7 targets of the depth-only path on this 2-core machine.
TARGET_P50_MS, TARGET_P95_MS, TARGET_RSS_GROWTH = 60.0, 120.0, 0.05
#: Frames of the in-process reference before and after each case (after 3 warm-up frames).
REFERENCE_FRAMES = 20
#: Issue 18's targets: node p50 / in-process reference p50 of the same frames.
TARGET_OBJECTS_RATIO, TARGET_GRASPS_RATIO = 1.5, 2.5
#: Outputs whose latency is measured.
OUTPUTS = (('objects', Detection3DArray), ('grasps', PoseArray), ('best_grasp', PoseStamped))
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def run(quick: bool) -> List[dict]:
    """Stream every (setup, mode) case for 10 s (quick) or 60 s and return the result rows."""
    if shared_data_dir() is None:
        print('  skipped: ../shared/data not found')
        return []
    duration = 10.0 if quick else 60.0
    frames = load_pcl_sequence()
    camera_to_fixed = _camera_pose(frames[0])
    rows = []
    base_domain = 150 + os.getpid() % 50
    chosen = [c.strip() for c in os.environ.get('NODE_STREAM_CASES', '').split(',') if c.strip()]
    for index, (setup, mode) in enumerate((s, m) for s in SETUPS for m in MODES):
        if chosen and f'{setup} {mode}' not in chosen:
            continue
        before = _reference(frames, camera_to_fixed, mode)
        case_rows = _stream(setup, mode, frames, camera_to_fixed, duration, base_domain + index)
        rows += case_rows + _ratio_rows(f'{setup} {mode}', case_rows, before,
                                        _reference(frames, camera_to_fixed, mode))
    return rows


def _reference(frames, camera_to_fixed: np.ndarray, mode: str) -> Dict[str, List[float]]:
    """In-process times (ms) of the streamed frames: 'objects' (perceive + add_tracks), 'grasps' (+ add_grasps)."""
    from robot_vision.pipeline import Pipeline
    from robot_vision.types import RGBDFrame
    settings, _ = load_config(str(CONFIG))
    settings = dataclasses.replace(settings, fixed_frame=FIXED_FRAME)
    pipeline = Pipeline(settings)
    decoded = []  # what the node gets: the images as streamed (depth in whole millimetres)
    for f in frames:
        depth = cv.image_to_depth(cv.numpy_to_image(np.round(np.nan_to_num(f.depth) * 1000).astype(np.uint16),
                                                    '16UC1', f.frame_id))
        decoded.append((f.color if mode == 'rgbd' else None, depth, f))
    times: Dict[str, List[float]] = {'objects': [], 'grasps': []}
    try:
        for i in range(3 + REFERENCE_FRAMES):
            color, depth, f = decoded[i % len(decoded)]
            frame = RGBDFrame(f.intrinsics, color=color, depth=depth, stamp=i / RATE_HZ, frame_id=f.frame_id,
                              camera_to_fixed=camera_to_fixed)
            start = time.perf_counter()
            result = pipeline.perceive(frame)
            pipeline.add_tracks(result, frame, track=True)
            objects = time.perf_counter()
            pipeline.add_grasps(result, frame)
            if i >= 3:
                times['objects'].append((objects - start) * 1e3)
                times['grasps'].append((time.perf_counter() - start) * 1e3)
    finally:
        pipeline.close()
    return times


def _ratio_rows(case: str, rows: List[dict], before: Dict[str, List[float]],
                after: Dict[str, List[float]]) -> List[dict]:
    """Node p50 / in-process p50 of stamp -> objects and stamp -> grasps, with the reference's spread."""
    out = []
    load = next(r['load_1min_start_end'] for r in rows if r['name'] == f'{case}: stamp -> objects p50')
    for name, label, target in (('objects', 'objects', TARGET_OBJECTS_RATIO),
                                ('grasps', 'grasps (end to end)', TARGET_GRASPS_RATIO)):
        node = next(r['value'] for r in rows if r['name'] == f'{case}: stamp -> {label} p50')
        reference = float(np.median(before[name] + after[name]))
        ratio = node / reference
        out.append(row(f'{case}: stamp -> {name} / in-process p50', ratio, 'x', f'<= {target}',
                       ok=bool(ratio <= target), node_p50_ms=node, in_process_p50_ms=reference,
                       in_process_p50_before_after_ms=[float(np.median(before[name])), float(np.median(after[name]))],
                       load_1min_start_end=load))
    return out


def _camera_pose(frame) -> np.ndarray:
    """Camera -> odom (4x4): odom's z is the normal of the floor the core fits, the floor at z = 0."""
    settings, _ = load_config(str(CONFIG))
    plane = support_plane(frame, settings.segmentation)
    if plane is None:
        raise RuntimeError('no floor found in the first frame of the sequence')
    up = plane[:3] / np.linalg.norm(plane[:3])
    x_axis = np.cross([0.0, 1.0, 0.0], up)
    x_axis /= np.linalg.norm(x_axis)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x_axis, np.cross(up, x_axis), up])
    pose[2, 3] = plane[3] / np.linalg.norm(plane[:3])  # the camera's height above the floor
    return pose


def _start(setup: str, mode: str, domain: int) -> Dict[str, Tuple[subprocess.Popen, Path]]:
    """Start the setup's node processes; returns node name -> (process, log path)."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    params = {**CAMERA_TOPICS, 'detector.backend': 'depth', 'fixed_frame': FIXED_FRAME,
              'input_reliability': 'reliable', 'mode': MODES[mode]}
    params.update(item.split('=', 1) for item in os.environ.get('NODE_STREAM_PARAMS', '').split(',') if item)
    args = [arg for name, value in params.items() for arg in ('-p', f'{name}:={value}')]
    LOGS.mkdir(parents=True, exist_ok=True)
    started = {}
    for executable, name in SETUPS[setup].items():
        log = LOGS / f'{setup}_{mode}_{name}.log'
        with open(log, 'w') as out:
            started[name] = (subprocess.Popen([str(Path(sys.executable).parent / executable), '--ros-args',
                                               '--params-file', str(CONFIG), *args],
                                              stdout=out, stderr=subprocess.STDOUT, env=env), log)
    return started


def _stop(started: Dict[str, Tuple[subprocess.Popen, Path]]) -> None:
    for process, _ in started.values():
        process.terminate()
    for process, _ in started.values():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Bench:
    """The streaming and listening node of one case."""

    def __init__(self, context, frames, camera_to_fixed: np.ndarray, color: bool) -> None:
        self.node = Node('node_stream_bench', context=context)
        node = self.node
        self.color = node.create_publisher(Image, CAMERA_TOPICS['color_topic'], RELIABLE) if color else None
        self.depth = node.create_publisher(Image, CAMERA_TOPICS['depth_topic'], RELIABLE)
        self.info = node.create_publisher(CameraInfo, CAMERA_TOPICS['camera_info_topic'], RELIABLE)
        self.tf_static = node.create_publisher(TFMessage, '/tf_static', QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE))
        pose = cv.matrix_to_pose(camera_to_fixed)
        transform = TransformStamped()
        transform.header.frame_id, transform.child_frame_id = FIXED_FRAME, frames[0].frame_id
        transform.transform.translation.x = pose.position.x
        transform.transform.translation.y = pose.position.y
        transform.transform.translation.z = pose.position.z
        transform.transform.rotation = pose.orientation
        self.tf_static.publish(TFMessage(transforms=[transform]))
        self.encoded = [(cv.numpy_to_image(f.color, 'rgb8', f.frame_id) if color else None,
                         cv.numpy_to_image(np.round(np.nan_to_num(f.depth) * 1000).astype(np.uint16), '16UC1',
                                           f.frame_id),
                         cv.intrinsics_to_camera_info(f.intrinsics, f.frame_id)) for f in frames]
        self.sent: List[int] = []
        #: Output topic -> [(stamp ns, latency ms)].
        self.received: Dict[str, List[Tuple[int, float]]] = {name: [] for name, _ in OUTPUTS}
        #: Node fully qualified name -> its latest diagnostics {key: value}.
        self.diagnostics: Dict[str, Dict[str, str]] = {}
        reliable_outputs = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for name, msg_type in OUTPUTS:
            node.create_subscription(msg_type, name, self._receiver(name), reliable_outputs)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(node)

    def _receiver(self, name: str):
        def on_output(msg, info) -> None:
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            received = info.get('received_timestamp') or self.node.get_clock().now().nanoseconds
            self.received[name].append((stamp, (received - stamp) * 1e-6))
        return on_output

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.hardware_id] = {kv.key: kv.value for kv in status.values}

    def publish(self, index: int) -> None:
        """Publish frame ``index`` (cyclic) stamped now: CameraInfo first, then the images."""
        color, depth, info = self.encoded[index % len(self.encoded)]
        now = self.node.get_clock().now()
        stamp = now.to_msg()
        self.sent.append(now.nanoseconds)
        for msg in (info, color, depth):
            if msg is not None:
                msg.header.stamp = stamp
        self.info.publish(info)
        if color is not None:
            self.color.publish(color)
        self.depth.publish(depth)

    def spin_for(self, seconds: float) -> None:
        """Spin without publishing."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def counters(self) -> Dict[str, int]:
        """'node: counter' -> its value so far, for the diagnostics counters of dropped sets and grasp objects."""
        return {f'{name.lstrip("/")}: {key}': int(value) for name, values in self.diagnostics.items()
                for key, value in values.items() if 'dropped' in key or 'grasp objects' in key}

    def stages(self) -> Dict[str, Dict[str, float]]:
        """Node -> its per-stage medians and own latency p50 (ms) from the latest diagnostics."""
        out = {}
        for name, values in self.diagnostics.items():
            node = out[name.lstrip('/')] = {key[len('stage '):-len(' median (ms)')]: float(value)
                                            for key, value in values.items()
                                            if key.startswith('stage ') and key.endswith(' median (ms)')}
            if 'latency p50 (ms)' in values:
                node['node latency p50'] = float(values['latency p50 (ms)'])
        return out


def _ready(bench: _Bench, setup: str, mode: str) -> bool:
    """Whether every node subscribed to its camera inputs and the outputs are connected."""
    node = bench.node
    depth_readers = 1 if setup == 'single' else 3  # separate: detector, pose estimator, grasp planner
    ready = (node.count_subscribers(CAMERA_TOPICS['depth_topic']) >= depth_readers
             and node.count_publishers('objects') >= 1 and node.count_publishers('grasps') >= 1)
    if mode == 'rgbd':
        ready = ready and node.count_subscribers(CAMERA_TOPICS['color_topic']) >= 1
    if setup == 'separate':  # the grasp planner, the tracker and this node listen to objects
        ready = ready and node.count_subscribers('objects') >= 3 and node.count_subscribers('detections') >= 1
    return ready


def _stream(setup: str, mode: str, frames, camera_to_fixed: np.ndarray, duration: float,
            domain: int) -> List[dict]:
    for variable in FASTDDS_PROFILE_VARIABLES:
        os.environ.setdefault(variable, str(DDS_PROFILE))  # this process and the nodes, as the launch file does
    load = os.getloadavg()[0]
    print(f'  [{setup} {mode}] load average (1 min) {load:.2f}; warm-up {WARMUP_S:.0f} s + {duration:.0f} s',
          flush=True)
    started = _start(setup, mode, domain)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    bench = _Bench(context, frames, camera_to_fixed, color=mode == 'rgbd')
    me = psutil.Process()
    try:
        deadline = time.monotonic() + 120
        while not _ready(bench, setup, mode):
            dead = [name for name, (process, _) in started.items() if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                name = (dead or list(started))[0]
                raise RuntimeError(f'{setup} {mode}: node {name} ' + ('exited' if dead else 'not ready in 120 s')
                                   + ':\n' + started[name][1].read_text()[-3000:])
            bench.executor.spin_once(timeout_sec=0.1)
        # Each node with its child processes (the perception node's grasp worker): CPU and RSS count them all.
        procs = {name: _family(psutil.Process(process.pid)) for name, (process, _) in started.items()}
        period = 1.0 / RATE_HZ
        begin = time.monotonic()
        next_t, window_start, index = begin, None, 0
        while True:
            now = time.monotonic()
            if window_start is None and now - begin >= WARMUP_S:
                window_start, stamp_start = now, bench.node.get_clock().now().nanoseconds
                cpu_start = {name: _cpu_s(family) for name, family in procs.items()}
                my_cpu_start = sum(me.cpu_times()[:2])
                counters_start = bench.counters()
                rss_samples, next_sample = [], now
            if window_start is not None and now >= next_sample:
                rss_samples.append((now - window_start, {name: sum(p.memory_info().rss for p in family)
                                                         for name, family in procs.items()}))
                next_sample += RSS_SAMPLE_S
            if window_start is not None and now - window_start >= duration:
                break
            if now >= next_t:
                bench.publish(index)
                index += 1
                next_t += period
            bench.executor.spin_once(timeout_sec=max(0.0, min(0.005, next_t - time.monotonic())))
        elapsed = time.monotonic() - window_start
        cpu = {name: (_cpu_s(family) - cpu_start[name]) / elapsed * 100 for name, family in procs.items()}
        my_cpu = (sum(me.cpu_times()[:2]) - my_cpu_start) / elapsed * 100
        stamp_end = bench.node.get_clock().now().nanoseconds
        bench.spin_for(DRAIN_S)
        counters_end, stages = bench.counters(), bench.stages()
    finally:
        _stop(started)
        bench.node.destroy_node()
        rclpy.try_shutdown(context=context)
    window = set(s for s in bench.sent if stamp_start <= s < stamp_end)
    latency = {name: [ms for stamp, ms in got if stamp in window] for name, got in bench.received.items()}
    counts = {name: value - counters_start.get(name, 0) for name, value in counters_end.items()}
    dropped = {name: value for name, value in counts.items() if 'dropped' in name}
    grasp_objects = {name: value for name, value in counts.items() if 'grasp objects' in name}
    return _rows(f'{setup} {mode}', mode == 'depth-only', latency, len(window), duration, cpu, my_cpu,
                 rss_samples, dropped, grasp_objects, stages, (load, os.getloadavg()[0]))


def _family(process: psutil.Process) -> List[psutil.Process]:
    """The process and its descendants (started at configuration, so they exist once the node is ready)."""
    return [process] + process.children(recursive=True)


def _cpu_s(family: List[psutil.Process]) -> float:
    """User + system CPU seconds of the processes so far."""
    return sum(sum(p.cpu_times()[:2]) for p in family)


def _percentiles(values: List[float]) -> Tuple[float, float]:
    if not values:
        return float('nan'), float('nan')
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _rows(case: str, targeted: bool, latency: Dict[str, List[float]], sent: int, duration: float,
          cpu: Dict[str, float], my_cpu: float, rss_samples: List[Tuple[float, Dict[str, int]]],
          dropped: Dict[str, int], grasp_objects: Dict[str, int], stages: Dict[str, Dict[str, float]],
          load: Tuple[float, float]) -> List[dict]:
    rows = []
    for name, label in (('objects', 'objects'), ('grasps', 'grasps (end to end)'), ('best_grasp', 'best grasp')):
        p50, p95 = _percentiles(latency[name])
        target = ok = None
        if targeted and name != 'best_grasp':
            target = f'p50 <= {TARGET_P50_MS:.0f}, p95 <= {TARGET_P95_MS:.0f} ms'
            ok = bool(p50 <= TARGET_P50_MS and p95 <= TARGET_P95_MS)
        extra = {'stages_ms': stages, 'load_1min_start_end': load} if name == 'objects' else {}
        if name == 'grasps':
            extra = {'grasp_objects': grasp_objects}
        rows.append(row(f'{case}: stamp -> {label} p50', p50, 'ms', target, p95_ms=p95, n=len(latency[name]),
                        ok=ok, **extra))
    answered = len(latency['objects'])
    rows.append(row(f'{case}: frames answered (objects)', 100.0 * answered / max(sent, 1), '%', '100 %',
                    sent=sent, answered=answered, with_best_grasp=len(latency['best_grasp'])))
    rows.append(row(f'{case}: objects per second', answered / duration, 'Hz', f'input {RATE_HZ:.0f} Hz'))
    rows.append(row(f'{case}: CPU of the node processes', sum(cpu.values()), '%', '100 % = 1 core',
                    per_process=cpu, streaming_process=my_cpu))
    times = np.array([t for t, _ in rss_samples])
    mib = {name: np.array([rss[name] for _, rss in rss_samples]) / 2**20 for name in rss_samples[0][1]}
    total = sum(mib.values())
    first, last = times <= times[0] + RSS_EDGE_S, times >= times[-1] - RSS_EDGE_S
    start, end = float(np.median(total[first])), float(np.median(total[last]))
    per_process = {name: [round(float(np.median(v[first])), 1), round(float(np.median(v[last])), 1)]
                   for name, v in mib.items()}
    rows.append(row(f'{case}: RSS at start', start, 'MiB', per_process_start_end_mib=per_process))
    rows.append(row(f'{case}: RSS at end', end, 'MiB'))
    growth = (end - start) / start
    slope = float(np.polyfit(times, total, 1)[0]) * 60 if len(times) > 1 else float('nan')
    bins = (times // RSS_SERIES_S).astype(int)
    series = [round(float(np.median(total[bins == b])), 1) for b in np.unique(bins)]
    rows.append(row(f'{case}: RSS growth', growth * 100, '%', f'< {TARGET_RSS_GROWTH * 100:.0f} %',
                    ok=bool(growth < TARGET_RSS_GROWTH), trend_mib_per_min=slope,
                    min_max_mib=[float(total.min()), float(total.max())], series_mib=series))
    rows.append(row(f'{case}: frames dropped by policy', sum(dropped.values()), 'frames', f'of {sent} sent',
                    per_counter=dropped))
    return rows
