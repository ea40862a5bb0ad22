"""The simulated RGB-D camera node as users run it: a real executable over real DDS, checked against ground truth."""

import os
import subprocess

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import call_service, executable, spin_until, start_node, stop
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo

from robot_vision.geometry import invert_transform
from robot_vision.ros import conversions as cv
from robot_vision.ros.compat import TransformSource
from robot_vision.sim import CLASS_NAMES

pytestmark = pytest.mark.ros

CAMERA_FRAME = 'camera_color_optical_frame'
#: Reliable subscriptions, so that no message is lost to the checks (best-effort ones match the node's reliable
#: publishers too: the perception node in the end-to-end test subscribes best effort).
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start_camera(*parameters: str) -> subprocess.Popen:
    """Start sim_camera_node with ``-p`` ``parameters`` and no parameter file.

    config/robot_vision.yaml is a ``/**`` file for the perception nodes; the camera node would
    reject its parameters as unknown (as it should: the launch file does not give it that file).
    """
    args = [str(executable('sim_camera_node')), '--ros-args']
    for parameter in parameters:
        args += ['-p', parameter]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


class Listener:
    """Subscribes to every topic of the simulated camera and keeps what arrives, by topic."""

    TOPICS = (('camera/color/image_raw', Image), ('camera/aligned_depth_to_color/image_raw', Image),
              ('camera/depth/image_raw', Image), ('camera/color/camera_info', CameraInfo), ('/clock', Clock),
              ('sim/ground_truth/objects', Detection3DArray), ('sim/ground_truth/objects_camera', Detection3DArray),
              ('sim/ground_truth/detections', Detection2DArray), ('/tf', TFMessage), ('/diagnostics', DiagnosticArray))

    def __init__(self, context, extra=()):
        self.node = Node('sim_camera_listener', context=context)
        self.got = {}
        for topic, msg_type in self.TOPICS + tuple(extra):
            self.node.create_subscription(msg_type, topic, lambda m, t=topic: self.got.setdefault(t, []).append(m),
                                          RELIABLE)
        self.node.create_subscription(LabelInfo, 'sim/ground_truth/label_info',
                                      lambda m: self.got.setdefault('label_info', []).append(m), LATCHED)
        self.tf = TransformSource(self.node, backend='builtin')
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def count(self, topic):
        """Number of messages received on ``topic``."""
        return len(self.got.get(topic, []))

    def spin_until(self, condition, timeout):
        """Spin until ``condition()`` holds or ``timeout`` seconds pass; return the condition."""
        return spin_until(self.executor, condition, timeout)

    def by_stamp(self, topic):
        """{stamp in ns: message} of ``topic``."""
        return {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec: m for m in self.got.get(topic, [])}


