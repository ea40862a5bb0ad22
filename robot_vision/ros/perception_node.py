"""The all-in-one perception lifecycle node: RGB-D in; detections, 3D objects, grasps and tracks out."""

from __future__ import annotations

import importlib
import threading
from typing import Any, Dict, List, Optional, Tuple

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from sensor_msgs.msg import CameraInfo, Image

from robot_vision.camera import depth_unit_problem
from robot_vision.errors import RobotVisionError
from robot_vision.pipeline import Pipeline
from robot_vision.ros import conversions as cv
from robot_vision.ros.compat import ApproximateSync, TransformSource
from robot_vision.ros.diagnostics import NodeDiagnostics
from robot_vision.ros.outputs import result_messages
from robot_vision.ros.params import declare_settings, read_settings, unknown_overrides, validate_change
from robot_vision.ros.topics import OUTPUT_TOPICS
from robot_vision.types import RGBDFrame

#: Node parameters that are not pipeline settings: name -> (default, description).
NODE_PARAMETERS: Dict[str, Tuple[Any, str]] = {
    'mode': ('rgbd', "inputs: 'rgbd' (colour + aligned depth), 'depth' (depth only, class-agnostic) "
                     "or 'color' (colour only: 2D detections and 2D tracks)"),
    'color_topic': ('camera/color/image_raw', 'colour image topic (rgb8/bgr8/rgba8/bgra8/mono8)'),
    'depth_topic': ('camera/aligned_depth_to_color/image_raw',
                    'depth image aligned to colour (16UC1 mm or 32FC1 m)'),
    'camera_info_topic': ('camera/color/camera_info', 'CameraInfo of the colour (and aligned depth) image'),
    'depth_scale': (0.0, 'metres per depth unit; 0 = from the encoding (16UC1: 0.001, 32FC1: 1)'),
    'input_reliability': ('best_effort', "QoS reliability of the image inputs: 'best_effort' or 'reliable'"),
    'input_depth': (5, 'QoS history depth of the image inputs'),
    'sync_slop_s': (0.03, 'approximate-time slop between colour and depth stamps (s)'),
    'sync_queue_size': (10, 'approximate-time synchroniser queue per input'),
    'tf_timeout_s': (0.05, 'how long to wait for the camera -> fixed frame transform at an image stamp (s)'),
    'input_timeout_s': (3.0, 'warn in diagnostics when an input is silent this long (s)'),
    'autostart': (True, 'configure and activate on start-up (no lifecycle manager needed)'),
}


