"""The perception node as a process survives bad requests and stops cleanly: real executable, real DDS services."""

import contextlib
import os
import signal
import subprocess

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import CONFIG, FeedNode, call_service, milk_frame, spin_until, start_node
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy

pytestmark = pytest.mark.ros

#: SIGINT stops per state in the test (the issue's 50 in a row: ROBOT_VISION_STOP_REPEATS=50).
STOP_REPEATS = int(os.environ.get('ROBOT_VISION_STOP_REPEATS', '3'))


class Client:
    """Lifecycle and parameter service clients of the node 'robot_vision', spun in the test."""

    def __init__(self, context):
        self.node = Node('fault_client', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.change = self.node.create_client(ChangeState, 'robot_vision/change_state')
        self.get = self.node.create_client(GetState, 'robot_vision/get_state')
        self.set = self.node.create_client(SetParameters, 'robot_vision/set_parameters')

    def call(self, client, request, timeout=20.0, resend_s=None):
        return call_service(self.executor, client, request, timeout, resend_s)

    def state(self) -> str:
        return self.call(self.get, GetState.Request(), timeout=40.0, resend_s=5.0).current_state.label

    def transition(self, transition_id: int = 0, label: str = '') -> bool:
        return self.call(self.change, ChangeState.Request(transition=Transition(id=transition_id, label=label))).success

    def set_parameter(self, name, value):
        msg = Parameter(name, value=value).to_parameter_msg()
        return self.call(self.set, SetParameters.Request(parameters=[ParameterMsg(name=msg.name, value=msg.value)]))\
            .results[0]

    def close(self):
        self.node.destroy_node()


@contextlib.contextmanager
def running(ros_context, *arguments, config=CONFIG):
    """Start perception_node with ``arguments``; yield (process, Client); kill the node if it still runs."""
    process = start_node('perception_node', *arguments, config=config)
    client = Client(ros_context)
    try:
        yield process, client
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.communicate()


def _interrupt(process: subprocess.Popen, timeout: float = 30.0):
    """SIGINT the node; return (exit code, log)."""
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return None, out
    return process.returncode, out


#: (state to reach first, transition id that state lacks): the 9 kinds of invalid request by id.
INVALID_BY_ID = [('unconfigured', Transition.TRANSITION_ACTIVATE), ('unconfigured', Transition.TRANSITION_DEACTIVATE),
                 ('unconfigured', Transition.TRANSITION_CLEANUP), ('unconfigured', 99),
                 ('inactive', Transition.TRANSITION_CONFIGURE), ('inactive', Transition.TRANSITION_DEACTIVATE),
                 ('active', Transition.TRANSITION_CONFIGURE), ('active', Transition.TRANSITION_ACTIVATE),
                 ('finalized', Transition.TRANSITION_CONFIGURE)]
#: The valid transition (label) that leads from each state to the next in INVALID_BY_ID.
NEXT = {'unconfigured': 'configure', 'inactive': 'activate', 'active': 'shutdown'}


def test_invalid_transitions_by_id_are_refused_and_the_node_keeps_running(ros_context):
    with running(ros_context, '-p', 'autostart:=false', '-p', 'grasp_processes:=0') as (process, client):
        state = client.state()
        refused = []
        for wanted, transition_id in INVALID_BY_ID:
            if state != wanted:
                assert client.transition(label=NEXT[state])
                state = client.state()
                assert state == wanted
            refused.append(not client.transition(transition_id))
            assert process.poll() is None, 'the node died'
            assert client.state() == wanted
        assert refused == [True] * len(INVALID_BY_ID)
        code, log = _interrupt(process)
    assert code == 0 and 'Traceback' not in log, log[-3000:]
    assert 'lifecycle transition id 99 refused: the node is unconfigured' in log


def test_parameter_service_refuses_invalid_values_and_int_for_float_starts(ros_context, tmp_path):
    config = tmp_path / 'int_for_float.yaml'
    text = CONFIG.read_text()
    assert 'max_depth: 2.0' in text
    config.write_text(text.replace('max_depth: 2.0', 'max_depth: 2'))  # an integer for a float, in YAML
    with running(ros_context, '-p', 'autostart:=true', '-p', 'grasp_processes:=0', '-p', 'tf_timeout_s:=1',
                 config=config) as (process, client):  # and an integer with -p
        assert spin_until(client.executor, lambda: client.state() == 'active', 60.0)
        bad = client.set_parameter('mode', 'stereo')
        assert not bad.successful and "mode: expected one of ['rgbd', 'depth', 'color'], got 'stereo'" in bad.reason
        typo = client.set_parameter('segmentation.max_deptj', 1.0)
        assert not typo.successful and "did you mean 'segmentation.max_depth'" in typo.reason
        assert client.set_parameter('segmentation.max_depth', 3).successful  # an integer, live
        later = client.set_parameter('grasp_processes', 1)
        assert not later.successful and 'needs reconfigure' in later.reason
        assert process.poll() is None
        code, log = _interrupt(process)
    assert code == 0 and 'Traceback' not in log and 'InvalidParameterTypeException' not in log, log[-3000:]


def test_bad_input_depth_fails_configuration_with_one_clear_line(ros_context):
    with running(ros_context, '-p', 'input_depth:=-5', '-p', 'grasp_processes:=0') as (process, client):
        assert client.state() in ('unconfigured', 'configuring')
        code, log = _interrupt(process)
    assert 'input_depth: expected an integer from 1 to 10000, got -5' in log, log[-3000:]
    assert 'invalid allocator' not in log and code == 0


def _stop_in_state(ros_context, state: str, feed=None):
    extra = ('-p', 'autostart:=false') if state in ('unconfigured', 'inactive') else ()
    with running(ros_context, *extra, '-p', 'input_reliability:=reliable') as (process, client):
        if state == 'inactive':
            assert client.transition(label='configure')
        assert spin_until(client.executor, lambda: client.state() == ('inactive' if state == 'inactive' else
                                                                      'unconfigured' if state == 'unconfigured'
                                                                      else 'active'), 60.0)
        if feed is not None:  # under load: frames arrive until the signal
            for _ in range(15):
                feed.publish()
                spin_until(client.executor, lambda: False, 0.1)
        return _interrupt(process)


@pytest.mark.parametrize('state', ['unconfigured', 'inactive', 'active idle', 'active under load'])
def test_sigint_stops_the_node_cleanly_in_every_state(ros_context, shared_data, state):
    feed = None
    if state == 'active under load':
        feed = FeedNode(ros_context, milk_frame(shared_data), reliability=ReliabilityPolicy.RELIABLE)
    for attempt in range(STOP_REPEATS):
        code, log = _stop_in_state(ros_context, state, feed)
        assert code == 0, f'stop {attempt + 1} in state {state}: exit code {code}\n{log[-3000:]}'
        assert 'Traceback' not in log and 'RCLError' not in log, log[-3000:]
    if feed is not None:
        feed.node.destroy_node()


class DiagnosticsListener:
    """Keeps the robot_vision node's latest /diagnostics values ({key: value})."""

    def __init__(self, client: Client):
        self.values = {}
        client.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 10)

    def _on_array(self, msg):
        for status in msg.status:
            if 'robot_vision' in status.name:
                self.values = {kv.key: kv.value for kv in status.values}


