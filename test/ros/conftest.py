"""Fixtures of the ROS tests: an rclpy context on the test's own DDS domain."""

import pytest
import rclpy


@pytest.fixture
def ros_context(ros_domain):
    """An initialised rclpy context (shut down after the test) on the test's DDS domain."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
