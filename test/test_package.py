"""The repository is a real ament_python package: version, manifest, lint, layout, README commands."""

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import robot_vision

ROOT = Path(__file__).resolve().parent.parent


def _package_xml():
    return ET.parse(ROOT / 'package.xml').getroot()


def test_version_is_the_same_in_package_xml_setup_py_and_the_module():
    xml_version = _package_xml().findtext('version')
    setup_version = subprocess.run([sys.executable, 'setup.py', '--version'], cwd=ROOT, check=True,
                                   capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert xml_version == setup_version == robot_vision.__version__


def test_package_xml_is_format_3_ament_python_with_real_dependencies():
    root = _package_xml()
    assert root.get('format') == '3' and root.findtext('name') == 'robot_vision'
    assert root.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in root if e.tag.endswith('depend')}
    for key in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'visualization_msgs', 'vision_msgs',
                'tf2_ros', 'message_filters', 'diagnostic_msgs', 'cv_bridge', 'python3-numpy',
                'python3-opencv', 'launch', 'launch_ros'):
        assert key in deps, f'package.xml does not declare {key}'


#: Non-ROS rosdep keys package.xml may use: checked by hand against ros/rosdistro rosdep/python.yaml (Jazzy era).
#: (python3-torch, python3-rosbags-pip, python3-mcap, python3-mujoco-pip, python3-pypcd4 do not exist there.)
ROSDEP_PYTHON_KEYS = {'python3-numpy', 'python3-scipy', 'python3-opencv', 'python3-yaml', 'python3-matplotlib',
                      'python3-open3d-pip', 'python3-onnxruntime-pip', 'python3-pytest', 'python3-pytest-timeout'}
#: Third-party modules the package imports -> the package.xml key that provides them on a robot.
IMPORT_KEYS = {'numpy': 'python3-numpy', 'scipy': 'python3-scipy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
               'matplotlib': 'python3-matplotlib', 'open3d': 'python3-open3d-pip',
               'onnxruntime': 'python3-onnxruntime-pip', 'tf2_ros': 'tf2_ros_py'}
#: Third-party modules without a rosdep key: the README's robot pip line installs them (pip name).
PIP_ONLY = {'torch': 'torch', 'rosbags': 'rosbags', 'mcap': 'mcap', 'pypcd4': 'pypcd4', 'mujoco': 'mujoco',
            'tifffile': 'tifffile', 'onnx': 'onnx', 'ray': 'ray'}


def _imported_modules():
    import ast
    names = set()
    for path in (ROOT / 'robot_vision').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names) - {'robot_vision'}


def test_every_import_is_declared_with_a_rosdep_key_or_in_the_readme_pip_line():
    deps = {e.text for e in _package_xml() if e.tag.endswith('depend')}
    assert 'rclpy_lifecycle' not in deps  # lifecycle is part of rclpy; no such package
    unkeyed = {d for d in deps if d.startswith('python3-')} - ROSDEP_PYTHON_KEYS
    assert not unkeyed, f'package.xml keys rosdep does not know: {sorted(unkeyed)}'
    readme = (ROOT / 'README.md').read_text()
    robot = readme.split('## On a robot', 1)[1].split('\n## ', 1)[0]
    pip_line = ' '.join(line.split('#')[0] for line in robot.splitlines() if line.startswith('pip install'))
    assert 'torch==' in pip_line and 'download.pytorch.org/whl/cpu' in pip_line  # the CPU build, pinned
    for module in sorted(_imported_modules()):
        if module in PIP_ONLY:
            assert re.search(rf'(^|\s){PIP_ONLY[module]}([=<>\s]|$)', pip_line), f'README pip lines lack {module}'
        elif module in IMPORT_KEYS:
            assert IMPORT_KEYS[module] in deps, f'{module}: package.xml lacks {IMPORT_KEYS[module]}'
        else:  # ROS packages: the package name is the key
            assert module in deps, f'{module} is imported but not declared in package.xml'


@pytest.mark.skipif(shutil.which('xmllint') is None, reason='xmllint (libxml2-utils) is not installed')
@pytest.mark.parametrize('path', ['package.xml', 'ros_interfaces/vision_msgs/package.xml',
                                  'ros_interfaces/tf2_msgs/package.xml'])
def test_xml_manifests_are_well_formed(path):
    subprocess.run(['xmllint', '--noout', str(ROOT / path)], check=True)


@pytest.mark.skipif(shutil.which('xmllint') is None, reason='xmllint (libxml2-utils) is not installed')
@pytest.mark.parametrize('gripper', [False, True])
def test_urdf_expands_and_is_well_formed(gripper, tmp_path):
    """The camera mount alone by default (what publish_frames publishes); the gripper frames only when asked."""
    urdf = tmp_path / 'robot.urdf'
    xacro = [str(Path(sys.executable).parent / 'xacro'), str(ROOT / 'urdf' / 'robot_vision.urdf.xacro')]
    expanded = subprocess.run(xacro + [f'gripper:={str(gripper).lower()}'], check=True, capture_output=True,
                              text=True).stdout
    urdf.write_text(expanded)
    subprocess.run(['xmllint', '--noout', str(urdf)], check=True)
    links = re.findall(r'<link name="([^"]+)"', expanded)
    children = set(re.findall(r'<child link="([^"]+)"', expanded))
    assert len(links) == len(set(links)), 'duplicate link names'
    assert len([link for link in links if link not in children]) == 1, 'a URDF needs exactly one root link'
    camera = {'base_link', 'camera_link', 'camera_color_optical_frame', 'camera_depth_optical_frame'}
    assert set(links) == (camera | {'gripper_flange', 'gripper_tcp'} if gripper else camera)


def test_ruff_lint_clean():
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_interface_packages_are_ignored_by_colcon_on_robots():
    assert (ROOT / 'ros_interfaces' / 'COLCON_IGNORE').is_file()


def test_readme_quick_start_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / 'README.md').read_text()
    section = readme.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    commands = re.findall(r'^```(?:bash|sh)\n(.*?)```', section, flags=re.S | re.M)
    lines = [line for block in commands for line in block.strip().splitlines()]
    assert lines == ['make demo', 'make test']
    assert 'make test' in (ROOT / '.ci' / 'run').read_text().splitlines()


def test_core_never_imports_ros():
    """Every module outside robot_vision/ros imports without pulling in rclpy or message packages."""
    core = sorted(p for p in (ROOT / 'robot_vision').rglob('*.py')
                  if 'ros' not in p.relative_to(ROOT / 'robot_vision').parts[:-1]
                  and p.name not in ('__main__.py',))
    modules = ['.'.join(p.relative_to(ROOT).with_suffix('').parts).replace('.__init__', '') for p in core]
    code = ('import importlib, sys\n'
            f'for m in {modules!r}:\n'
            '    importlib.import_module(m)\n'
            "bad = sorted(k for k in sys.modules\n"
            "             if k.split('.')[0] == 'rclpy' or k.split('.')[0].endswith('_msgs'))\n"
            'print(bad)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]', f'core modules imported ROS: {result.stdout}'
