"""Simulated RGB-D camera node: MuJoCo tabletop scenes published as a Gazebo camera bridged by ros_gz_bridge."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import rclpy
from geometry_msgs.msg import TransformStamped, Vector3
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo

from robot_vision.errors import ConfigError, RobotVisionError
from robot_vision.ros import conversions as cv
from robot_vision.ros.bag_player import DATA_QOS, LATCHED_QOS
from robot_vision.ros.diagnostics import ERROR, WARN, NodeDiagnostics, RateMeter
from robot_vision.ros.params import unknown_overrides
from robot_vision.sim import CLASS_NAMES, DepthNoise, SceneSettings, SimScene, generate_scene
from robot_vision.sim.noise import NOISE_MODELS, range_codes
from robot_vision.sim.scene import CLUTTER_LEVELS

#: Every parameter: name -> (default, description, (min, max) or None).
PARAMETERS: Dict[str, Tuple[Any, str, Optional[Tuple[float, float]]]] = {
    'rate_hz': (10.0, 'frames per second; simulated time advances 1/rate_hz per frame, so when rendering is '
                      'slower the node publishes at the achievable rate and simulated time runs slower than '
                      'wall time (reported in the log and on /diagnostics)', (0.1, 60.0)),
    'seed': (0, 'scene seed: scene k of a run (see new_scene_every_s) is generate_scene(seed + k)', (0, 2**31 - 1)),
    'clutter': ('clutter', f'clutter level: one of {sorted(CLUTTER_LEVELS)} (isolated: 1 object, clutter: 4-8)',
                None),
    'num_objects': (0, 'objects per scene; 0 = drawn from the clutter level', (0, 12)),
    'moving_objects': (0, 'objects that slide over the table at a scripted velocity (0.02-0.08 m/s)', (0, 12)),
    'noise': ('realsense_d435', f'depth noise model: one of {list(NOISE_MODELS)}', None),
    'width': (640, 'image width in pixels', (16, 4096)),
    'height': (480, 'image height in pixels', (16, 4096)),
    'fovy_deg': (49.1, 'vertical field of view in degrees (49.1: fx = fy = 525 px at 480 rows)', (5.0, 150.0)),
    'frame_id': ('camera_color_optical_frame', 'optical frame of the images (x right, y down, z forward)', None),
    'world_frame': ('world', 'fixed frame of the scene: z up, table top centred at the origin, 0.75 m high', None),
    'new_scene_every_s': (0.0, 'simulated seconds between new random scenes; 0 = keep one scene', (0.0, 3600.0)),
    'publish_clock': (True, 'publish the simulated time on /clock (run the other nodes with use_sim_time:=true)',
                      None),
}

#: Parameters that are fields of SceneSettings of the same name.
_SCENE_FIELDS = ('clutter', 'num_objects', 'moving_objects', 'width', 'height', 'fovy_deg')


def _descriptor(name: str) -> ParameterDescriptor:
    default, text, limits = PARAMETERS[name]
    descriptor = ParameterDescriptor(name=name, description=text)
    if limits is not None and isinstance(default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(limits[0]),
                                                              to_value=float(limits[1]), step=0.0)]
    elif limits is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(limits[0]), to_value=int(limits[1]), step=0)]
    return descriptor


@dataclass(frozen=True)
class SimCameraSettings:
    """The node's parameters, validated: a ConfigError names the parameter, the expected and the actual value."""

    rate_hz: float = PARAMETERS['rate_hz'][0]
    seed: int = PARAMETERS['seed'][0]
    clutter: str = PARAMETERS['clutter'][0]
    num_objects: int = PARAMETERS['num_objects'][0]
    moving_objects: int = PARAMETERS['moving_objects'][0]
    noise: str = PARAMETERS['noise'][0]
    width: int = PARAMETERS['width'][0]
    height: int = PARAMETERS['height'][0]
    fovy_deg: float = PARAMETERS['fovy_deg'][0]
    frame_id: str = PARAMETERS['frame_id'][0]
    world_frame: str = PARAMETERS['world_frame'][0]
    new_scene_every_s: float = PARAMETERS['new_scene_every_s'][0]
    publish_clock: bool = PARAMETERS['publish_clock'][0]

    def __post_init__(self) -> None:
        """Check ranges, names and that the scene and noise settings they make are valid."""
        for name, (_, _, limits) in PARAMETERS.items():
            value = getattr(self, name)
            if limits is not None and not (limits[0] <= value <= limits[1]):
                raise ConfigError(f'parameter {name!r}: expected {limits[0]} to {limits[1]}, got {value}')
        if self.noise not in NOISE_MODELS:
            raise ConfigError(f'parameter \'noise\': expected one of {list(NOISE_MODELS)}, got {self.noise!r}')
        for name in ('frame_id', 'world_frame'):
            value = getattr(self, name)
            if not value or value.startswith('/') or value != value.strip():
                raise ConfigError(f'parameter {name!r}: expected a TF frame name (non-empty, no leading slash '
                                  f'or spaces), got {value!r}')
        if self.frame_id == self.world_frame:
            raise ConfigError(f"parameters 'frame_id' and 'world_frame': expected two different frames, both "
                              f'are {self.frame_id!r}')
        if self.clutter not in CLUTTER_LEVELS:
            raise ConfigError(f"parameter 'clutter': expected one of {sorted(CLUTTER_LEVELS)}, got {self.clutter!r}")
        try:
            self.scene_settings()
        except ConfigError as exc:   # SceneSettings names its field, which is the parameter of the same name
            raise ConfigError(f'scene parameters: {exc}') from None

    def scene_settings(self) -> SceneSettings:
        """The SceneSettings of every scene this node generates."""
        return SceneSettings(**{name: getattr(self, name) for name in _SCENE_FIELDS})

    def depth_noise(self, scene_seed: int) -> DepthNoise:
        """The depth noise of the scene drawn with ``scene_seed``."""
        return DepthNoise(self.noise, seed=scene_seed)


