"""colcon (colcon-core + colcon-ros from PyPI) builds the package and installs what ros2 launch/run need."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).parent / 'colcon'


@pytest.mark.skipif(not COLCON.exists(), reason='colcon is not installed in this environment')
def test_colcon_build_installs_entry_points_and_share_files(tmp_path):
    workspace = tmp_path / 'ws'
    (workspace / 'src').mkdir(parents=True)
    # A robot workspace holds the repo as a source package; copy the tracked tree.
    shutil.copytree(ROOT, workspace / 'src' / 'robot_vision',
                    ignore=shutil.ignore_patterns(
                        '.venv', '.git', 'artifacts', 'build', 'install', 'log', '__pycache__', '*.egg-info',
                        '.pytest_cache', '.ruff_cache'))
    env = dict(os.environ, PATH=f'{COLCON.parent}:{os.environ["PATH"]}')
    result = subprocess.run([str(COLCON), 'build'],
                            cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    built = [line for line in result.stdout.splitlines() if line.startswith('Finished <<<')]
    assert [line.split()[2] for line in built] == ['robot_vision'], 'interface copies must be COLCON_IGNOREd'
    prefix = workspace / 'install' / 'robot_vision'
    share = prefix / 'share' / 'robot_vision'
    assert (share / 'package.xml').is_file()
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'robot_vision').is_file()
    for sub in ('launch', 'config', 'urdf'):
        expected = sorted(p.name for p in (ROOT / sub).iterdir() if p.is_file())
        assert sorted(p.name for p in (share / sub).iterdir()) == expected, sub
    scripts = {p.name for p in (prefix / 'lib' / 'robot_vision').iterdir()}
    assert 'robot-vision' in scripts


@pytest.mark.skipif(not COLCON.exists(), reason='colcon is not installed in this environment')
def test_replay_launch_player_resolves_to_the_install_space(tmp_path, monkeypatch):
    """replay.launch.py's default player is lib/robot_vision/robot-vision of the install space, which exists."""
    launch = pytest.importorskip('launch', reason='launch is not installed here (it comes from the ROS distro)')
    pytest.importorskip('launch_ros', reason='launch_ros is not installed here (it comes from the ROS distro)')
    from launch.actions import ExecuteProcess
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.utilities import perform_substitutions
    workspace = tmp_path / 'ws'
    (workspace / 'src').mkdir(parents=True)
    shutil.copytree(ROOT, workspace / 'src' / 'robot_vision',
                    ignore=shutil.ignore_patterns('.venv', '.git', 'artifacts', 'build', 'install', 'log',
                                                  '__pycache__', '*.egg-info', '.pytest_cache', '.ruff_cache'))
    env = dict(os.environ, PATH=f'{COLCON.parent}:{os.environ["PATH"]}')
    result = subprocess.run([str(COLCON), 'build'], cwd=workspace, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = workspace / 'install' / 'robot_vision'
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    monkeypatch.setenv('PATH', '/usr/bin:/bin')  # robot-vision is not on PATH, as after a colcon build
    share = prefix / 'share' / 'robot_vision' / 'launch' / 'replay.launch.py'
    description = PythonLaunchDescriptionSource(str(share)).get_launch_description(launch.LaunchContext())
    players = [e for e in description.entities if isinstance(e, ExecuteProcess)]
    program = perform_substitutions(launch.LaunchContext(), players[0].cmd[0])
    assert program == str(prefix / 'lib' / 'robot_vision' / 'robot-vision')
    assert os.access(program, os.X_OK)
