"""Where a frame's latency goes in the node: the worker's queue wait, and the breakdown the perception node reports.

The perception node's grasp worker processes run BLAS and OpenMP single-threaded, as the replay's do.
"""

import os
import threading
import time

import psutil
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import FeedNode, milk_frame, spin_until, start_node, stop
from rclpy.node import Node

from robot_vision.processes import SINGLE_THREAD_ENV
from robot_vision.ros.latest_worker import LatestWorker

#: The latency stages the perception node reports besides the pipeline's.
BREAKDOWN = ('input transfer', 'queue wait', 'decode inputs', 'publish objects', 'latency to grasps')


def test_latest_worker_says_how_long_the_item_in_hand_waited():
    gate, waited = threading.Event(), {}

    def handle(item):
        waited[item] = worker.waited_ms
        if item == 'first':
            gate.wait(5.0)
    worker = LatestWorker('test_worker', handle, lambda exc: None)
    worker.submit('first')  # taken at once; blocks on the gate
    while worker._pending is not None:
        time.sleep(0.001)
    worker.submit('second')  # waits behind the first
    time.sleep(0.2)
    gate.set()
    for _ in range(100):
        if 'second' in waited:
            break
        time.sleep(0.05)
    worker.stop()
    assert 200 <= waited['second'] < 5000  # it waited behind the first, at least the 0.2 s before the gate opened
    assert waited['first'] < waited['second']


@pytest.mark.ros
def test_perception_node_reports_its_latency_breakdown_and_single_threaded_grasp_workers(ros_context, shared_data):
    process = start_node('perception_node', '-p', 'grasp_processes:=2')
    feed = FeedNode(ros_context, milk_frame(shared_data))
    listener = Node('listener', context=ros_context)
    diagnostics = []
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(feed.node)
    executor.add_node(listener)

    def stages():
        for msg in diagnostics[-1:]:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                found = {name: float(values[f'stage {name} median (ms)']) for name in BREAKDOWN
                         if f'stage {name} median (ms)' in values}
                if len(found) == len(BREAKDOWN):
                    return found
        return None
    try:
        assert feed.wait_for_nodes(executor, 1, ('camera/color/image_raw',)), 'the node never subscribed'
        workers = [child for child in psutil.Process(process.pid).children(recursive=True)
                   if 'spawn_main' in ' '.join(child.cmdline())]
        environments = [child.environ() for child in workers]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stages() is None:
            feed.publish()
            spin_until(executor, lambda: False, 0.4)
        found = stages()
    finally:
        log = stop(process)
    assert found is not None, log[-3000:]
    assert all(0 <= value < 10000 for value in found.values()), found
    assert found['latency to grasps'] >= found['decode inputs']
    # the two grasp workers got the single-thread environment (where this environment does not set the counts)
    assert len(workers) == 2
    expected = {name: os.environ.get(name, value) for name, value in SINGLE_THREAD_ENV.items()}
    for environment in environments:
        assert {name: environment.get(name) for name in SINGLE_THREAD_ENV} == expected
