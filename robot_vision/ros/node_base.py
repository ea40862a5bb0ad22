"""What every robot_vision lifecycle node shares: parameters, inputs, latest-frame worker, outputs, TF, diagnostics.

A node subclasses :class:`PipelineNode`, names its executable (``EXECUTABLE``, which selects its
parameter table in :mod:`robot_vision.ros.node_parameters`) and its output topics (``OUTPUTS``,
names from :data:`robot_vision.ros.topics.OUTPUT_TOPICS`), and implements three hooks:

- :meth:`PipelineNode.setup` (on_configure): build the core objects from the validated settings;
- :meth:`PipelineNode.inputs` (on_activate): the synchronised inputs as (name, type, topic);
- :meth:`PipelineNode.process` (worker thread): handle one synchronised set ``{name: msg}``.

The base declares the parameters (node table plus every pipeline setting), rejects unknown
overrides, subscribes with the configured QoS through :class:`~robot_vision.ros.compat.ApproximateSync`,
keeps the latest CameraInfo, processes always the newest set on a worker thread (sets that are
replaced before the worker takes them are counted as dropped), publishes /diagnostics at 1 Hz and
turns :class:`~robot_vision.errors.RobotVisionError` from a frame into a throttled error.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import get_rmw_implementation_identifier
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from robot_vision.camera import depth_unit_problem
from robot_vision.errors import RobotVisionError
from robot_vision.pipeline import FrameResult, Pipeline, PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.compat import ApproximateSync, TransformSource
from robot_vision.ros.diagnostics import NodeDiagnostics, PairingWatch, large_image_problem
from robot_vision.ros.latest_worker import LatestWorker
from robot_vision.ros.node_parameters import ALL_NAMES, check_value, node_parameters
from robot_vision.ros.outputs import result_messages
from robot_vision.ros.params import (declare_settings, is_float, read_settings, review_change, undeclared_message,
                                     unknown_overrides)
from robot_vision.ros.topics import CAMERA_INFO_WAIT_S, image_topic, output_topic
from robot_vision.types import CameraIntrinsics, RGBDFrame

def message_class(type_name: str) -> type:
    """Import a message class from its ROS type name, e.g. 'vision_msgs/msg/Detection2DArray'."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def reliability(name: str) -> ReliabilityPolicy:
    """The QoS reliability policy of a parameter value ('best_effort' or 'reliable')."""
    return {'best_effort': ReliabilityPolicy.BEST_EFFORT, 'reliable': ReliabilityPolicy.RELIABLE}[name]


#: QoS of latched outputs (LabelInfo): late subscribers get the last message.
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


