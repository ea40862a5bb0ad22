"""The tracker node as users run it: real executable, real DDS, camera-frame objects in, fixed-frame tracks out."""

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import lifecycle_state, spin_until, start_node, static_transform, stop
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from robot_vision.geometry import invert_transform, make_transform
from robot_vision.perception3d.box_points import points_in_box
from robot_vision.ros import conversions as cv
from robot_vision.ros.tracker_node import TrackerNode
from robot_vision.types import Objects3D

pytestmark = pytest.mark.ros

CAMERA = 'camera_color_optical_frame'
DT = 0.1
VELOCITY = np.array([0.2, 0.3, 0.0])  # of the moving object in odom, m/s
SIZES = np.array([[0.3, 0.2, 0.6], [0.4, 0.4, 0.5]])


def _rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


#: An optical frame (z forward, x right, y down) 1.2 m above odom, looking along odom x turned by 0.3 rad.
CAMERA_TO_ODOM = make_transform(_rot_z(0.3) @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
                                [0.5, 0.2, 1.2])


def _truth(k):
    """Poses in odom at frame k: a box moving at VELOCITY and a static one."""
    return np.array([make_transform(_rot_z(0.4), np.array([2.0, -0.5, 0.3]) + VELOCITY * DT * k),
                     make_transform(_rot_z(-0.2), [2.5, 0.8, 0.25])])


