"""Helper process for the DDS tests: publish one real RGB-D frame as Image + Image + CameraInfo at 5 Hz."""

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from robot_vision.datasets import load_ycb_frame
from robot_vision.ros import conversions as cv


def main() -> None:
    frame = load_ycb_frame(int(sys.argv[1]))
    raw_depth = np.round(np.nan_to_num(frame.depth) * 1000).astype(np.uint16)  # millimetres
    rclpy.init()
    node = Node('rgbd_frame_publisher')
    color_pub = node.create_publisher(Image, 'camera/color/image_raw', 10)
    depth_pub = node.create_publisher(Image, 'camera/depth/image_raw', 10)
    info_pub = node.create_publisher(CameraInfo, 'camera/color/camera_info', 10)

    def publish() -> None:
        stamp = node.get_clock().now().to_msg()
        color_pub.publish(cv.numpy_to_image(frame.color[:, :, ::-1].copy(), 'bgr8', frame.frame_id, stamp))
        depth_pub.publish(cv.numpy_to_image(raw_depth, '16UC1', frame.frame_id, stamp))
        info_pub.publish(cv.intrinsics_to_camera_info(frame.intrinsics, frame.frame_id, stamp))

    node.create_timer(0.2, publish)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
