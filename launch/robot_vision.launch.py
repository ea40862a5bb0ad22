"""Start robot_vision's perception node next to a camera driver, plus the camera/gripper frames.

Example:
  ros2 launch robot_vision robot_vision.launch.py camera_namespace:=/camera \
      config_file:=/path/to/my.yaml detector_backend:=onnx model_path:=/path/to/yolo.onnx
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('camera_namespace', '/camera', 'namespace of the RGB-D camera driver (its topics are remapped from it)'),
    ('color_topic', 'color/image_raw', 'colour image topic, relative to camera_namespace'),
    ('depth_topic', 'aligned_depth_to_color/image_raw', 'depth aligned to colour, relative to camera_namespace'),
    ('camera_info_topic', 'color/camera_info', 'CameraInfo topic, relative to camera_namespace'),
    ('config_file', PathJoinSubstitution([FindPackageShare('robot_vision'), 'config', 'robot_vision.yaml']),
     'parameter file of the perception node'),
    ('detector_backend', 'depth', 'depth (no model), onnx or torchscript'),
    ('model_path', '', 'ONNX/TorchScript model file for the onnx/torchscript backends'),
    ('fixed_frame', 'odom', 'frame the tracks are kept in (TF must connect it to the camera)'),
    ('use_sim_time', 'false', 'use /clock (simulation or bag replay)'),
    ('publish_frames', 'false', 'publish the camera mount and gripper TCP frames from urdf/robot_vision.urdf.xacro'),
    ('namespace', '', 'namespace of the perception node and its outputs'),
]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the nodes."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    use_sim_time = ParameterValue(cfg['use_sim_time'], value_type=bool)
    perception = LifecycleNode(
        package='robot_vision', executable='perception_node', name='robot_vision',
        namespace=cfg['namespace'], output='screen',
        parameters=[cfg['config_file'], {
            'use_sim_time': use_sim_time,
            'detector.backend': cfg['detector_backend'],
            'detector.model_path': cfg['model_path'],
            'fixed_frame': cfg['fixed_frame'],
            'color_topic': PathJoinSubstitution([cfg['camera_namespace'], cfg['color_topic']]),
            'depth_topic': PathJoinSubstitution([cfg['camera_namespace'], cfg['depth_topic']]),
            'camera_info_topic': PathJoinSubstitution([cfg['camera_namespace'], cfg['camera_info_topic']]),
        }])
    frames = Node(
        package='robot_state_publisher', executable='robot_state_publisher', name='robot_vision_frames',
        condition=IfCondition(cfg['publish_frames']),
        parameters=[{'use_sim_time': use_sim_time, 'robot_description': ParameterValue(
            Command(['xacro ', PathJoinSubstitution([FindPackageShare('robot_vision'), 'urdf',
                                                     'robot_vision.urdf.xacro'])]), value_type=str)}])
    return LaunchDescription(args + [perception, frames])
