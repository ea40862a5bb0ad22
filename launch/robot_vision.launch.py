"""Start robot_vision next to a camera driver (or a Gazebo camera), plus the camera/gripper frames.

``nodes:=all_in_one`` (default) runs the whole pipeline in one process (perception_node, lowest
latency); ``nodes:=separate`` starts the detector, pose estimator, grasp planner and tracker as
separate lifecycle nodes (each can be replaced, e.g. by Isaac ROS or depthai detections); a comma
list such as ``nodes:=pose_estimator,grasp_planner`` starts just those. ``sim:=true`` also starts
Gazebo with sim/gazebo/tabletop.sdf and ros_gz_bridge with sim/gazebo/bridge.yaml (needs ros_gz).
``dds_profile`` (default config/fastdds_large_images.xml) gives Fast DDS a shared-memory segment
large enough for 640x480 images; the camera driver should use the same profile (see that file).

Examples:
  ros2 launch robot_vision robot_vision.launch.py camera_namespace:=/camera \
      config_file:=/path/to/my.yaml detector_backend:=onnx model_path:=/path/to/yolo.onnx
  ros2 launch robot_vision robot_vision.launch.py nodes:=separate target_frame:=base_link
  ros2 launch robot_vision robot_vision.launch.py sim:=true
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('camera_namespace', '/camera', 'namespace of the RGB-D camera driver (its topics are remapped from it)'),
    ('color_topic', 'color/image_raw', 'colour image topic, relative to camera_namespace'),
    ('depth_topic', 'aligned_depth_to_color/image_raw', 'depth aligned to colour, relative to camera_namespace'),
    ('camera_info_topic', 'color/camera_info', 'CameraInfo topic, relative to camera_namespace'),
    ('color_transport', 'raw', "image_transport of the colour input: 'raw' or 'compressed' (color_topic/compressed)"),
    ('depth_transport', 'raw', "image_transport of the depth input: 'raw', 'compressedDepth' "
                               "(depth_topic/compressedDepth) or 'compressed'"),
    ('config_file', PathJoinSubstitution([FindPackageShare('robot_vision'), 'config', 'robot_vision.yaml']),
     'parameter file of the nodes (section /** applies to all of them)'),
    ('input_reliability', 'best_effort', "QoS reliability of the camera subscriptions: 'best_effort' (any "
                                         "driver) or 'reliable' (bag replay: no image is lost)"),
    ('nodes', 'all_in_one', "'all_in_one', 'separate', or a comma list of detector, pose_estimator, "
                            "grasp_planner, tracker"),
    ('detector_backend', 'depth', 'depth (no model), onnx or torchscript'),
    ('model_path', '', 'ONNX/TorchScript model file for the onnx/torchscript backends'),
    ('fixed_frame', 'odom', 'frame the tracks are kept in (TF must connect it to the camera)'),
    ('target_frame', '', 'frame of the published grasps, e.g. base_link (empty: the camera frame)'),
    ('use_sim_time', 'false', 'use /clock (simulation or bag replay)'),
    ('publish_frames', 'false', 'publish the camera mount (base_link -> camera_link -> optical frames) from '
                                'urdf/robot_vision.urdf.xacro as static TF; no robot_description, no gripper'),
    ('sim', 'false', 'also start Gazebo (sim/gazebo/tabletop.sdf) and its ros_gz_bridge; sets use_sim_time'),
    ('namespace', 'robot_vision', "namespace of the robot_vision nodes and their outputs (/robot_vision/objects, "
                                  "...: the names robot-vision replay writes; '' puts them at the root)"),
    ('dds_profile', PathJoinSubstitution([FindPackageShare('robot_vision'), 'config', 'fastdds_large_images.xml']),
     'Fast DDS profile the nodes (and processes started after them) get through FASTRTPS_/FASTDDS_DEFAULT_'
     "PROFILES_FILE: shared memory large enough for camera images; '' keeps the environment as it is"),
]

#: Separate node name -> executable.
SEPARATE = {'detector': 'detector_node', 'pose_estimator': 'pose_estimator_node',
            'grasp_planner': 'grasp_planner_node', 'tracker': 'tracker_node'}


def _selected(nodes, name):
    """Condition: ``name`` is one of the comma-separated ``nodes`` (or 'separate' selects every separate node)."""
    return IfCondition(PythonExpression([
        "'", name, "' in [n.strip() for n in '", nodes, "'.replace('separate', '",
        ','.join(SEPARATE), "').split(',')]"]))


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the nodes."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    sim_time = PythonExpression(["'", cfg['use_sim_time'], "'.lower() == 'true' or '", cfg['sim'],
                                 "'.lower() == 'true'"])
    use_sim_time = ParameterValue(sim_time, value_type=bool)
    profile_given = IfCondition(PythonExpression(["'", cfg['dds_profile'], "' != ''"]))
    dds = [SetEnvironmentVariable(variable, cfg['dds_profile'], condition=profile_given)
           for variable in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')]
    parameters = [cfg['config_file'], {
        'use_sim_time': use_sim_time,
        'detector.backend': cfg['detector_backend'],
        'detector.model_path': cfg['model_path'],
        'fixed_frame': cfg['fixed_frame'],
        'color_topic': PathJoinSubstitution([cfg['camera_namespace'], cfg['color_topic']]),
        'depth_topic': PathJoinSubstitution([cfg['camera_namespace'], cfg['depth_topic']]),
        'camera_info_topic': PathJoinSubstitution([cfg['camera_namespace'], cfg['camera_info_topic']]),
        'color_transport': cfg['color_transport'],
        'depth_transport': cfg['depth_transport'],
        'target_frame': cfg['target_frame'],
        'input_reliability': cfg['input_reliability'],
    }]
    perception = LifecycleNode(
        package='robot_vision', executable='perception_node', name='robot_vision',
        namespace=cfg['namespace'], output='screen', parameters=parameters,
        condition=_selected(cfg['nodes'], 'all_in_one'))
    separate = [LifecycleNode(package='robot_vision', executable=executable, name=name,
                              namespace=cfg['namespace'], output='screen', parameters=parameters,
                              condition=_selected(cfg['nodes'], name))
                for name, executable in SEPARATE.items()]
    # Its own namespace: robot_state_publisher also publishes robot_description (latched), which must never
    # replace the robot's /robot_description; the TF it publishes (/tf_static) is absolute.
    frames = Node(
        package='robot_state_publisher', executable='robot_state_publisher', name='robot_vision_frames',
        namespace='robot_vision_camera_mount', condition=IfCondition(cfg['publish_frames']),
        parameters=[{'use_sim_time': use_sim_time, 'robot_description': ParameterValue(
            Command(['xacro ', PathJoinSubstitution([FindPackageShare('robot_vision'), 'urdf',
                                                     'robot_vision.urdf.xacro'])]), value_type=str)}])
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare('ros_gz_sim'), 'launch',
                                                            'gz_sim.launch.py'])),
        launch_arguments={'gz_args': ['-r ', PathJoinSubstitution([FindPackageShare('robot_vision'), 'sim',
                                                                   'gazebo', 'tabletop.sdf'])]}.items(),
        condition=IfCondition(cfg['sim']))
    bridge = Node(
        package='ros_gz_bridge', executable='parameter_bridge', name='robot_vision_gz_bridge', output='screen',
        condition=IfCondition(cfg['sim']),
        parameters=[{'use_sim_time': True, 'config_file': PathJoinSubstitution(
            [FindPackageShare('robot_vision'), 'sim', 'gazebo', 'bridge.yaml'])}])
    # The Gazebo camera's pose in sim/gazebo/tabletop.sdf (model rgbd_camera), published in the fixed frame,
    # and its optical frame (x right, y down, z forward), which stamps the bridged images.
    camera_in_world = Node(
        package='tf2_ros', executable='static_transform_publisher', name='robot_vision_sim_camera_tf',
        condition=IfCondition(cfg['sim']),
        arguments=['--x', '-0.375', '--y', '0', '--z', '1.3995', '--roll', '0', '--pitch', '1.047198', '--yaw', '0',
                   '--frame-id', cfg['fixed_frame'], '--child-frame-id', 'camera_link'])
    optical = Node(
        package='tf2_ros', executable='static_transform_publisher', name='robot_vision_sim_optical_tf',
        condition=IfCondition(cfg['sim']),
        arguments=['--roll', '-1.570796', '--pitch', '0', '--yaw', '-1.570796',
                   '--frame-id', 'camera_link', '--child-frame-id', 'camera_color_optical_frame'])
    return LaunchDescription(args + dds + [perception, *separate, frames, gazebo, bridge, camera_in_world, optical])
