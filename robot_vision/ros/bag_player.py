"""Publish a rosbag2's topics with their recorded timing, /clock and a latched /tf_static (no ros2 bag needed).

For testing the nodes against recorded data where ``ros2 bag play`` is not installed. Messages go
out as the recorded CDR bytes (no decoding), so any message type whose Python package is installed
can be played. ``robot-vision play BAG [--rate R] [--loop]`` runs :func:`play`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from robot_vision.errors import ConfigError, InputError
from robot_vision.replay.bag import BagSource
from robot_vision.ros.bag_codec import MessageCodec

#: Reliable publishers match both reliable and best-effort subscriptions.
DATA_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
#: What tf2's static broadcaster offers: one latched message holding every static transform.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: Seconds given to DDS matching before the first message and to delivery after the last one.
MATCH_WAIT_S = 2.5
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)


class BagPlayer(Node):
    """A node that plays a bag.

    Publishes: every topic of the bag (or ``topics``) under its recorded name and type, reliable,
    keep-last 10, at the recorded log-time spacing divided by ``rate``; ``/tf_static`` latched
    (transient local, depth 1) as one message accumulating every static transform seen so far,
    like tf2's static broadcaster; ``/clock`` (rosgraph_msgs/Clock, best effort) with the bag's
    log time before each message and every ``clock_period`` seconds in between. Subscribes: none.
    Parameters: none (the constructor's arguments). With ``loop`` the bag starts again at its
    end (stamps and /clock jump back, as with ``ros2 bag play --loop``).
    """

    def __init__(self, bag: Path | str, rate: float = 1.0, loop: bool = False,
                 topics: Optional[Sequence[str]] = None, clock: bool = True, clock_period: float = 0.01,
                 node_name: str = 'robot_vision_bag_player', **node_kwargs: Any):
        """Open the bag and create one publisher per played topic (``node_kwargs`` go to rclpy's Node)."""
        if not (rate > 0 and rate < float('inf')):
            raise ConfigError(f'play rate: expected a positive factor, got {rate}')
        super().__init__(node_name, **node_kwargs)
        self.source = BagSource(bag)
        self.rate, self.loop, self.clock_period = float(rate), bool(loop), float(clock_period)
        self.codec = MessageCodec()
        wanted = list(topics) if topics else sorted(self.source.topics)
        unknown = [t for t in wanted if t not in self.source.topics]
        if unknown:
            raise InputError(f'play --topics: {unknown} not in the bag; it has {sorted(self.source.topics)}')
        self.topics = [t for t in wanted if self.source.topics[t].count]
        self.publishers_by_topic: Dict[str, object] = {}
        for name in self.topics:
            msg_class = self.codec.message_class(self.source.topics[name].msgtype)
            qos = LATCHED_QOS if name.endswith('tf_static') else DATA_QOS
            self.publishers_by_topic[name] = self.create_publisher(msg_class, name, qos)
        self.clock_publisher = self.create_publisher(Clock, '/clock', CLOCK_QOS) if clock else None
        self._static: Dict[str, object] = {}
        self.published = 0
        self.loops = 0
        self.get_logger().info(f'playing {len(self.topics)} topics of {self.source.path} at rate {self.rate}'
                               f'{" in a loop" if self.loop else ""}; /tf_static latched, /clock '
                               f'{"on" if clock else "off"}')

    def wait_for_subscribers(self, topics: Sequence[str], timeout: float, settle: float = 0.0) -> bool:
        """Wait up to ``timeout`` seconds until each of ``topics`` has a subscriber (discovery).

        With ``settle`` > 0 it also waits until the subscriber counts have not changed for
        ``settle`` seconds, so that several nodes starting together are all matched.
        """
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            counts = [self.publishers_by_topic[t].get_subscription_count() for t in topics]
            if counts != last:
                last, since = counts, time.monotonic()
            if all(counts) and time.monotonic() - since >= settle:
                return True
            time.sleep(0.05)
        return False

    def _publish_clock(self, log_ns: int) -> None:
        if self.clock_publisher is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(log_ns), 1_000_000_000)
            self.clock_publisher.publish(msg)

    def _publish(self, topic: str, msgtype: str, data: bytes) -> None:
        if topic.endswith('tf_static') and msgtype == 'tf2_msgs/msg/TFMessage':
            msg = self.codec.decode(msgtype, data)
            for transform in msg.transforms:
                self._static[transform.child_frame_id] = transform
            msg.transforms = [self._static[k] for k in sorted(self._static)]
            self.publishers_by_topic[topic].publish(msg)
        else:
            self.publishers_by_topic[topic].publish(data)
        self.published += 1

    def play_once(self) -> int:
        """Play the bag from start to end once; returns the number of messages published."""
        start_wall, first_ns = time.monotonic(), None
        count = 0
        for raw in self.source.messages(self.topics):
            if not self.context.ok():
                break
            first_ns = raw.log_ns if first_ns is None else first_ns
            due = start_wall + (raw.log_ns - first_ns) * 1e-9 / self.rate
            while True:
                now = time.monotonic()
                if now >= due:
                    break
                time.sleep(min(due - now, self.clock_period))
                if self.clock_publisher is not None:
                    elapsed_ns = int((time.monotonic() - start_wall) * self.rate * 1e9)
                    self._publish_clock(first_ns + min(elapsed_ns, raw.log_ns - first_ns))
            self._publish_clock(raw.log_ns)
            self._publish(raw.topic, raw.msgtype, raw.data)
            count += 1
        if self.source.error:
            self.get_logger().warning(f'bag read problem: {self.source.error}')
        return count

    def play(self, max_loops: Optional[int] = None) -> int:
        """Play once, or repeatedly with ``loop`` (up to ``max_loops`` times); returns messages published."""
        total = 0
        while self.context.ok():
            total += self.play_once()
            self.loops += 1
            if not self.loop or (max_loops is not None and self.loops >= max_loops):
                break
        return total

    def destroy_node(self) -> None:
        """Close the bag and destroy the node."""
        self.source.close()
        super().destroy_node()


def play(bag: Path | str, rate: float = 1.0, loop: bool = False, topics: Optional[List[str]] = None,
         clock: bool = True, start_delay: float = 10.0, args: Optional[List[str]] = None) -> int:
    """Run a :class:`BagPlayer` until the bag ends (or Ctrl-C / external shutdown); returns an exit code.

    Before the first message the player waits up to ``start_delay`` seconds until every bag topic
    has a subscriber and the counts have been steady for MATCH_WAIT_S (DDS discovery of every node
    started with it), then MATCH_WAIT_S more for the subscribers to match it, so
    that nodes started with the player receive the beginning of the bag; after the last message it
    stays MATCH_WAIT_S so that DDS delivers the last messages before the process exits.
    Subscribers should be reliable: large best-effort images can be lost between processes.
    """
    rclpy.init(args=args)
    player = None
    try:
        player = BagPlayer(bag, rate=rate, loop=loop, topics=topics, clock=clock)
        if start_delay > 0:
            if not player.wait_for_subscribers(sorted(player.publishers_by_topic), start_delay, settle=MATCH_WAIT_S):
                player.get_logger().info(f'some topics have no subscriber after {start_delay:.1f} s; playing anyway')
            time.sleep(MATCH_WAIT_S)
        count = player.play()
        time.sleep(MATCH_WAIT_S)
        player.get_logger().info(f'published {count} messages')
        return 0
    except KeyboardInterrupt:
        return 0
    except (InputError, ConfigError) as exc:
        print(f'error: {exc}')
        return 1
    except Exception:
        if rclpy.ok():
            raise
        return 0  # SIGTERM/SIGINT shut the context down while a message was being published
    finally:
        if player is not None:
            player.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
