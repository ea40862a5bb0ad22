"""Run robot_vision on the simulated RGB-D camera: MuJoCo tabletop scenes with ground truth, no Gazebo needed.

sim_camera_node publishes what a Gazebo RGB-D camera bridged by ros_gz_bridge would (under /camera),
/clock (simulated time) and the camera pose in the world frame on TF, plus the ground truth under
/sim/ground_truth. robot_vision.launch.py starts the perception node(s) on it with use_sim_time:=true
and fixed_frame set to the simulated world frame. See docs/simulation.md, "Simulated camera node".

Examples:
  ros2 launch robot_vision sim_camera.launch.py
  ros2 launch robot_vision sim_camera.launch.py rate_hz:=5.0 noise:=kinect num_objects:=6 nodes:=separate
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('rate_hz', '10.0', 'simulated camera frame rate (Hz); slower rendering lowers it, see the log/diagnostics'),
    ('seed', '0', 'scene seed (scene k of the run uses seed + k)'),
    ('noise', 'realsense_d435', "depth noise model: 'none', 'kinect', 'realsense_d435' or 'registered_sparse'"),
    ('num_objects', '0', 'objects on the table; 0 = 4 to 8, drawn per scene'),
    ('new_scene_every_s', '0.0', 'simulated seconds between new random scenes; 0 = keep one scene'),
    ('world_frame', 'world', 'fixed frame of the simulated scene; the perception node keeps its tracks in it'),
    ('nodes', 'all_in_one', "robot_vision nodes to run: 'all_in_one', 'separate' or a comma list (see "
                            "robot_vision.launch.py)"),
    ('config_file', PathJoinSubstitution([FindPackageShare('robot_vision'), 'config', 'robot_vision.yaml']),
     'parameter file of the robot_vision nodes (not of the simulated camera)'),
]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, the simulated camera and the robot_vision nodes."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    camera = Node(
        package='robot_vision', executable='sim_camera_node', name='sim_camera', output='screen',
        parameters=[{
            'rate_hz': ParameterValue(cfg['rate_hz'], value_type=float),
            'seed': ParameterValue(cfg['seed'], value_type=int),
            'noise': cfg['noise'],
            'num_objects': ParameterValue(cfg['num_objects'], value_type=int),
            'new_scene_every_s': ParameterValue(cfg['new_scene_every_s'], value_type=float),
            'world_frame': cfg['world_frame'],
        }])
    nodes = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare('robot_vision'), 'launch',
                                                            'robot_vision.launch.py'])),
        launch_arguments={'use_sim_time': 'true', 'camera_namespace': '/camera', 'fixed_frame': cfg['world_frame'],
                          'nodes': cfg['nodes'], 'config_file': cfg['config_file']}.items())
    return LaunchDescription(args + [camera, nodes])