class _Client:
    """Publishes objects (and optionally the camera TF) and records the node's outputs."""

    def __init__(self, context):
        self.node = Node('tracker_client', context=context)
        self.objects_pub = self.node.create_publisher(Detection3DArray, 'objects', 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.tf_static = self.node.create_publisher(TFMessage, '/tf_static', latched)
        self.got = {'tracked_objects': [], 'track_markers': [], 'obstacles': []}
        for topic, msg_type in (('tracked_objects', Detection3DArray), ('track_markers', MarkerArray),
                                ('obstacles', PointCloud2)):
            self.node.create_subscription(msg_type, topic, self.got[topic].append, 10)
        self.diagnostics = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.t0 = self.node.get_clock().now().nanoseconds * 1e-9
        self.rng = np.random.default_rng(0)

    def publish_tf(self):
        self.tf_static.publish(TFMessage(transforms=[static_transform('odom', CAMERA, CAMERA_TO_ODOM)]))

    def publish_objects(self, k, frame_id=CAMERA):
        """Publish frame k's objects in the camera frame (5 mm position noise); return the stamp."""
        poses = _truth(k)
        poses[:, :3, 3] += self.rng.normal(0.0, 0.005, (2, 3))
        poses = invert_transform(CAMERA_TO_ODOM) @ poses
        objects = Objects3D(pose=poses, size=SIZES, centroid=poses[:, :3, 3], confidence=np.ones(2),
                            class_id=np.full(2, -1), detection_index=np.arange(2))
        stamp = cv.seconds_to_stamp(self.t0 + DT * k)
        self.objects_pub.publish(cv.objects_to_msg(objects, frame_id, stamp))
        return stamp

    def answered(self, stamp):
        return any(m.header.stamp == stamp for m in self.got['obstacles'])

    def spin(self, seconds, condition=lambda: False):
        return spin_until(self.executor, condition, seconds)


def test_tracks_in_odom_have_stable_ids_the_true_velocity_and_obstacles_on_their_boxes(ros_context):
    process = start_node('tracker_node')
    client = _Client(ros_context)
    client.publish_tf()
    frames = 20
    try:
        assert client.spin(60, lambda: client.objects_pub.get_subscription_count() > 0), 'never subscribed'
        answered = []
        for k in range(frames):
            stamp = client.publish_objects(k)
            answered.append(client.spin(5, lambda stamp=stamp: client.answered(stamp)))
    finally:
        log = stop(process)
    assert all(answered[3:]), log[-3000:]
    tracked = [m for m in client.got['tracked_objects'] if len(m.detections)]
    assert len(tracked) >= frames - 4  # confirmed after 3 hits
    ids = [[d.id for d in m.detections] for m in tracked]
    assert len(set(map(tuple, ids))) == 1 and len(ids[0]) == 2, ids
    last = tracked[-1]
    assert last.header.frame_id == 'odom'
    k = frames - 1
    tracks = cv.msg_to_objects(last)
    moving = int(np.argmin(np.linalg.norm(tracks.position - _truth(k)[0, :3, 3], axis=1)))
    static = 1 - moving
    assert np.linalg.norm(tracks.position[moving] - _truth(k)[0, :3, 3]) < 0.02
    assert np.linalg.norm(tracks.position[static] - _truth(k)[1, :3, 3]) < 0.02
    assert np.allclose(tracks.size, SIZES[[moving, static]], atol=0.01)
    # Velocities from the markers' arrows (tail at the track, head at track + velocity * 1 s).
    markers = next(m for m in client.got['track_markers'] if m.markers[0].header.stamp == last.header.stamp)
    assert all(m.header.frame_id == 'odom' for m in markers.markers)
    arrows = {str(m.id): m for m in markers.markers if m.action == Marker.ADD and m.type == Marker.ARROW}
    assert set(arrows) == set(ids[0])
    velocity = {i: np.subtract(*[[p.x, p.y, p.z] for p in arrows[i].points][::-1]) for i in arrows}
    moving_id, static_id = last.detections[moving].id, last.detections[static].id
    assert np.linalg.norm(velocity[moving_id] - VELOCITY) < 0.04, velocity
    assert np.linalg.norm(velocity[static_id]) < 0.04, velocity
    # The obstacle cloud lies on the tracks' box faces, in odom.
    cloud = next(m for m in client.got['obstacles'] if m.header.stamp == last.header.stamp)
    assert cloud.header.frame_id == 'odom'
    points, _ = cv.cloud_to_points(cloud)
    on_box = [points_in_box(points, tracks.pose[i], tracks.size[i], 1e-4)
              & ~points_in_box(points, tracks.pose[i], tracks.size[i], -1e-4) for i in range(2)]
    assert on_box[0].any() and on_box[1].any() and (on_box[0] | on_box[1]).all()


def test_missing_transform_is_diagnosed_and_skips_tracking(ros_context):
    process = start_node('tracker_node', '-p', 'tf_timeout_s:=0.01')
    client = _Client(ros_context)
    try:
        assert client.spin(60, lambda: client.objects_pub.get_subscription_count() > 0), 'never subscribed'
        for k in range(6):
            client.publish_objects(k)
            client.spin(0.3)

        def tf_diagnosed():
            return any(kv.key == 'tf' and CAMERA in kv.value for d in client.diagnostics for s in d.status
                       for kv in s.values)
        diagnosed = client.spin(5, tf_diagnosed)
        skipped = len(client.got['tracked_objects'])
        client.publish_tf()  # the node is still alive and tracks once the transform exists
        stamp = None
        for k in range(6, 12):
            stamp = client.publish_objects(k)
            client.spin(2, lambda stamp=stamp: client.answered(stamp))
        recovered = client.answered(stamp)
    finally:
        log = stop(process)
    assert diagnosed, log[-3000:]
    assert skipped == 0
    assert recovered, log[-3000:]
    assert 'no transform' in log


@pytest.fixture
def node(lifecycle_node):
    return lifecycle_node(TrackerNode)



def test_lifecycle_transitions(node):
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node.tracker is not None and set(node.outputs) == {'tracked_objects', 'track_markers', 'obstacles'}
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'active'
    assert node._worker.is_alive()
    assert node.count_subscribers('objects') == 1
    assert node.count_subscribers('camera/color/camera_info') == 0  # boxes only, no camera
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'inactive'
    assert node._worker is None and node.count_subscribers('objects') == 0
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS and lifecycle_state(node) == 'unconfigured'
    assert node.tracker is None and not node.outputs
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS


def test_bad_tracking_setting_fails_configuration(ros_domain):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = TrackerNode(context=context, parameter_overrides=[Parameter('autostart', value=False),
                                                             Parameter('tracking.confirm_hits', value=0)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert lifecycle_state(node) == 'unconfigured'
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
