"""Gazebo assets: the SDF world passes the real SDFormat parser; the bridge YAML maps the expected topics."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GAZEBO = ROOT / 'sim' / 'gazebo'
WORLD = GAZEBO / 'tabletop.sdf'
BRIDGE = GAZEBO / 'bridge.yaml'


def test_world_is_valid_sdformat():
    ign = shutil.which('ign') or shutil.which('gz')
    if ign is None:
        pytest.skip('SDFormat CLI not installed: apt-get install -y ignition-tools libsdformat-dev '
                    'gives `ign sdf -k FILE`')
    result = subprocess.run([ign, 'sdf', '-k', str(WORLD)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Valid' in result.stdout


def test_world_has_table_objects_and_rgbd_camera():
    root = ET.parse(WORLD).getroot()
    assert root.tag == 'sdf' and root.get('version') == '1.9'
    models = {m.get('name'): m for m in root.iter('model')}
    assert {'table', 'ground_plane', 'rgbd_camera'} <= set(models)
    dynamic = [m for name, m in models.items() if m.findtext('static', 'false').strip() != 'true']
    assert len(dynamic) >= 4
    sensor = root.find(".//sensor[@type='rgbd_camera']")
    assert sensor is not None and sensor.findtext('topic') == 'camera'
    assert sensor.findtext('camera/image/width') == '640' and sensor.findtext('camera/image/height') == '480'
    assert sensor.findtext('gz_frame_id') == 'camera_color_optical_frame'
    plugins = {p.get('name') for p in root.iter('plugin')}
    assert 'gz::sim::systems::Sensors' in plugins and 'gz::sim::systems::Physics' in plugins


def test_world_references_only_existing_files():
    text = WORLD.read_text()
    for uri in re.findall(r'<uri>([^<]+)</uri>', text):
        assert uri.startswith('file://') and Path(uri[len('file://'):]).exists(), uri


def test_bridge_config_maps_the_launch_topics():
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and entries
    required = {'ros_topic_name', 'gz_topic_name', 'ros_type_name', 'gz_type_name', 'direction'}
    for entry in entries:
        assert required <= set(entry), entry
        assert entry['direction'] in ('GZ_TO_ROS', 'ROS_TO_GZ', 'BIDIRECTIONAL')
        for value in entry.values():   # nothing that looks like a file path may be missing
            if isinstance(value, str) and value.endswith(('.sdf', '.yaml', '.urdf', '.dae', '.stl')):
                assert (ROOT / value).exists(), value
    by_ros = {e['ros_topic_name']: e for e in entries}
    expected = {
        'camera/color/image_raw': ('sensor_msgs/msg/Image', 'camera/image'),
        'camera/depth/image_raw': ('sensor_msgs/msg/Image', 'camera/depth_image'),
        'camera/color/camera_info': ('sensor_msgs/msg/CameraInfo', 'camera/camera_info'),
        '/clock': ('rosgraph_msgs/msg/Clock', '/clock'),
    }
    for topic, (ros_type, gz_topic) in expected.items():
        assert by_ros[topic]['ros_type_name'] == ros_type
        assert by_ros[topic]['gz_topic_name'] == gz_topic
        assert by_ros[topic]['direction'] == 'GZ_TO_ROS'
    # every gz topic is one the world's sensor publishes (or the clock)
    sensor_topic = ET.parse(WORLD).getroot().find(".//sensor[@type='rgbd_camera']").findtext('topic')
    for entry in entries:
        gz = entry['gz_topic_name']
        assert gz == '/clock' or gz.split('/')[0] == sensor_topic