def test_inputs_that_arrive_but_do_not_pair_are_diagnosed_with_the_offset(ros_context, shared_data):
    feed = FeedNode(ros_context, milk_frame(shared_data), reliability=ReliabilityPolicy.RELIABLE)
    with running(ros_context, '-p', 'input_reliability:=reliable', '-p', 'grasp_processes:=0',
                 '-p', 'input_timeout_s:=1.0') as (process, client):
        client.executor.add_node(feed.node)
        listener = DiagnosticsListener(client)
        assert feed.wait_for_nodes(client.executor, 1, ('camera/color/image_raw',))

        def fed_and_diagnosed():
            feed.publish(depth_offset_s=0.15)
            spin_until(client.executor, lambda: False, 0.3)
            return 'do not pair' in listener.values.get('sync', '')
        assert spin_until(client.executor, fed_and_diagnosed, 60.0), listener.values
        text = listener.values['sync']
        assert 'latest stamps differ by 150 ms (depth ahead of color), sync_slop_s is 30 ms' in text
        assert not any(key.startswith('input_') for key in listener.values), listener.values  # not "silent"
        assert float(listener.values['color rate (Hz)']) > 0 and listener.values['frames processed'] == '0'
        code, log = _interrupt(process)
    feed.node.destroy_node()
    assert code == 0, log[-3000:]


def test_time_going_back_is_diagnosed_and_processing_resumes(ros_context, shared_data):
    feed = FeedNode(ros_context, milk_frame(shared_data), reliability=ReliabilityPolicy.RELIABLE)
    stamp = [2000.0]
    with running(ros_context, '-p', 'input_reliability:=reliable', '-p', 'grasp_processes:=0') as (process, client):
        client.executor.add_node(feed.node)
        listener = DiagnosticsListener(client)

        def feed_until(condition, timeout=60.0):
            def step():
                feed.publish(stamp_s=stamp[0])
                stamp[0] += 0.5
                spin_until(client.executor, lambda: False, 0.5)
                return condition()
            return spin_until(client.executor, step, timeout)
        assert feed.wait_for_nodes(client.executor, 1, ('camera/color/image_raw',))
        assert feed_until(lambda: int(listener.values.get('frames processed', 0)) >= 2), listener.values
        stamp[0] = 1000.0  # a looped bag: time jumps back 1000 s
        assert feed_until(lambda: 'time jumped back' in listener.values.get('time', '')), listener.values
        processed = int(listener.values['frames processed'])
        assert feed_until(lambda: int(listener.values['frames processed']) >= processed + 2), listener.values
        code, log = _interrupt(process)
    feed.node.destroy_node()
    assert code == 0, log[-3000:]
    assert 'time jumped back on color: stamp 1000.000 after' in log or 'time jumped back on depth' in log