def test_topics_ground_truth_and_tf(ros_context):
    process = start_camera('rate_hz:=5.0', 'width:=320', 'height:=240', 'num_objects:=4', 'seed:=3')
    listener = Listener(ros_context)
    try:
        # 22 frames at 5 Hz span > 4 s: the node has logged its rate report (due 3 s after the first frame).
        done = listener.spin_until(lambda: min(listener.count(t) for t, _ in Listener.TOPICS if t != '/tf') >= 3
                                   and listener.count('label_info') and listener.count('/clock') >= 22, 60)
    finally:
        log = stop(process)
    assert done, f'received {sorted((t, len(m)) for t, m in listener.got.items())}\n{log[-3000:]}'
    got = listener.got
    info = got['camera/color/camera_info'][-1]
    assert (info.width, info.height) == (320, 240) and info.header.frame_id == CAMERA_FRAME
    fy = 0.5 * 240 / np.tan(np.deg2rad(49.1) / 2)
    assert np.allclose([info.k[0], info.k[4], info.k[2], info.k[5]], [fy, fy, 159.5, 119.5])
    color = got['camera/color/image_raw'][-1]
    assert (color.encoding, color.width, color.height) == ('rgb8', 320, 240)
    assert cv.image_to_rgb(color).std() > 10, 'the colour image is blank'
    aligned = listener.by_stamp('camera/aligned_depth_to_color/image_raw')
    plain = listener.by_stamp('camera/depth/image_raw')
    truth = {t: listener.by_stamp(f'sim/ground_truth/{t}') for t in ('objects', 'objects_camera', 'detections')}
    stamp = max(set(aligned).intersection(plain, *truth.values()))
    depth_msg = aligned[stamp]
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ('32FC1', 320, 240)
    assert bytes(plain[stamp].data) == bytes(depth_msg.data)
    raw = cv.image_to_numpy(depth_msg)
    finite = raw[np.isfinite(raw)]
    assert finite.size > 0.8 * raw.size and 0.2 < finite.min() and finite.max() < 4.0, (finite.min(), finite.max())
    assert not np.isneginf(raw).any()   # realsense_d435 sees from 0.2 m; the camera is >= 0.5 m from the table
    # /clock advances, and every frame is stamped with a published simulated time.
    clocks = [cv.stamp_to_seconds(m.clock) for m in got['/clock']]
    assert np.all(np.diff(clocks) > 0) and clocks[-1] > clocks[0]
    # (a subscriber may miss a /clock message under load; the frames' stamps are still published times)
    published = {m.clock.sec * 10**9 + m.clock.nanosec for m in got['/clock']}
    assert len(set(aligned) & published) >= 0.8 * len(aligned)
    # Ground truth: the configured number of objects, class ids of CLASS_NAMES, latched label map.
    labels = cv.label_info_to_names(got['label_info'][0])
    assert labels == dict(enumerate(CLASS_NAMES))
    world, camera = truth['objects'][stamp], truth['objects_camera'][stamp]
    assert world.header.frame_id == 'world' and camera.header.frame_id == CAMERA_FRAME
    assert [d.id for d in world.detections] == [d.id for d in camera.detections] == ['0', '1', '2', '3']
    assert all(int(d.results[0].hypothesis.class_id) in labels for d in world.detections)
    # 2D ground truth: boxes of visible objects, inside the image, ids among the objects'.
    boxes = truth['detections'][stamp]
    xyxy = cv.msg_to_detections(boxes).xyxy
    assert 1 <= len(xyxy) <= 4 and {d.id for d in boxes.detections} <= {'0', '1', '2', '3'}
    assert (xyxy[:, :2] >= 0).all() and (xyxy[:, 2] <= 320).all() and (xyxy[:, 3] <= 240).all()
    assert (xyxy[:, 2:] > xyxy[:, :2]).all()
    # TF: the camera in the world maps the world ground truth onto the camera-frame ground truth.
    camera_to_world = listener.tf.lookup('world', CAMERA_FRAME, stamp * 1e-9)
    pose_world = np.stack([cv.pose_to_matrix(d.bbox.center) for d in world.detections])
    pose_camera = np.stack([cv.pose_to_matrix(d.bbox.center) for d in camera.detections])
    assert np.allclose(invert_transform(camera_to_world)[None] @ pose_world, pose_camera, atol=1e-6)
    assert (pose_camera[:, 2, 3] > 0.2).all(), 'objects behind or at the camera'
    # Health: the achieved rate on /diagnostics and in the log.
    keys = {kv.key for d in got['/diagnostics'] for s in d.status for kv in s.values}
    assert {'published rate (Hz)', 'stage render median (ms)'} <= keys
    assert 'publishing 320x240 at' in log and 'Traceback' not in log, log[-3000:]