def _transform(parent: str, child: str, child_to_parent, stamp) -> TransformStamped:
    pose = cv.matrix_to_pose(child_to_parent)
    msg = TransformStamped(header=cv.make_header(parent, stamp), child_frame_id=child)
    msg.transform.translation = Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z)
    msg.transform.rotation = pose.orientation
    return msg


class SimCameraNode(Node):
    """Stand-in for a Gazebo RGB-D camera bridged by ros_gz_bridge, rendering MuJoCo scenes with ground truth.

    Published (relative names resolve in the node's namespace; images, CameraInfo, /clock and the
    ground truth use reliable keep-last-10 QoS, as ros_gz_bridge does, which matches best-effort
    and reliable subscribers alike):
      ``camera/color/image_raw`` (sensor_msgs/Image rgb8), ``camera/aligned_depth_to_color/image_raw``
      and ``camera/depth/image_raw`` (the same sensor_msgs/Image 32FC1 metres: NaN for sensor dropouts,
      +inf where nothing was hit or beyond the sensor's range, -inf nearer than its minimum range, as
      Gazebo's depth camera gives), ``camera/color/camera_info`` (sensor_msgs/CameraInfo, no
      distortion), ``/clock`` (rosgraph_msgs/Clock, simulated time, with ``publish_clock``),
      ``/tf_static`` (transient local: ``frame_id`` in ``world_frame``, sent again on each new scene)
      when the camera stays put, else ``/tf`` stamped with every frame (``new_scene_every_s`` > 0);
      ground truth ``sim/ground_truth/objects`` (vision_msgs/Detection3DArray in ``world_frame``:
      every object, id = object index, class id = index in robot_vision.sim.CLASS_NAMES as a
      string, pose = box centre in the Objects3D convention, box size), ``sim/ground_truth/objects_camera``
      (the same in ``frame_id``), ``sim/ground_truth/detections`` (vision_msgs/Detection2DArray: the
      visible objects' 2D boxes from the exact masks, id = object index), ``sim/ground_truth/label_info``
      (vision_msgs/LabelInfo of CLASS_NAMES, transient local), ``/diagnostics`` (1 Hz: publish rate,
      render and publish times, real-time factor). Every frame's messages carry the same stamp.
    Subscribed: none. Parameters: :data:`PARAMETERS` (ranges in the descriptors); changes at run time
      are validated (a rejected change leaves the node running with its old values) and rebuild the
      scene, except ``rate_hz`` and ``publish_clock``, which apply at once.
    Timing: one frame per timer tick (steady clock); simulated time advances 1/rate_hz per frame.
    """

    def __init__(self, node_name: str = 'sim_camera', **kwargs: Any) -> None:
        """Declare and read the parameters (ConfigError when invalid), build the first scene, start the timer."""
        super().__init__(node_name, **kwargs)
        for name, (default, _, _) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(name))
        problems = unknown_overrides(self)
        if problems:
            raise ConfigError('; '.join(problems))
        self._settings = SimCameraSettings(**self._parameter_values())
        self._pending: Optional[SimCameraSettings] = None
        self._pub: Dict[str, Any] = {}
        for name, topic in (('color', 'camera/color/image_raw'), ('depth', 'camera/depth/image_raw'),
                            ('aligned_depth', 'camera/aligned_depth_to_color/image_raw')):
            self._pub[name] = self.create_publisher(Image, topic, DATA_QOS)
        self._pub['camera_info'] = self.create_publisher(CameraInfo, 'camera/color/camera_info', DATA_QOS)
        self._pub['clock'] = self.create_publisher(Clock, '/clock', DATA_QOS)
        self._pub['tf'] = self.create_publisher(TFMessage, '/tf', DATA_QOS)
        self._pub['tf_static'] = self.create_publisher(TFMessage, '/tf_static', LATCHED_QOS)
        self._pub['objects'] = self.create_publisher(Detection3DArray, 'sim/ground_truth/objects', DATA_QOS)
        self._pub['objects_camera'] = self.create_publisher(Detection3DArray, 'sim/ground_truth/objects_camera',
                                                            DATA_QOS)
        self._pub['detections'] = self.create_publisher(Detection2DArray, 'sim/ground_truth/detections', DATA_QOS)
        label_pub = self.create_publisher(LabelInfo, 'sim/ground_truth/label_info', LATCHED_QOS)
        label_pub.publish(cv.label_info_msg(CLASS_NAMES))
        self._diag = NodeDiagnostics(self, {}, name='simulated camera')
        self._diag.rates['published'] = RateMeter()
        self._diag_timer = self.create_timer(1.0, self._diag.publish)
        self._scene: Optional[SimScene] = None
        self._scene_index = 0
        self._time_base = 0.0
        self._last_stamp = 0.0
        self._rate_reported = False
        self._started: Optional[float] = None
        self._new_scene()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._steady = RclpyClock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(1.0 / self._settings.rate_hz, self._tick, clock=self._steady)

    # ------------------------------------------------------------------ parameters
    def _parameter_values(self) -> Dict[str, Any]:
        return {name: self.get_parameter(name).value for name in PARAMETERS}

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        values = self._parameter_values()
        values.update({p.name: p.value for p in params if p.name in values})
        try:
            self._pending = SimCameraSettings(**values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_pending(self) -> None:
        new, self._pending = self._pending, None
        old, self._settings = self._settings, new
        if new.rate_hz != old.rate_hz:
            self._timer.timer_period_ns = int(round(1e9 / new.rate_hz))
            self._rate_reported, self._started = False, None
        quick = {'rate_hz', 'publish_clock'}
        if any(getattr(new, f.name) != getattr(old, f.name) for f in dataclasses.fields(new) if f.name not in quick):
            self._scene_index = 0
            self._new_scene()
        self.get_logger().info(f'parameters changed: {new}')

    # ------------------------------------------------------------------ scenes
    def _new_scene(self) -> None:
        """Replace the scene by scene ``_scene_index`` of the current settings; simulated time keeps running."""
        s = self._settings
        seed = s.seed + self._scene_index
        started = time.perf_counter()
        spec = generate_scene(seed, s.scene_settings())
        scene = SimScene(spec, s.depth_noise(seed))
        if self._scene is not None:
            self._scene.close()
        self._scene = scene
        self._time_base = self._last_stamp
        for note in spec.notes:
            self.get_logger().warn(f'scene {seed}: {note}')
        self.get_logger().info(f'scene seed {seed}: {len(spec.objects)} objects '
                               f'({", ".join(o.class_name for o in spec.objects)}), {s.width}x{s.height}, '
                               f'noise {s.noise}, built in {time.perf_counter() - started:.2f} s')
        if s.new_scene_every_s == 0:
            pose = scene.camera.pose_world(scene.data)
            self._pub['tf_static'].publish(TFMessage(transforms=[
                _transform(s.world_frame, s.frame_id, pose, self._last_stamp)]))

    # ------------------------------------------------------------------ frames
    def _tick(self) -> None:
        try:
            if self._pending is not None:
                self._apply_pending()
            self._publish_frame()
        except RobotVisionError as exc:
            self._diag.errors += 1
            self._diag.problem('frame', str(exc), ERROR)
            self.get_logger().error(f'frame skipped: {exc}', throttle_duration_sec=5.0)
        except Exception:
            if self.context.ok():
                raise
            # Ctrl-C / SIGTERM shut the context down while this frame was being published: drop it.

    def _publish_frame(self) -> None:
        s = self._settings
        if s.new_scene_every_s > 0 and self._scene.data.time >= s.new_scene_every_s - 1e-9:
            self._scene_index += 1
            self._new_scene()
        started = time.perf_counter()
        self._scene.step(1.0 / s.rate_hz)
        frame, truth = self._scene.render()
        rendered = time.perf_counter()
        stamp_s = self._time_base + frame.stamp
        self._last_stamp = stamp_s
        stamp = cv.seconds_to_stamp(stamp_s)
        if s.publish_clock:
            self._pub['clock'].publish(Clock(clock=stamp))
        if s.new_scene_every_s > 0:
            self._pub['tf'].publish(TFMessage(transforms=[
                _transform(s.world_frame, s.frame_id, frame.camera_to_fixed, stamp)]))
        depth = cv.numpy_to_image(range_codes(frame.depth, truth.depth_clean, self._scene.noise), '32FC1',
                                  s.frame_id, stamp)
        self._pub['camera_info'].publish(cv.intrinsics_to_camera_info(frame.intrinsics, s.frame_id, stamp))
        self._pub['color'].publish(cv.numpy_to_image(frame.color, 'rgb8', s.frame_id, stamp))
        self._pub['aligned_depth'].publish(depth)
        self._pub['depth'].publish(depth)
        ids = [str(i) for i in truth.object_id]
        self._pub['objects'].publish(cv.objects_to_msg(truth.objects('world'), s.world_frame, stamp, ids))
        self._pub['objects_camera'].publish(cv.objects_to_msg(truth.objects('camera'), s.frame_id, stamp, ids))
        self._pub['detections'].publish(cv.detections_to_msg(truth.detections(), s.frame_id, stamp))
        published = time.perf_counter()
        self._diag.rates['published'].tick()
        self._diag.processed_frame((published - started) * 1e3, {'render': (rendered - started) * 1e3,
                                                                  'publish': (published - rendered) * 1e3})
        self._check_rate()

    def _check_rate(self) -> None:
        """Report the achieved rate once after a few seconds, and keep warning while it is below rate_hz."""
        now = time.monotonic()
        self._started = now if self._started is None else self._started
        if now - self._started < 3.0:
            return
        s = self._settings
        achieved = self._diag.rates['published'].rate(now)
        render = self._diag.stage_ms['render']
        text = (f'publishing {s.width}x{s.height} at {achieved:.1f} Hz (rate_hz {s.rate_hz:g}): render '
                f'{sorted(render)[len(render) // 2]:.0f} ms per frame, real-time factor {achieved / s.rate_hz:.2f}')
        if achieved < 0.9 * s.rate_hz:
            self._diag.problem('rate', text + ': rendering is slower than rate_hz', WARN)
            self.get_logger().warn(text + '; simulated time runs slower than wall time (lower rate_hz or the '
                                          'image size to keep up)', throttle_duration_sec=60.0)
        elif not self._rate_reported:
            self.get_logger().info(text)
        self._rate_reported = True

    def destroy_node(self) -> None:
        """Free the renderer, then destroy the node."""
        if self._scene is not None:
            self._scene.close()
            self._scene = None
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision sim_camera_node``; exits with status 2 when it cannot start."""
    rclpy.init(args=args)
    try:
        node = SimCameraNode()
    except (RobotVisionError, ParameterException) as exc:
        rclpy.logging.get_logger('sim_camera').fatal(f'cannot start: {exc}')
        rclpy.try_shutdown()
        raise SystemExit(2) from None
    # the nodes' own spin: a callback that fails once Ctrl-C has shut the context down (a timer's
    # publish: "publisher's context is invalid") ends the spin quietly instead of with a traceback
    from robot_vision.ros.node_base import spin
    spin(node, quiet_exit=True)
