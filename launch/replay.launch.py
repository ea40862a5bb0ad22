"""Replay a recorded rosbag2 into the robot_vision nodes, with simulated time from the bag's /clock.

The bag is played by ``robot-vision play`` from the install space (lib/robot_vision; recorded timing,
/clock, latched /tf_static; plays mcap and sqlite3 bags without ros2 bag), or by ``ros2 bag play
--clock`` with ``player:=ros2``.
The nodes are started by robot_vision.launch.py with use_sim_time:=true and reliable inputs (the
player publishes reliably, and no recorded frame should be lost), so every argument of
that file (nodes, config_file, detector_backend, camera topics, fixed_frame...) can be given here.

Examples:
  ros2 launch robot_vision replay.launch.py                    # the bundled real-data demo bag
  ros2 launch robot_vision replay.launch.py bag:=/data/run1.mcap rate:=0.5 nodes:=separate
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.substitutions import FindPackagePrefix, FindPackageShare

ARGUMENTS = [
    ('bag', 'demo', "rosbag2 folder, .mcap or .db3 file; 'demo': the bundled real RGB-D bag"),
    ('rate', '1.0', 'playback speed factor'),
    ('player', 'robot_vision', "'robot_vision' (robot-vision play) or 'ros2' (ros2 bag play --clock; needs a "
                               "bag path, not 'demo')"),
    ('nodes', 'all_in_one', "which nodes robot_vision.launch.py starts: 'all_in_one', 'separate' or a list"),
    ('config_file', PathJoinSubstitution([FindPackageShare('robot_vision'), 'config', 'robot_vision.yaml']),
     'parameter file of the nodes'),
    ('camera_namespace', '/camera', 'namespace of the camera topics in the bag'),
    ('fixed_frame', 'odom', 'frame the tracks are kept in (the bag\'s TF must connect it to the camera)'),
]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, the bag player and the nodes."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    ours = PythonExpression(["'", cfg['player'], "' == 'robot_vision'"])
    # The player from the install space (colcon installs console scripts in lib/robot_vision, not on PATH).
    player = PathJoinSubstitution([FindPackagePrefix('robot_vision'), 'lib', 'robot_vision', 'robot-vision'])
    play = ExecuteProcess(cmd=[player, 'play', cfg['bag'], '--rate', cfg['rate']],
                          output='screen', condition=IfCondition(ours))
    ros2_play = ExecuteProcess(cmd=['ros2', 'bag', 'play', cfg['bag'], '--clock', '--rate', cfg['rate']],
                               output='screen', condition=UnlessCondition(ours))
    nodes = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare('robot_vision'), 'launch',
                                                            'robot_vision.launch.py'])),
        launch_arguments={'use_sim_time': 'true', 'input_reliability': 'reliable', 'nodes': cfg['nodes'],
                          'config_file': cfg['config_file'], 'camera_namespace': cfg['camera_namespace'],
                          'fixed_frame': cfg['fixed_frame']}.items())
    return LaunchDescription(args + [nodes, play, ros2_play])
