"""Shared parts of the launch_testing tests: the environment a launch test runs in, and checks of the live graph.

Every launch test starts a launch file of launch/ with the real launch system and checks, from a probe node in
the test process, what a robot user relies on: the lifecycle nodes reach ``active``, every output topic of each
node is published under its documented name, type and QoS, the inputs are subscribed with the QoS the launch
arguments ask for, objects arrive from real frames, and every process exits with code 0 and no traceback when
the launch shuts down (post-shutdown checks).
"""

import ast
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Callable, Dict, List

import launch_testing.asserts
import rclpy
from lifecycle_msgs.srv import GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from vision_msgs.msg import Detection3DArray

from robot_vision.replay.bag import BagSource
from robot_vision.replay.cli import DEMO_BAG
from robot_vision.ros.detector_node import DetectorNode
from robot_vision.ros.grasp_planner_node import GraspPlannerNode
from robot_vision.ros.perception_node import PerceptionNode
from robot_vision.ros.pose_estimator_node import PoseEstimatorNode
from robot_vision.ros.topics import output_topic, resolve
from robot_vision.ros.tracker_node import TrackerNode

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_DIR = ROOT / 'launch'
#: The console scripts of the venv (robot-vision, the node executables).
BIN = Path(sys.executable).parent
#: Node name -> output topics, as robot_vision.launch.py names the nodes.
NODE_OUTPUTS = {'robot_vision': PerceptionNode.OUTPUTS, 'detector': DetectorNode.OUTPUTS,
                'pose_estimator': PoseEstimatorNode.OUTPUTS, 'grasp_planner': GraspPlannerNode.OUTPUTS,
                'tracker': TrackerNode.OUTPUTS}
#: What each ``nodes:=`` value of robot_vision.launch.py starts.
NODES = {'all_in_one': ['robot_vision'], 'separate': ['detector', 'pose_estimator', 'grasp_planner', 'tracker']}
CAMERA_TOPICS = ['/camera/color/image_raw', '/camera/aligned_depth_to_color/image_raw', '/camera/color/camera_info']

def _default_namespace() -> str:
    tree = ast.parse((LAUNCH_DIR / 'robot_vision.launch.py').read_text())
    table = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    return next(item.elts[1].value for item in table.elts if item.elts[0].value == 'namespace')


#: The namespace robot_vision.launch.py puts the nodes in by default.
DEFAULT_NAMESPACE = _default_namespace()
STARTUP_S = 90.0  # nodes import torch/open3d and configure; on a loaded 2-core machine this takes a while
_saved_environment: Dict[str, str] = {}
_runs: List[int] = []
_prefixes: List[Path] = []


def started_nodes(nodes: str) -> List[str]:
    """The node names robot_vision.launch.py starts for a ``nodes:=`` value."""
    return NODES.get(nodes) or [n.strip() for n in nodes.split(',')]


def register_checkout(prefix: Path) -> None:
    """Register this checkout in the ament index of ``prefix`` (scripts/register_ament_index.py)."""
    spec = importlib.util.spec_from_file_location('register_ament_index', ROOT / 'scripts' / 'register_ament_index.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register(prefix, ROOT)


def prepare_environment() -> int:
    """Set the environment the launch (and the probe node) inherit; return the DDS domain id.

    Its own DDS domain, local host only; this checkout registered in a temporary ament prefix in front of
    AMENT_PREFIX_PATH (so ``FindPackageShare('robot_vision')``, ``FindPackagePrefix('robot_vision')`` and
    ``Node(package='robot_vision')`` resolve to the files under test, whichever checkout set up the venv);
    offscreen MuJoCo rendering. :func:`restore_environment` undoes it.
    """
    if not _saved_environment:
        _saved_environment.update({k: os.environ.get(k, '') for k in
                                   ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'AMENT_PREFIX_PATH',
                                    'MUJOCO_GL')})
    _runs.append(1)
    domain = 1 + (os.getpid() * 7 + 101 + len(_runs)) % 200
    prefix = Path(tempfile.mkdtemp(prefix='robot_vision_launch_test_'))
    _prefixes.append(prefix)
    register_checkout(prefix)
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ['AMENT_PREFIX_PATH'] = os.pathsep.join([str(prefix), _saved_environment['AMENT_PREFIX_PATH']])
    os.environ['MUJOCO_GL'] = _saved_environment['MUJOCO_GL'] or 'egl'
    return domain


def restore_environment() -> None:
    """Undo :func:`prepare_environment` for the tests that run after this one in the same pytest process."""
    for key, value in _saved_environment.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
    _saved_environment.clear()
    while _prefixes:
        shutil.rmtree(_prefixes.pop(), ignore_errors=True)


