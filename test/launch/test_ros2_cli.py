"""The README's ``ros2`` commands, run as a robot user runs them, on the package registered in the ament index.

``ros2 pkg`` finds this checkout, ``ros2 launch ... --show-args`` lists every argument, ``ros2 run`` starts a node
that ``ros2 node list`` and ``ros2 param describe`` see, and ``ros2 launch robot_vision replay.launch.py`` plays
the bundled bag into the node and stops cleanly on Ctrl-C. ``ros2 lifecycle get`` and ``ros2 topic echo``
run where their packages are installed (they need rosidl_runtime_py; untested here, where it is missing).
"""

import ast
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip('ros2cli', reason='the ros2 command is not installed: ros2cli is not on PyPI; the development '
                    'setup installs it from ../shared/ros_src when that folder exists (a robot has it from its distro)')

import launch_harness as harness  # noqa: E402

pytestmark = pytest.mark.ros

BIN = harness.BIN
NODE = f'/{harness.DEFAULT_NAMESPACE}/robot_vision'  # the all-in-one node as the launch files start it
CONFIG = harness.ROOT / 'config' / 'robot_vision.yaml'
ROSIDL_RUNTIME_PY = ('ros2 lifecycle and ros2 topic import rosidl_runtime_py, which is neither on PyPI nor in '
                     '../shared/ros_src, so the development setup cannot install them (a robot has them from its '
                     'distro)')


@pytest.fixture
def ros2_env(ros_domain, monkeypatch, tmp_path):
    """This test's DDS domain, and this checkout registered in front of AMENT_PREFIX_PATH."""
    harness.register_checkout(tmp_path)
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.pathsep.join([str(tmp_path), os.environ.get('AMENT_PREFIX_PATH', '')]))
    return tmp_path


def ros2(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``ros2 ARGS`` and return the finished process (stdout and stderr as text)."""
    return subprocess.run([str(BIN / 'ros2'), *args], capture_output=True, text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen:
    """Start ``ros2 ARGS`` in the background in a process group of its own (as a shell job), output to a pipe."""
    return subprocess.Popen([str(BIN / 'ros2'), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def interrupt(process: subprocess.Popen) -> tuple:
    """Ctrl-C the job as a terminal does (SIGINT to its whole process group); return its exit code and output."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=10)
    return process.returncode, out


def wait_for_node(name: str, timeout: float = 90, present: bool = True) -> bool:
    """Poll ``ros2 node list`` until ``name`` is in it (or, with ``present=False``, gone from it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (name in ros2('node', 'list', '--no-daemon', '--spin-time', '5').stdout.split()) == present:
            return True
        time.sleep(1.0)
    return False


def test_ros2_pkg_finds_this_checkout(ros2_env):
    prefix = Path(ros2('pkg', 'prefix', 'robot_vision').stdout.strip())
    assert prefix == ros2_env
    for name in ('robot_vision.launch.py', 'replay.launch.py', 'sim_camera.launch.py'):
        assert (prefix / 'share' / 'robot_vision' / 'launch' / name).resolve() == harness.LAUNCH_DIR / name
    executables = ros2('pkg', 'executables', 'robot_vision').stdout.split()
    assert {'perception_node', 'detector_node', 'pose_estimator_node', 'grasp_planner_node', 'tracker_node',
            'sim_camera_node'} <= set(executables[1::2])


@pytest.mark.parametrize('launch_file', sorted(p.name for p in harness.LAUNCH_DIR.glob('*.launch.py')))
def test_show_args_lists_every_argument(ros2_env, launch_file):
    result = ros2('launch', 'robot_vision', launch_file, '--show-args')
    assert result.returncode == 0, result.stdout + result.stderr
    tree = ast.parse((harness.LAUNCH_DIR / launch_file).read_text())
    arguments = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    for item in arguments.value.elts:
        assert f"'{item.elts[0].value}':" in result.stdout, item.elts[0].value


def test_ros2_run_and_param_describe(ros2_env):
    node = start('run', 'robot_vision', 'perception_node', '--ros-args', '--params-file', str(CONFIG))
    try:
        assert wait_for_node('/robot_vision'), 'ros2 node list never showed /robot_vision'
        described = ros2('param', 'describe', '/robot_vision', 'sync_slop_s', '--no-daemon', '--spin-time', '5')
        listed = ros2('param', 'list', '/robot_vision', '--no-daemon', '--spin-time', '5')
    finally:
        code, out = interrupt(node)
    assert 'Type: double' in described.stdout and 'approximate-time slop' in described.stdout, described.stdout
    assert {'autostart', 'input_reliability', 'sync_slop_s', 'color_topic', 'detector.backend', 'use_sim_time'} <= {
        line.strip() for line in listed.stdout.splitlines()}, listed.stdout
    assert code == 0 and 'Traceback' not in out, out[-3000:]


def test_ros2_launch_replay_of_the_bundled_bag(ros2_env):
    launch = start('launch', 'robot_vision', 'replay.launch.py')
    try:
        assert wait_for_node(NODE), f'the replay launch never started {NODE}'
        described = ros2('param', 'get', NODE, 'use_sim_time', '--no-daemon', '--spin-time', '5')
        assert wait_for_node('/robot_vision_bag_player', present=False), 'the bag player never finished'
    finally:
        code, out = interrupt(launch)
    assert 'Boolean value is: True' in described.stdout, described.stdout
    assert 'published 10 messages' in out, out[-3000:]  # the bundled bag: 3 RGB-D frames and /tf_static
    assert code == 0 and 'Traceback' not in out, out[-3000:]
    # Every process ends cleanly although Ctrl-C reaches it twice (from the terminal and from launch).
    assert out.count('process has finished cleanly') == 2 and 'process has died' not in out, out[-3000:]


def test_ros2_lifecycle_get_and_topic_echo_during_replay(ros2_env):
    for module in ('ros2lifecycle', 'ros2topic'):
        pytest.importorskip(module, reason=ROSIDL_RUNTIME_PY)
    launch = start('launch', 'robot_vision', 'replay.launch.py')
    try:
        assert wait_for_node(NODE), f'the replay launch never started {NODE}'
        deadline = time.monotonic() + 60
        state = ''
        while 'active' not in state and time.monotonic() < deadline:
            state = ros2('lifecycle', 'get', NODE, '--no-daemon', '--spin-time', '5').stdout
        objects = f'/{harness.DEFAULT_NAMESPACE}/objects'
        echoed = ros2('topic', 'echo', '--once', objects, 'vision_msgs/msg/Detection3DArray', timeout=90)
    finally:
        code, out = interrupt(launch)
    assert state.startswith('active'), state
    assert 'detections:' in echoed.stdout, echoed.stdout + echoed.stderr
    assert code == 0 and 'Traceback' not in out, out[-3000:]
