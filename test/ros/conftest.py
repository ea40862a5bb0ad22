"""Fixtures of the ROS tests: an rclpy context on the test's own DDS domain, and lifecycle nodes in it."""

import pytest
import rclpy
from rclpy.parameter import Parameter


@pytest.fixture
def ros_context(ros_domain):
    """An initialised rclpy context (shut down after the test) on the test's DDS domain."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def lifecycle_node(ros_context):
    """Factory: ``lifecycle_node(NodeClass, **parameters)`` builds a node in this test's context, autostart off."""
    nodes = []

    def make(node_class, **params):
        overrides = [Parameter('autostart', value=False)] + [Parameter(k, value=v) for k, v in params.items()]
        nodes.append(node_class(context=ros_context, parameter_overrides=overrides))
        return nodes[-1]
    yield make
    for node in nodes:
        node.destroy_node()
