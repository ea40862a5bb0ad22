"""The perception node fed compressed images over DDS (image_transport's sub-topics) gives the objects of raw input."""

import time

import numpy as np
import pytest
import rclpy
from node_harness import RELIABLE, FeedNode, Recorder, milk_frame, spin_until, start_node, stop
from rclpy.qos import ReliabilityPolicy
from vision_msgs.msg import Detection3DArray

from robot_vision.ros import conversions as cv

pytestmark = pytest.mark.ros

#: Objects only: no grasp worker processes, no tracking (they do not change the objects).
LEAN = ('-p', 'grasp_processes:=0', '-p', 'enable_grasps:=false', '-p', 'enable_tracking:=false')
COMPRESSED = ('-p', 'color_transport:=compressed', '-p', 'depth_transport:=compressedDepth')


def _objects(ros_context, frame, compressed):
    """Start the node (raw or compressed inputs), feed the frame (compressed: 3 corrupt depth frames first).

    Returns (the first objects message after the corrupt frames, the node's log).
    """
    process = start_node('perception_node', *RELIABLE, *LEAN, *(COMPRESSED if compressed else ()))
    feed = FeedNode(ros_context, frame, ReliabilityPolicy.RELIABLE, camera_to_fixed=frame.camera_to_fixed,
                    compressed=compressed)
    recorder = Recorder(ros_context, {'objects': Detection3DArray}, 'objects_listener')
    got = recorder.got['objects']
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(feed.node)
    executor.add_node(recorder.node)
    try:
        assert feed.wait_for_nodes(executor, 1, (feed.color.topic_name, feed.depth.topic_name)), \
            f'the node never subscribed to {feed.color.topic_name}, {feed.depth.topic_name}'
        if compressed:
            for _ in range(3):  # a header and then garbage where the PNG should be
                feed.publish(depth_data=bytes(12) + b'garbage' * 10)
                spin_until(executor, lambda: False, 0.3)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not got:
            feed.publish()
            spin_until(executor, lambda: bool(got), 2.0)
    finally:
        log = stop(process)
        executor.shutdown()
        feed.node.destroy_node()
        recorder.node.destroy_node()
    assert got, log[-3000:]
    return got[0], log


def test_compressed_inputs_give_the_objects_of_raw_inputs(ros_context, shared_data):
    frame = milk_frame(shared_data)
    raw, _ = _objects(ros_context, frame, compressed=False)
    compressed, log = _objects(ros_context, frame, compressed=True)
    assert "input color: /camera/color/image_raw/compressed" in log, log[-3000:]
    assert "input depth: /camera/aligned_depth_to_color/image_raw/compressedDepth" in log, log[-3000:]
    # The corrupt frames: one clear (throttled) error, and the node went on to process the next frames.
    assert log.count('frame skipped: compressedDepth image: could not decode 70 bytes') == 1, log[-3000:]
    a, b = cv.msg_to_objects(raw), cv.msg_to_objects(compressed)
    assert len(a) == len(b) >= 3
    order_a, order_b = np.argsort(a.position[:, 0]), np.argsort(b.position[:, 0])
    assert np.abs(a.position[order_a] - b.position[order_b]).max() <= 0.002
    assert np.abs(a.size[order_a] - b.size[order_b]).max() <= 0.002
    assert compressed.header.frame_id == raw.header.frame_id == frame.frame_id