def test_new_scenes_and_parameter_changes(ros_context):
    """new_scene_every_s draws new scenes with the camera pose on /tf; a bad change is refused, the node runs on."""
    process = start_camera('rate_hz:=5.0', 'width:=160', 'height:=120', 'new_scene_every_s:=0.4', 'num_objects:=2')
    listener = Listener(ros_context)
    client = listener.node.create_client(SetParameters, '/sim_camera/set_parameters')

    def set_parameter(name, value, kind):
        field = {ParameterType.PARAMETER_STRING: 'string_value', ParameterType.PARAMETER_INTEGER: 'integer_value'}
        request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=ParameterValue(
            type=kind, **{field[kind]: value}))])
        return call_service(listener.executor, client, request, resend_s=5.0).results[0]  # the same value twice

    def camera_positions():
        return {tuple(np.round([t.transform.translation.x, t.transform.translation.y, t.transform.translation.z], 6))
                for m in listener.got.get('/tf', []) for t in m.transforms if t.child_frame_id == CAMERA_FRAME}
    try:
        scenes = listener.spin_until(lambda: len(camera_positions()) >= 3, 60)
        assert listener.spin_until(lambda: client.service_is_ready(), 20)
        refused = set_parameter('noise', 'kinnect', ParameterType.PARAMETER_STRING)
        out_of_range = set_parameter('num_objects', 99, ParameterType.PARAMETER_INTEGER)
        accepted = set_parameter('num_objects', 3, ParameterType.PARAMETER_INTEGER)
        before = listener.count('sim/ground_truth/objects')
        running = listener.spin_until(lambda: listener.count('sim/ground_truth/objects') >= before + 3, 30)
    finally:
        log = stop(process)
    assert scenes, f'camera positions on /tf: {camera_positions()}\n{log[-3000:]}'
    clocks = [cv.stamp_to_seconds(m.clock) for m in listener.got['/clock']]
    assert np.all(np.diff(clocks) > 0), 'simulated time must keep increasing over new scenes'
    assert not refused.successful and "parameter 'noise'" in refused.reason
    assert not out_of_range.successful and 'num_objects' in out_of_range.reason
    assert accepted.successful and running, log[-3000:]
    assert len(listener.got['sim/ground_truth/objects'][-1].detections) == 3


@pytest.mark.parametrize('argument, message', [
    ('noise:=kinnect', "parameter 'noise': expected one of ['none', 'kinect', 'realsense_d435', "
                       "'registered_sparse'], got 'kinnect'"),
    ('frame_id:=world', "parameters 'frame_id' and 'world_frame': expected two different frames"),
    ('clutter:=heavy', "parameter 'clutter'"),
    ('num_objects:=20', 'Parameter num_objects out of range'),
    ('rate_hx:=5.0', "unknown parameter 'rate_hx' (did you mean 'rate_hz'?)"),
], ids=['noise', 'frames', 'clutter', 'range', 'typo'])
def test_invalid_parameters_stop_the_node_with_the_reason(ros_domain, argument, message):
    process = start_camera(argument)
    try:
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            stop(process)
    assert process.returncode == 2 and message in out, out


def test_perception_node_finds_the_ground_truth_objects(ros_context):
    """sim_camera_node -> perception_node (sim time, fixed frame world): objects within 2 cm of the ground truth."""
    camera = start_camera('rate_hz:=2.0', 'num_objects:=4', 'seed:=4')
    perception = start_node('perception_node', '-p', 'use_sim_time:=true', '-p', 'fixed_frame:=world')
    listener = Listener(ros_context, extra=(('objects', Detection3DArray), ('tracked_objects', Detection3DArray)))

    def matched_frames():
        """(ground-truth objects, ground-truth 2D boxes, perception objects) of the same frames."""
        truth = listener.by_stamp('sim/ground_truth/objects_camera')
        boxes = listener.by_stamp('sim/ground_truth/detections')
        return [(truth[s], boxes[s], m) for s, m in listener.by_stamp('objects').items() if s in truth and s in boxes]
    try:
        done = listener.spin_until(lambda: len(matched_frames()) >= 2 and listener.count('tracked_objects'), 90)
    finally:
        perception_log, camera_log = stop(perception), stop(camera)
        log = perception_log + camera_log
    assert done, f'received {sorted((t, len(m)) for t, m in listener.got.items())}\n{log[-4000:]}'
    truth, boxes, found = matched_frames()[-1]
    assert found.header.frame_id == CAMERA_FRAME
    visible = {d.id for d in boxes.detections}
    expected = np.array([cv.pose_to_matrix(d.bbox.center)[:3, 3] for d in truth.detections if d.id in visible])
    centres = np.array([cv.pose_to_matrix(d.bbox.center)[:3, 3] for d in found.detections])
    assert len(expected) >= 3 and len(centres), (len(expected), len(centres))
    errors = np.linalg.norm(expected[:, None] - centres[None], axis=2).min(axis=1)
    assert (errors < 0.02).sum() >= 0.75 * len(expected), f'centre errors (m): {np.round(errors, 4)}'
    # Tracks are kept in the world frame through the node's TF.
    assert listener.got['tracked_objects'][-1].header.frame_id == 'world'
    assert 'Traceback' not in camera_log, camera_log[-3000:]