class Probe:
    """A node in the test process on the launch's DDS domain: graph queries, lifecycle states, messages."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('launch_test_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``condition()`` holds or ``timeout`` seconds pass; return the condition."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def collect(self, msg_type: type, topic: str) -> list:
        """Subscribe (reliable, depth 10) and return the list the messages are appended to."""
        received = []
        self.node.create_subscription(msg_type, topic, received.append, 10)
        return received

    def lifecycle_state(self, node: str, timeout: float = 5.0) -> str:
        """The label of the lifecycle node's current state, from its ``get_state`` service ('' if no answer)."""
        client = self.node.create_client(GetState, f'{node}/get_state')
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return ''
            future = client.call_async(GetState.Request())
            self.spin_until(future.done, timeout)
            return future.result().current_state.label if future.done() else ''
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class LaunchChecks(unittest.TestCase):
    """Checks run while the launch is up.

    The test description's context gives ``nodes`` (node names), ``namespace`` and ``input_reliability``;
    frames come from a bag player or the simulated camera.
    """

    @classmethod
    def setUpClass(cls):
        cls.probe = Probe()
        cls.messages_by_topic = {}  # subscribed (in test_1) before the frames come, so that none is missed

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def received(self, namespace: str, name: str) -> list:
        """The Detection3DArray messages received on ``name`` ('objects' or 'tracked_objects') so far."""
        topic = resolve(namespace, name)
        if topic not in self.messages_by_topic:
            self.messages_by_topic[topic] = self.probe.collect(Detection3DArray, topic)
        return self.messages_by_topic[topic]

    def test_1_lifecycle_nodes_reach_active(self, nodes, namespace):
        self.received(namespace, 'objects')
        self.received(namespace, 'tracked_objects')
        states = {}
        deadline = time.monotonic() + STARTUP_S
        for name in nodes:
            full = resolve(namespace, name)
            while states.get(full) != 'active' and time.monotonic() < deadline:
                states[full] = self.probe.lifecycle_state(full)
                if states[full] != 'active':
                    self.probe.spin_until(lambda: False, 0.5)
        self.assertEqual(states, {resolve(namespace, name): 'active' for name in nodes})

    def test_2_documented_topics_types_and_qos(self, nodes, namespace, input_reliability):
        expected = {resolve(namespace, topic): (name, output_topic(topic)) for name in nodes
                    for topic in NODE_OUTPUTS[name]}
        self.probe.spin_until(lambda: all(self._publisher_of(t, n) for t, (n, _) in expected.items()), 30.0)
        for topic, (name, info) in sorted(expected.items()):
            with self.subTest(topic=topic):
                publisher = self._publisher_of(topic, name)
                self.assertIsNotNone(publisher, f'{topic} is not published by {name}')
                self.assertEqual(publisher.topic_type, info.msg_type)
                self.assertEqual(publisher.qos_profile.reliability, ReliabilityPolicy.RELIABLE)
                self.assertEqual(publisher.qos_profile.durability, DurabilityPolicy.TRANSIENT_LOCAL if info.latched
                                 else DurabilityPolicy.VOLATILE)
        diagnostics = self.probe.node.get_publishers_info_by_topic('/diagnostics')
        self.assertEqual({p.node_name for p in diagnostics} >= set(nodes), True, diagnostics)
        self.assertTrue(all(p.topic_type == 'diagnostic_msgs/msg/DiagnosticArray' for p in diagnostics))
        # The camera inputs: subscribed by the nodes that use them, with the reliability the launch asked for.
        want = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}[input_reliability]
        for topic in CAMERA_TOPICS:
            ours = [s for s in self.probe.node.get_subscriptions_info_by_topic(topic) if s.node_name in nodes]
            if topic.endswith('camera_info'):
                continue  # CameraInfo is kept from the latest message, outside the synchronised set
            for sub in ours:
                self.assertEqual(sub.qos_profile.reliability, want, f'{sub.node_name} on {topic}')
        readers = {s.node_name for t in CAMERA_TOPICS for s in self.probe.node.get_subscriptions_info_by_topic(t)}
        self.assertTrue(readers & set(nodes), f'no started node reads the camera: {readers}')

    def _publisher_of(self, topic: str, node: str):
        return next((p for p in self.probe.node.get_publishers_info_by_topic(topic) if p.node_name == node), None)

    def test_3_objects_arrive(self, nodes, namespace):
        assert any('objects' in NODE_OUTPUTS[name] for name in nodes), f'{nodes}: no node publishes objects'
        received = self.received(namespace, 'objects')
        self.probe.spin_until(lambda: any(len(m.detections) for m in received), STARTUP_S)
        self.assertTrue(any(len(m.detections) for m in received),
                        f'{len(received)} objects messages, none with a detection')
        self.assertTrue(all(m.header.frame_id and (m.header.stamp.sec or m.header.stamp.nanosec) for m in received))


class BagChecks(LaunchChecks):
    """LaunchChecks, and for frames from the bundled bag played by ``robot-vision play``.

    The player finishes and exits by itself, and every result carries a recorded stamp and frame of the bag
    (tracks in odom).
    """

    def test_4_results_carry_the_bags_stamps_and_frames(self, nodes, namespace, proc_output, proc_info):
        objects, tracked = self.received(namespace, 'objects'), self.received(namespace, 'tracked_objects')
        tracking = bool({'robot_vision', 'tracker'} & set(nodes))
        proc_output.assertWaitFor('published 10 messages', timeout=STARTUP_S)  # 3 RGB-D frames and /tf_static
        proc_info.assertWaitForShutdown(process='robot-vision', timeout=30)
        self.probe.spin_until(lambda: len(objects) == 3 and (not tracking or len(tracked) == 3), 15.0)
        recorded = {m.log_ns for m in BagSource(DEMO_BAG).messages() if m.topic == CAMERA_TOPICS[0]}
        stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in objects}
        # 3 frames; the latest-frame policy may drop one when two synchronised sets arrive together.
        self.assertTrue(2 <= len(objects) <= 3 and stamps <= recorded, (len(objects), stamps - recorded))
        self.assertTrue(all(len(m.detections) >= 3 and m.header.frame_id == 'kinect_rgb_optical_frame'
                            for m in objects))
        if tracking:
            self.assertEqual(len(tracked), len(objects))
            self.assertTrue(all(m.header.frame_id == 'odom' for m in tracked))  # the launch files' fixed_frame


class ShutdownChecks(unittest.TestCase):
    """Post-shutdown: every process exited with code 0, and none printed a traceback."""

    @classmethod
    def tearDownClass(cls):
        restore_environment()

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_no_traceback(self, proc_output):
        for event in proc_output:
            self.assertNotIn(b'Traceback', event.text, f'{event.process_name}: {event.text.decode(errors="replace")}')