def _logged(transition: Any) -> Any:
    """Log an unexpected exception of a lifecycle transition (rclpy turns it into ERROR silently)."""
    @functools.wraps(transition)
    def wrapper(self: LifecycleNode, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return transition(self, state)
        except Exception as exc:  # noqa: BLE001 - any failure must reach the log, then rclpy handles it
            self.get_logger().error(f'{transition.__name__} failed: {exc!r}\n{traceback.format_exc()}')
            raise
    return wrapper


class PipelineNode(LifecycleNode):
    """Base class of robot_vision's lifecycle nodes (see the module docstring for the hooks)."""

    #: Executable name; selects the parameter table in robot_vision.ros.node_parameters.
    EXECUTABLE = ''
    #: Output topic names (entries of OUTPUT_TOPICS) created as lifecycle publishers in on_configure.
    OUTPUTS: Tuple[str, ...] = ()
    #: Whether the node needs CameraInfo (frames are refused until one arrived).
    USES_CAMERA_INFO = True

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.parameter_table = node_parameters(self.EXECUTABLE)
        for name, (default, text) in self.parameter_table.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text,
                                                                      dynamic_typing=is_float(default)))
        self._leaves = declare_settings(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._guard_change_state()
        self.params: Dict[str, Any] = {}
        self.settings: Optional[PipelineSettings] = None
        #: Settings changed at runtime, taken by the worker before its next set (see apply_settings).
        self._new_settings: Optional[PipelineSettings] = None
        self.pipeline: Optional[Pipeline] = None
        self.outputs: Dict[str, Any] = {}
        self.tf: Optional[TransformSource] = None
        self.diag: Optional[NodeDiagnostics] = None
        self.camera_info: Optional[CameraInfo] = None
        self._info_arrived = threading.Event()
        self._sync: Optional[ApproximateSync] = None
        self._reset_pending, self._resync_timer = False, None
        self._extra_subs: List[Any] = []
        self._diag_timer = None
        self._input_names: List[str] = []
        self._worker: Optional[LatestWorker] = None
        self._extra_workers: List[LatestWorker] = []
        if self.get_parameter('autostart').value:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ------------------------------------------------------------------ hooks
    def setup(self, settings: PipelineSettings) -> None:
        """Build the node's core objects (load models); raise RobotVisionError to fail configuration.

        The default builds ``self.pipeline`` (loading the detector model of model backends).
        """
        self.pipeline = Pipeline(settings)

    def teardown(self) -> None:
        """Release what :meth:`setup` built (the default closes ``self.pipeline``)."""
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = None

    def inputs(self) -> List[Tuple[str, type, str]]:
        """The synchronised inputs as (name, message type, topic parameter value)."""
        raise NotImplementedError

    def extra_subscriptions(self) -> None:
        """Create unsynchronised subscriptions (latched class names, requests) with :meth:`subscribe`."""

    def process(self, msgs: Dict[str, Any]) -> None:
        """Handle one synchronised set {input name: message} on the worker thread."""
        raise NotImplementedError

    def activated(self) -> None:
        """Called once the publishers are active (publish latched messages such as LabelInfo here)."""

    # ------------------------------------------------------------------ requests
    def _guard_change_state(self) -> None:
        """Answer a change_state request for a transition the current state lacks with success=False.

        rclpy (Jazzy's wheel) raises RCLError "Transition is not registered" out of the service
        callback for such a transition sent by id, which ends the spin and the process.
        """
        service = getattr(self, '_service_change_state', None)
        if service is None:
            return
        handle = service.callback

        def guarded(request: Any, response: Any) -> Any:
            transition = request.transition
            available = {t[0]: t[1] for t in self._state_machine.available_transitions}
            if not transition.label and transition.id not in available:
                state = self._state_machine.current_state[1]
                self.get_logger().warn(
                    f'lifecycle transition id {transition.id} refused: the node is {state}, whose transitions '
                    f'are {", ".join(f"{label} ({tid})" for tid, label in available.items())}')
                response.success = False
                return response
            return handle(request, response)
        service.callback = guarded

    def set_parameters_atomically(self, parameter_list: List[Any]) -> SetParametersResult:
        """Set parameters (the parameter services call this); an undeclared name is refused with a "did you mean"."""
        unknown = [p.name for p in parameter_list if not self.has_parameter(p.name)]
        if unknown:
            return SetParametersResult(successful=False, reason='; '.join(
                undeclared_message(name, list(self._parameters)) for name in unknown))
        return super().set_parameters_atomically(parameter_list)

    def _on_set_parameters(self, params: List[Any]) -> SetParametersResult:
        """Check every value; a configured node applies per-frame ones live and refuses the rest (needs reconfigure)."""
        configured = self._state_machine.current_state[1] in ('inactive', 'active')
        result, change = review_change(self, self._leaves, self.parameter_table, params, configured)
        if change is not None and configured:
            self.params.update(change.node_values)
            if self.diag is not None and 'input_timeout_s' in change.node_values:
                self.diag.timeout = float(change.node_values['input_timeout_s'])
            if change.settings is not None:
                self._new_settings = change.settings
        return result

    def apply_settings(self, settings: PipelineSettings) -> None:
        """Use settings changed at runtime (their per-frame sections only) from this set on (worker thread)."""
        self.settings = settings
        if self.pipeline is not None:
            self.pipeline.apply_live(settings)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @_logged
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate parameters, build the core objects, create publishers."""
        problems = unknown_overrides(self, sorted(ALL_NAMES))
        if problems:
            self.get_logger().error('configuration rejected: ' + '; '.join(problems))
            return TransitionCallbackReturn.FAILURE
        try:
            self.settings, self._new_settings = read_settings(self, self._leaves), None
            self.params = {name: self.get_parameter(name).value for name in self.parameter_table}
            problems = [p for p in (check_value(name, value) for name, value in self.params.items()) if p]
            if problems:
                raise RobotVisionError('; '.join(problems))
            self.setup(self.settings)
        except RobotVisionError as exc:
            self.get_logger().error(f'configuration failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        for name in self.OUTPUTS:
            topic = output_topic(name)
            self.outputs[name] = self.create_lifecycle_publisher(
                message_class(topic.msg_type), name, LATCHED if topic.latched else 10)
        self.tf = TransformSource(self)
        self.get_logger().info(f'configured: detector {self.settings.detector.backend}, fixed frame '
                               f'{self.settings.fixed_frame}, outputs {", ".join(self.OUTPUTS)}')
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the inputs and start the worker thread."""
        p = self.params
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(p['input_depth']),
                         reliability=reliability(p['input_reliability']), durability=DurabilityPolicy.VOLATILE)
        inputs = self.inputs()
        self._input_names = [name for name, _, _ in inputs]
        self._sync_inputs = [(msg_type, topic, qos) for _, msg_type, topic in inputs]
        self._start_sync()
        watched = {name: (topic, qos) for name, _, topic in inputs}
        if self.USES_CAMERA_INFO:
            info_qos = QoSProfile(depth=5, reliability=reliability(p['input_reliability']))
            self.subscribe(CameraInfo, p['camera_info_topic'], self._on_info, info_qos)
            watched['camera_info'] = (p['camera_info_topic'], info_qos)
        self.diag = NodeDiagnostics(self, watched, float(p['input_timeout_s']))
        self._transport: Dict[str, Optional[str]] = {}  # input -> its large-image transport problem
        # Steady clock: diagnostics keep coming while simulated time is paused or a bag has ended.
        self._diag_timer = self.create_timer(1.0, self.diag.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.extra_subscriptions()
        for name, topic in ((n, t) for n, _, t in inputs):
            self.get_logger().info(f'input {name}: {self.resolve_topic_name(topic)} with QoS reliability '
                                   f'{qos.reliability.name.lower()}, depth {qos.depth}')
        self._worker = LatestWorker(f'{self.get_name()}_worker', self._process_set, self.frame_error)
        result = super().on_activate(state)
        self.activated()
        return result

    @_logged
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop processing and unsubscribe."""
        self._stop_worker()
        if self._sync is not None:
            self._sync.destroy()
            self._sync = None
        for sub in self._extra_subs:
            self.destroy_subscription(sub)
        self._extra_subs = []
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        return super().on_deactivate(state)

    @_logged
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the core objects (models) and the publishers."""
        self.teardown()
        for publisher in self.outputs.values():
            self.destroy_publisher(publisher)
        self.outputs = {}
        self.settings = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker on shutdown from any state."""
        self._stop_worker()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ inputs and worker
    def subscribe(self, msg_type: type, topic: str, callback: Any, qos: Any = 10) -> Any:
        """Create a subscription that on_deactivate removes again."""
        sub = self.create_subscription(msg_type, topic, callback, qos)
        self._extra_subs.append(sub)
        return sub

    def image_input(self, name: str) -> Tuple[str, type, str]:
        """The input ``name`` ('color' or 'depth') as (name, message type, topic) by its ``<name>_transport``.

        'raw' subscribes sensor_msgs/Image on ``<name>_topic``; 'compressed' / 'compressedDepth'
        subscribe sensor_msgs/CompressedImage on its image_transport sub-topic.
        """
        transport = self.params[f'{name}_transport']
        return (name, Image if transport == 'raw' else CompressedImage,
                image_topic(self.params[f'{name}_topic'], transport))

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg
        self._info_arrived.set()
        if self.diag is not None:
            self.diag.rates['camera_info'].tick()

    def _start_sync(self) -> None:
        """Synchronise the inputs afresh; every arrival passes :meth:`_arrived` first."""
        self._sync = ApproximateSync(self, self._sync_inputs, int(self.params['sync_queue_size']),
                                     float(self.params['sync_slop_s']), self._on_set)
        self._pairing = PairingWatch(self._input_names, float(self.params['sync_slop_s']))
        for name, sub in zip(self._input_names, self._sync.subscriptions):
            sub.callback = functools.partial(self._arrived, name, sub.callback)

    def _arrived(self, name: str, deliver: Callable[[Any], None], msg: Any) -> None:
        """Count an input message, explain sets that do not form, notice time going back; then synchronise it."""
        self.diag.rates[name].tick()
        stamp = cv.stamp_to_seconds(msg.header.stamp)
        previous = self._pairing.arrived(name, stamp)
        if previous is not None:
            text = (f'time jumped back on {name}: stamp {stamp:.3f} after {previous:.3f} ({previous - stamp:.3f} s; '
                    f'a looped bag, or a restarted camera or simulation): synchronisation, tracks and kept grasps '
                    f'were reset')
            self.diag.problem('time', text)
            self.get_logger().warn(text)
            self._reset_pending = True  # the worker resets the pipeline before its next set
            self._resync_timer = self._resync_timer or self.create_timer(0.0, self._resync)
        problem = self._pairing.pairing_problem()
        if problem:
            self.diag.problem('sync', problem)
        deliver(msg)

    def _resync(self) -> None:
        self.destroy_timer(self._resync_timer)
        self._resync_timer = None
        if self._sync is not None:  # still active
            self._sync.destroy()
            self._start_sync()

    def reset_state(self) -> None:
        """Forget tracks and kept grasps after time went back (worker thread; the default resets the pipeline)."""
        if self.pipeline is not None:
            self.pipeline.reset()

    def _on_set(self, *msgs: Any) -> None:
        self._pairing.paired()
        newest = max(cv.stamp_to_seconds(msg.header.stamp) for msg in msgs)
        self.diag.stage('input transfer', self.latency_ms(newest))  # stamp -> set formed: DDS and sync
        self.submit(dict(zip(self._input_names, msgs)))

    def _process_set(self, msgs: Dict[str, Any]) -> None:
        if self._worker is not None and self.diag is not None:
            self.diag.stage('queue wait', self._worker.waited_ms)  # set formed -> taken by the worker
        if self._reset_pending:
            self._reset_pending = False
            self.reset_state()
        settings = self._new_settings
        if settings is not None and settings is not self.settings:
            self.apply_settings(settings)
        self.process(msgs)

    def submit(self, msgs: Dict[str, Any]) -> None:
        """Hand a set to :meth:`process` on the worker; it replaces a waiting set, which counts as dropped."""
        self._worker.submit(msgs)
        self.diag.dropped = self._worker.dropped

    def worker(self, name: str, handle: Callable[[Any], None]) -> LatestWorker:
        """Start another latest-item worker thread (stopped with the main one on deactivate/shutdown)."""
        worker = LatestWorker(f'{self.get_name()}_{name}', handle, self.frame_error)
        self._extra_workers.append(worker)
        return worker

    def frame_error(self, exc: Exception) -> None:
        """Report a frame that could not be processed: diagnostics plus a throttled error log.

        A RobotVisionError is bad input; any other exception is a bug, logged with its traceback.
        Nothing is reported while the process shuts down (publishers and the context are going away).
        """
        if not self.context.ok() or self.diag is None:
            return
        self.diag.errors += 1
        text = str(exc) if isinstance(exc, RobotVisionError) else f'unexpected {type(exc).__name__}: {exc}'
        self.diag.problem('frame', text, 2)
        detail = '' if isinstance(exc, RobotVisionError) else '\n' + ''.join(traceback.format_exception(exc))
        self.get_logger().error(f'frame skipped: {text}{detail}', throttle_duration_sec=5.0)

    def release(self) -> None:
        """Stop the worker threads, then release the core objects (models, grasp processes): the process exits."""
        self._stop_worker()
        self.teardown()

    def _stop_worker(self) -> None:
        for worker in [self._worker] + self._extra_workers:
            if worker is not None:
                worker.stop()
        self._worker, self._extra_workers = None, []

    # ------------------------------------------------------------------ helpers for process()
    def intrinsics(self) -> CameraIntrinsics:
        """The latest CameraInfo as intrinsics (RobotVisionError naming the topic when none arrived).

        Before the first CameraInfo the worker waits up to CAMERA_INFO_WAIT_S for it: drivers and
        bag players often publish a frame's CameraInfo just after its images.
        """
        if self.camera_info is None:
            self._info_arrived.wait(CAMERA_INFO_WAIT_S)
        if self.camera_info is None:
            raise RobotVisionError(f'no CameraInfo received yet on '
                                   f'{self.resolve_topic_name(self.params["camera_info_topic"])}')
        return cv.camera_info_to_intrinsics(self.camera_info)

    def frame(self, color: Optional[Image | CompressedImage] = None,
              depth: Optional[Image | CompressedImage] = None) -> RGBDFrame:
        """An RGBDFrame of the given images (at least one, raw or compressed) with the latest CameraInfo.

        Checks the depth units (diagnostics) and that colour and depth have the same size; the first
        image of each kind checks the DDS transport of large images (diagnostics, one log warning).
        """
        header = (color if color is not None else depth).header
        for name, image in (('color', color), ('depth', depth)):
            if image is not None and name not in self._transport:
                self._transport[name] = large_image_problem(
                    self.resolve_topic_name(self.image_input(name)[2]), len(image.data),
                    get_rmw_implementation_identifier(), os.environ)
                if self._transport[name]:
                    self.get_logger().warn(self._transport[name])
            if image is not None and self._transport[name]:
                self.diag.problem(f'{name}_transport', self._transport[name])
        start = time.perf_counter()
        intrinsics = self.intrinsics()
        rgb = cv.image_to_rgb(color) if color is not None else None
        metres = None
        if depth is not None:
            metres = cv.image_to_depth(depth, float(self.params['depth_scale']) or None)
            problem = depth_unit_problem(metres)
            if problem:
                self.diag.problem('depth_units', problem)
        if rgb is not None and metres is not None and rgb.shape[:2] != metres.shape:
            raise RobotVisionError(f'colour image is {rgb.shape[1]}x{rgb.shape[0]} but depth is '
                                   f'{metres.shape[1]}x{metres.shape[0]}: is the depth aligned to colour?')
        self.diag.stage('decode inputs', (time.perf_counter() - start) * 1e3)
        return RGBDFrame(intrinsics, color=rgb, depth=metres, stamp=cv.stamp_to_seconds(header.stamp),
                         frame_id=header.frame_id)

    def lookup(self, target: str, source: str, stamp: float, purpose: str) -> Optional[np.ndarray]:
        """``source`` -> ``target`` 4x4 at ``stamp``, or None with a 'tf' diagnostic and a throttled warning."""
        if not target or target == source:
            return np.eye(4)
        try:
            return self.tf.lookup(target, source, stamp, float(self.params['tf_timeout_s']))
        except RobotVisionError as exc:
            self.diag.problem('tf', f'{purpose} skipped: {exc}')
            self.get_logger().warn(f'no transform {source} -> {target} for {purpose}: {exc}',
                                   throttle_duration_sec=5.0)
            return None

    def publish(self, result: FrameResult, topics: Sequence[str], stamp: Any,
                color: Optional[np.ndarray] = None, camera_to_fixed: Optional[np.ndarray] = None) -> None:
        """Publish ``result``'s messages of ``topics`` (stamped ``stamp``, the input header stamp).

        Only topics that have a subscriber are built and published: markers, clouds, label images
        and overlays cost nothing until RViz, a recorder or another node subscribes (in the node
        benchmark, building and publishing every output took as long as the perception itself).
        """
        topics = [topic for topic in topics if self.outputs[topic].get_subscription_count() > 0]
        if not topics:
            return
        for topic, msg in result_messages(result, color, camera_to_fixed, topics=topics):
            for stamped in [msg] + list(getattr(msg, 'markers', [])):
                if hasattr(stamped, 'header'):
                    stamped.header.stamp = stamp
            self.outputs[topic].publish(msg)

    def publish_label_info(self, class_names: Dict[int, str]) -> None:
        """Publish the class map on the latched ``label_info`` output."""
        self.outputs['label_info'].publish(cv.label_info_msg(class_names))

    def finished(self, stamp_s: float, timings_ms: Dict[str, float], warnings: Iterable[str] = ()) -> None:
        """Record a processed set: latency from the input stamp to now, stage times, pipeline warnings."""
        for warning in warnings:
            self.diag.problem('pipeline', warning)
        self.diag.processed_frame(self.latency_ms(stamp_s), timings_ms)

    def latency_ms(self, stamp_s: float) -> float:
        """Milliseconds from an input stamp (s) to now, on the node's clock (simulated time with use_sim_time)."""
        return (self.get_clock().now().nanoseconds * 1e-9 - stamp_s) * 1e3


def spin(node: Node, quiet_exit: bool = False) -> None:
    """Spin ``node`` until Ctrl-C or external shutdown, then clean up.

    A single-threaded executor: the callbacks only hand messages to the node's worker threads
    (and the grasp worker processes), which do the work and the waiting (TF, CameraInfo). rclpy's
    MultiThreadedExecutor re-builds its wait set in a loop while a dispatched callback has not yet
    taken its message, holding the interpreter lock about half of the time: in the node benchmark
    the worker threads then stalled for up to 1.5 s and a quarter of the frames were dropped.

    An exception out of a callback is logged and the spin goes on (the node never dies of a request
    or a message); an exception once the context is shut down ends it: Ctrl-C shuts the context
    down under the executor, which can then fail with "the given context is not valid".

    ``quiet_exit`` (the console scripts): once the spin ends, further SIGINTs are ignored, so that a
    terminal's Ctrl-C, which reaches the node and ``ros2 launch`` both, and the SIGINT launch then
    forwards do not kill the node with the signal while it cleans up (exit code -2; launch reports
    "process has died"). SIGTERM still ends a node that hangs.
    """
    import rclpy
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while node.context.ok():
            try:
                executor.spin()
            except (KeyboardInterrupt, ExternalShutdownException):
                break
            except Exception as exc:  # noqa: BLE001 - contained: log it and keep spinning
                if not node.context.ok():
                    break
                node.get_logger().error(f'a callback failed, the node keeps running: {exc!r}\n'
                                        f'{traceback.format_exc()}', throttle_duration_sec=5.0)
    finally:
        if quiet_exit and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if isinstance(node, PipelineNode):
            node.release()
        node.destroy_node()
        rclpy.try_shutdown(context=node.context)


def tune_malloc() -> bool:
    """Keep per-frame image-sized buffers in glibc's heap instead of fresh mmap pages (Linux/glibc only).

    Raises M_MMAP_THRESHOLD to 64 MiB and M_TRIM_THRESHOLD to 256 MiB: this removes thousands of
    page faults per 640x480 frame (about 12 ms per frame measured in the pipeline, RSS +17 MiB and
    flat; docs/grasping.md). Returns whether it applied; elsewhere it does nothing.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        return bool(libc.mallopt(-3, 64 << 20)) and bool(libc.mallopt(-1, 256 << 20))
    except (OSError, AttributeError):
        return False


def main_for(node_class: type, args: Optional[List[str]] = None) -> None:
    """Console-script body: tune malloc, init rclpy, create ``node_class()``, spin until shutdown."""
    import rclpy
    tune_malloc()
    try:
        rclpy.init(args=args)
        spin(node_class(), quiet_exit=True)
    except KeyboardInterrupt:  # Ctrl-C before the spin began or during the clean-up: exit quietly
        rclpy.try_shutdown()
