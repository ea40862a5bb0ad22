"""target_frame works in the all-in-one node as in the grasp planner node: grasps for MoveIt in base_link."""

import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseArray, PoseStamped
from node_harness import MILK_SETTINGS, RELIABLE, FeedNode, milk_frame, spin_until, start_node, stop
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from vision_msgs.msg import Detection3DArray

from robot_vision.geometry import invert_transform
from robot_vision.pipeline import Pipeline
from robot_vision.ros import conversions as cv

pytestmark = pytest.mark.ros


def test_grasps_are_published_in_the_target_frame(ros_context, shared_data):
    frame = milk_frame(shared_data)
    camera_to_base = frame.camera_to_fixed  # published as base_link <- camera on /tf_static
    direct = Pipeline(MILK_SETTINGS).process(frame)
    process = start_node('perception_node', *RELIABLE, '-p', 'target_frame:=base_link', '-p', 'fixed_frame:=base_link',
                         '-p', 'grasp_processes:=0')
    feed = FeedNode(ros_context, frame, ReliabilityPolicy.RELIABLE, camera_to_fixed=camera_to_base,
                    fixed_frame='base_link')
    got = {'grasps': [], 'best_grasp': [], 'objects': []}
    listener = Node('grasp_listener', context=ros_context)
    for topic, msg_type in (('grasps', PoseArray), ('best_grasp', PoseStamped), ('objects', Detection3DArray)):
        listener.create_subscription(msg_type, topic, got[topic].append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(feed.node)
    executor.add_node(listener)
    try:
        assert feed.wait_for_nodes(executor, 1, ('camera/color/image_raw',))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not got['best_grasp']:
            feed.publish()
            spin_until(executor, lambda: bool(got['best_grasp']), 3.0)
    finally:
        log = stop(process)
    assert got['best_grasp'], log[-3000:]
    poses, best = got['grasps'][0], got['best_grasp'][0]
    assert poses.header.frame_id == best.header.frame_id == 'base_link'
    assert got['objects'][0].header.frame_id == frame.frame_id  # the objects stay in the camera frame
    # Mapped back into the camera frame, the grasps are the core's grasps on the same frame.
    back = invert_transform(camera_to_base) @ np.stack([cv.pose_to_matrix(p) for p in poses.poses])
    assert len(back) == len(direct.grasps) > 0
    assert np.allclose(back[:, :3, 3], direct.grasps.pose[:, :3, 3], atol=1e-4)
    assert np.allclose(cv.pose_to_matrix(best.pose), camera_to_base @ direct.grasps.pose[0], atol=1e-4)
