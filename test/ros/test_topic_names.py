"""One set of topic names: the replay bag's result topics are the ones the live node publishes as launched."""

import ast

import pytest
import rclpy
from node_harness import ROOT, spin_until, start_node, stop
from rclpy.node import Node

from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.bag import BagSource
from robot_vision.replay.cli import DEMO_BAG
from robot_vision.ros.topics import OUTPUT_TOPICS

pytestmark = pytest.mark.ros


def _launch_default(name):
    """The default of a robot_vision.launch.py argument (its ARGUMENTS table)."""
    tree = ast.parse((ROOT / 'launch' / 'robot_vision.launch.py').read_text())
    table = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], 'id', '') == 'ARGUMENTS')
    return next(ast.literal_eval(item.elts[1]) for item in table.elts if item.elts[0].value == name)


def test_replay_bag_topics_equal_the_launched_node_topics(ros_context, tmp_path):
    namespace = '/' + _launch_default('namespace').strip('/')
    assert namespace == ReplaySettings.prefix == '/robot_vision'
    # With the opt-in outputs on, the replay writes every result topic the node publishes.
    run = replay(DEMO_BAG, tmp_path / 'out', settings=ReplaySettings(max_frames=1, gallery_size=0, overlays=True,
                                                                   clouds=True), progress=None)
    with BagSource(DEMO_BAG) as source:
        inputs = set(source.topics)
    with BagSource(run.bag_path) as bag:
        replayed = {name: info.msgtype for name, info in bag.topics.items() if name not in inputs}
    # The node as robot_vision.launch.py starts it (nodes:=all_in_one): name robot_vision in that namespace.
    process = start_node('perception_node', '-r', f'__ns:={namespace}', '-p', 'grasp_processes:=0')
    listener = Node('topic_listener', context=ros_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(listener)
    live = {}

    def published():
        try:
            found = listener.get_publisher_names_and_types_by_node('robot_vision', namespace)
        except rclpy.node.NodeNameNonExistentError:
            return False
        live.clear()
        live.update({name: types[0] for name, types in found
                     if name.startswith(namespace + '/') and not name.startswith(f'{namespace}/robot_vision/')})
        return len(live) >= len(OUTPUT_TOPICS)
    try:
        spin_until(executor, published, 60)
    finally:
        log = stop(process)
        executor.shutdown()
        listener.destroy_node()
    assert live == replayed, f'live only: {sorted(set(live) - set(replayed))}, replay only: ' \
                             f'{sorted(set(replayed) - set(live))}\n{log[-2000:]}'
    assert set(live) == {f'{namespace}/{t.name}' for t in OUTPUT_TOPICS}
