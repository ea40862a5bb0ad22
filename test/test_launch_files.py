"""Launch files name only executables, parameters and files that exist; launch_testing runs them where installed."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from robot_vision.ros.compat import launch_available
from robot_vision.ros.params import settings_leaves, settings_from_values
from robot_vision.ros.node_parameters import ALL_NAMES

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
DECLARED = set(ALL_NAMES) | {leaf.name for leaf in settings_leaves()} | {'use_sim_time'}


def _entry_points():
    text = (ROOT / 'setup.py').read_text()
    return set(re.findall(r"'([\w-]+) = robot_vision[\w.]*:main'", text))


def _calls(tree, name):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keyword(call, key):
    for kw in call.keywords:
        if kw.arg == key and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_file_references_exist(launch_file):
    tree = ast.parse(launch_file.read_text())
    nodes = _calls(tree, 'Node') + _calls(tree, 'LifecycleNode')
    includes = _calls(tree, 'IncludeLaunchDescription')
    assert nodes or includes, 'the launch file starts nothing'
    for call in nodes:
        if _keyword(call, 'package') == 'robot_vision' and _keyword(call, 'executable') is not None:
            assert _keyword(call, 'executable') in _entry_points(), ast.unparse(call)[:200]
    # Executables chosen from a table (e.g. SEPARATE in robot_vision.launch.py) are string constants '*_node'.
    named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and re.fullmatch(r'[a-z_]+_node', n.value)}
    assert named <= _entry_points() | {'robot_state_publisher'}, named - _entry_points()
    # This package's console scripts run by ExecuteProcess exist and start from the install space
    # (colcon puts them in lib/robot_vision, which is not on PATH), never from PATH.
    for call in _calls(tree, 'ExecuteProcess'):
        command = next(kw.value for kw in call.keywords if kw.arg == 'cmd')
        program = command.elts[0]
        if isinstance(program, ast.Name):  # a variable: its assignment in the file
            program = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                           and getattr(n.targets[0], 'id', '') == program.id)
        text = ast.unparse(program)
        if 'robot-vision' in text or "'robot_vision'" in text:
            prefix = "PathJoinSubstitution([FindPackagePrefix('robot_vision'), 'lib', 'robot_vision', "
            assert text.startswith(prefix), text
            assert program.args[0].elts[-1].value in _entry_points(), text
    # Every file under share/robot_vision named by PathJoinSubstitution exists in the repo.
    for call in _calls(tree, 'PathJoinSubstitution'):
        elements = call.args[0].elts
        ours = elements and ast.unparse(elements[0]) == "FindPackageShare('robot_vision')"
        parts = [e.value for e in elements if isinstance(e, ast.Constant)]
        if ours and len(parts) == len(elements) - 1:
            assert (ROOT.joinpath(*parts)).is_file(), parts
            assert parts[0] in ('config', 'urdf', 'launch', 'sim'), f'{parts}: not installed by setup.py'
    # Parameter names given in the launch file are declared by the node.
    for assign in ast.walk(tree):
        if isinstance(assign, ast.Assign) and getattr(assign.targets[0], 'id', '') == 'parameters':
            for node in ast.walk(assign.value):
                if isinstance(node, ast.Dict):
                    keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                    assert keys <= DECLARED, keys - DECLARED
    # Every launch argument has a description.
    arguments = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    for item in arguments.value.elts:
        assert len(item.elts) == 3 and ast.unparse(item.elts[2]).strip("'\""), ast.unparse(item)


def test_readme_documents_every_node_parameter_and_launch_argument():
    readme = (ROOT / 'README.md').read_text()
    missing = sorted(name for name in ALL_NAMES if f'`{name}`' not in readme)
    assert not missing, f'README lacks node parameters {missing}'
    for launch_file in LAUNCH_FILES:
        tree = ast.parse(launch_file.read_text())
        arguments = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                         and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
        names = [item.elts[0].value for item in arguments.value.elts]
        assert f'`{launch_file.name}`' in readme, launch_file.name
        undocumented = [n for n in names if not re.search(rf'`{n}(`|:=)', readme)
                        and not (n.endswith('_topic') and '`*_topic`' in readme)]
        assert not undocumented, f'README lacks the {launch_file.name} arguments {undocumented}'


def _flatten(value, prefix=''):
    if not isinstance(value, dict):
        return {prefix[:-1]: value}
    flat = {}
    for key, sub in value.items():
        flat.update(_flatten(sub, f'{prefix}{key}.'))
    return flat


@pytest.mark.parametrize('config', sorted((ROOT / 'config').glob('*.yaml')), ids=lambda p: p.name)
def test_config_files_hold_only_declared_and_valid_parameters(config):
    document = yaml.safe_load(config.read_text())
    for node_name, body in document.items():
        params = body['ros__parameters']
        flat = _flatten(params)
        assert set(flat) <= DECLARED, f'{config.name}/{node_name}: unknown {sorted(set(flat) - DECLARED)}'
        settings_from_values({k: v for k, v in flat.items() if k not in ALL_NAMES}, settings_leaves())


@pytest.mark.skipif(not launch_available(),
                    reason='launch/launch_ros are not installed: they are not on PyPI; the development setup installs '
                           'them from ../shared/ros_src when that folder exists (a robot has them from its ROS distro)')
@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_description_loads(launch_file):
    """The real launch system loads the file and finds exactly the declared arguments, each with a description."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    description = PythonLaunchDescriptionSource(str(launch_file)).get_launch_description(LaunchContext())
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    tree = ast.parse(launch_file.read_text())
    arguments = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    assert [a.name for a in declared] == [item.elts[0].value for item in arguments.value.elts]
    assert all(a.description and a.description != 'no description given' for a in declared)
    assert len(description.entities) > len(declared), 'the launch file starts nothing'


def test_rviz_config_shows_output_topics_under_the_launch_namespace():
    """config/robot_vision.rviz names output topics in the launch file's default namespace, with matching displays."""
    from robot_vision.ros.topics import OUTPUT_TOPIC_TYPES
    tree = ast.parse((ROOT / 'launch' / 'robot_vision.launch.py').read_text())
    table = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    namespace = next(item.elts[1].value for item in table.elts if item.elts[0].value == 'namespace')
    layout = yaml.safe_load((ROOT / 'config' / 'robot_vision.rviz').read_text())
    types = {'Image': 'sensor_msgs/msg/Image', 'MarkerArray': 'visualization_msgs/msg/MarkerArray',
             'PointCloud2': 'sensor_msgs/msg/PointCloud2', 'PoseArray': 'geometry_msgs/msg/PoseArray'}
    shown = {}
    for display in layout['Visualization Manager']['Displays']:
        if 'Topic' in display:
            shown[display['Topic']['Value']] = types[display['Class'].split('/')[-1]]
    assert shown and all(topic.startswith(f'/{namespace}/') for topic in shown), shown
    assert {t.split('/', 2)[2]: m for t, m in shown.items()}.items() <= OUTPUT_TOPIC_TYPES.items()