def message_class(type_name: str) -> type:
    """Import a message class from its ROS type name, e.g. 'vision_msgs/msg/Detection2DArray'."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _reliability(name: str) -> ReliabilityPolicy:
    return {'best_effort': ReliabilityPolicy.BEST_EFFORT, 'reliable': ReliabilityPolicy.RELIABLE}[name]


class PerceptionNode(LifecycleNode):
    """Run the whole robot_vision pipeline in one process.

    Subscribed (relative, remappable; sensor-data QoS by default, see ``input_reliability``):
      ``camera/color/image_raw`` (sensor_msgs/Image), ``camera/aligned_depth_to_color/image_raw``
      (sensor_msgs/Image 16UC1/32FC1), ``camera/color/camera_info`` (sensor_msgs/CameraInfo,
      reliable); ``/tf``, ``/tf_static`` for camera -> ``fixed_frame``.
    Published (see robot_vision.ros.topics): ``detections`` (vision_msgs/Detection2DArray),
      ``instance_labels`` (Image mono16), ``detections_overlay`` (Image rgb8), ``label_info``
      (vision_msgs/LabelInfo, transient local), ``objects`` (vision_msgs/Detection3DArray),
      ``object_points`` (PointCloud2), ``object_markers`` (MarkerArray), ``grasps`` (PoseArray),
      ``best_grasp`` (PoseStamped), ``grasp_markers`` (MarkerArray), ``tracked_objects``
      (Detection3DArray in ``fixed_frame``), ``track_markers`` (MarkerArray), ``obstacles``
      (PointCloud2), ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, 1 Hz).
    Parameters: NODE_PARAMETERS above plus every pipeline setting (robot_vision.ros.params).
    Processing: always the latest synchronised frame on a worker thread; frames that arrive while
    one is being processed replace the waiting one and are counted as dropped.
    """

    def __init__(self, node_name: str = 'robot_vision', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, text) in NODE_PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        self._leaves = declare_settings(self)
        self.add_on_set_parameters_callback(lambda params: validate_change(self, self._leaves, params))
        self._pipeline: Optional[Pipeline] = None
        self._outputs: Dict[str, Any] = {}
        self._sync: Optional[ApproximateSync] = None
        self._info_sub = None
        self._tf: Optional[TransformSource] = None
        self._diag: Optional[NodeDiagnostics] = None
        self._diag_timer = None
        self._camera_info: Optional[CameraInfo] = None
        self._pending: Optional[Tuple[Any, ...]] = None
        self._wake = threading.Condition()
        self._worker: Optional[threading.Thread] = None
        self._running = False
        self._params: Dict[str, Any] = {}
        self._labels_published = False
        if self.get_parameter('autostart').value:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate parameters, load models, create publishers."""
        problems = unknown_overrides(self, list(NODE_PARAMETERS))
        if problems:
            self.get_logger().error('configuration rejected: ' + '; '.join(problems))
            return TransitionCallbackReturn.FAILURE
        try:
            settings = read_settings(self, self._leaves)
            self._params = {name: self.get_parameter(name).value for name in NODE_PARAMETERS}
            if self._params['mode'] not in ('rgbd', 'depth', 'color'):
                raise RobotVisionError(f"mode: expected 'rgbd', 'depth' or 'color', got {self._params['mode']!r}")
            if self._params['input_reliability'] not in ('best_effort', 'reliable'):
                raise RobotVisionError(f"input_reliability: expected 'best_effort' or 'reliable', "
                                       f"got {self._params['input_reliability']!r}")
            self._pipeline = Pipeline(settings)
        except RobotVisionError as exc:
            self.get_logger().error(f'configuration failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        for topic in OUTPUT_TOPICS:
            self._outputs[topic.name] = self.create_lifecycle_publisher(
                message_class(topic.msg_type), topic.name, latched if topic.latched else 10)
        self._tf = TransformSource(self)
        self.get_logger().info(f'configured: mode {self._params["mode"]}, detector '
                               f'{settings.detector.backend}, fixed frame {settings.fixed_frame}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the inputs and start the worker thread."""
        p = self._params
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(p['input_depth']),
                               reliability=_reliability(p['input_reliability']),
                               durability=DurabilityPolicy.VOLATILE)
        info_qos = QoSProfile(depth=5, reliability=_reliability(p['input_reliability']))
        inputs: List[Tuple[type, str, QoSProfile]] = []
        names = []
        if p['mode'] in ('rgbd', 'color'):
            inputs.append((Image, p['color_topic'], image_qos))
            names.append('color')
        if p['mode'] in ('rgbd', 'depth'):
            inputs.append((Image, p['depth_topic'], image_qos))
            names.append('depth')
        self._input_names = names
        self._sync = ApproximateSync(self, inputs, int(p['sync_queue_size']), float(p['sync_slop_s']),
                                     self._on_frame)
        self._info_sub = self.create_subscription(CameraInfo, p['camera_info_topic'], self._on_info, info_qos)
        diag_inputs = {name: (topic, qos) for name, (_, topic, qos) in zip(names, inputs)}
        diag_inputs['camera_info'] = (p['camera_info_topic'], info_qos)
        self._diag = NodeDiagnostics(self, diag_inputs, float(p['input_timeout_s']))
        self._diag_timer = self.create_timer(1.0, self._diag.publish)
        for name, (_, topic, qos) in zip(names, inputs):
            self.get_logger().info(f'input {name}: {self.resolve_topic_name(topic)} with QoS reliability '
                                   f'{qos.reliability.name.lower()}, depth {qos.depth}')
        self._running = True
        self._worker = threading.Thread(target=self._work, name='robot_vision_worker', daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop processing and unsubscribe."""
        self._stop_worker()
        if self._sync is not None:
            self._sync.destroy()
            self._sync = None
        for handle in (self._info_sub,):
            if handle is not None:
                self.destroy_subscription(handle)
        self._info_sub = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the pipeline (models) and the publishers."""
        if self._pipeline is not None:
            self._pipeline.close()
        self._pipeline = None
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self._labels_published = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker on shutdown from any state."""
        self._stop_worker()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ callbacks
    def _on_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg
        if self._diag is not None:
            self._diag.rates['camera_info'].tick()

    def _on_frame(self, *msgs: Image) -> None:
        for name in self._input_names:
            self._diag.rates[name].tick()
        with self._wake:
            if self._pending is not None:
                self._diag.dropped += 1
            self._pending = msgs
            self._wake.notify()

    def _stop_worker(self) -> None:
        self._running = False
        with self._wake:
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._running and self._pending is None:
                    self._wake.wait(timeout=0.5)
                if not self._running:
                    return
                msgs, self._pending = self._pending, None
            try:
                self._process(msgs)
            except RobotVisionError as exc:
                self._diag.errors += 1
                self._diag.problem('frame', str(exc), 2)
                self.get_logger().error(f'frame skipped: {exc}', throttle_duration_sec=5.0)

    def _frame(self, msgs: Tuple[Image, ...]) -> RGBDFrame:
        info = self._camera_info
        if info is None:
            raise RobotVisionError(f'no CameraInfo received yet on '
                                   f'{self.resolve_topic_name(self._params["camera_info_topic"])}')
        intrinsics = cv.camera_info_to_intrinsics(info)
        by_name = dict(zip(self._input_names, msgs))
        color = cv.image_to_rgb(by_name['color']) if 'color' in by_name else None
        depth = None
        if 'depth' in by_name:
            scale = float(self._params['depth_scale']) or None
            depth = cv.image_to_depth(by_name['depth'], scale)
            problem = depth_unit_problem(depth)
            if problem:
                self._diag.problem('depth_units', problem)
        if color is not None and depth is not None and color.shape[:2] != depth.shape:
            raise RobotVisionError(f'colour image is {color.shape[1]}x{color.shape[0]} but depth is '
                                   f'{depth.shape[1]}x{depth.shape[0]}: is the depth aligned to colour?')
        header = msgs[0].header
        return RGBDFrame(intrinsics, color=color, depth=depth, stamp=cv.stamp_to_seconds(header.stamp),
                         frame_id=header.frame_id)

    def _process(self, msgs: Tuple[Image, ...]) -> None:
        frame = self._frame(msgs)
        settings = self._pipeline.settings
        track = settings.enable_tracking
        if track and settings.fixed_frame and settings.fixed_frame != frame.frame_id:
            try:
                frame.camera_to_fixed = self._tf.lookup(settings.fixed_frame, frame.frame_id, frame.stamp,
                                                        float(self._params['tf_timeout_s']))
            except RobotVisionError as exc:
                track = False
                self._diag.problem('tf', f'tracking skipped: {exc}')
                self.get_logger().warn(f'no transform for tracking: {exc}', throttle_duration_sec=5.0)
        result = self._pipeline.process(frame, track=track)
        for warning in result.warnings:
            self._diag.problem('pipeline', warning)
        header_stamp = msgs[0].header.stamp
        for topic, msg in result_messages(result, frame.color, frame.camera_to_fixed):
            if hasattr(msg, 'header'):
                msg.header.stamp = header_stamp
            if topic == 'label_info':
                if self._labels_published:
                    continue
                self._labels_published = True
            self._outputs[topic].publish(msg)
        now = self.get_clock().now().nanoseconds * 1e-9
        self._diag.processed_frame((now - frame.stamp) * 1e3, result.timings_ms)


def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision perception_node`` (Ctrl-C or external shutdown stop it)."""
    rclpy.init(args=args)
    node = PerceptionNode()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
