"""Approximate-time pairing of colour and depth messages, and a small transform buffer, for replay.

Both are plain Python over stamps in seconds (no ROS): the replay feeds them the header
stamps of the decoded messages in bag order.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np

from robot_vision.errors import ConfigError


@dataclass
class Stamped:
    """A decoded message with its header ``stamp`` (s), bag ``log_ns`` and type."""

    stamp: float
    log_ns: int
    msgtype: str
    msg: Any


class ApproximateSync:
    """Pair colour and depth messages whose stamps differ by at most ``slop`` seconds.

    Messages are pushed in bag order. A colour message is matched with the queued depth
    message nearest in time once no better depth can arrive (a depth later than colour +
    slop was seen, or :meth:`flush` is called at the end of the bag). Unmatched messages are
    collected in ``dropped`` as (role, stamp, reason). Queues are bounded by ``max_queue``.
    """

    def __init__(self, slop: float, max_queue: int = 30):
        """Start with empty queues."""
        if not (slop >= 0 and np.isfinite(slop)):
            raise ConfigError(f'ReplaySettings.slop: expected a non-negative number of seconds, got {slop}')
        self.slop = float(slop)
        self.max_queue = int(max_queue)
        self.color: Deque[Stamped] = deque()
        self.depth: Deque[Stamped] = deque()
        self.dropped: List[Tuple[str, float, str]] = []

    def push(self, role: str, item: Stamped) -> List[Tuple[Stamped, Stamped]]:
        """Queue a 'color' or 'depth' message; return the (colour, depth) pairs now decided."""
        queue = self.color if role == 'color' else self.depth
        queue.append(item)
        if len(queue) > self.max_queue:
            old = queue.popleft()
            self.dropped.append((role, old.stamp, f'no {"depth" if role == "color" else "colour"} partner '
                                                  f'within {len(queue)} queued messages'))
        return self._match(final=False)

    def flush(self) -> List[Tuple[Stamped, Stamped]]:
        """Decide every remaining pair at the end of the bag; the rest is dropped."""
        pairs = self._match(final=True)
        for role, queue in (('color', self.color), ('depth', self.depth)):
            while queue:
                self.dropped.append((role, queue.popleft().stamp, 'no partner before the end of the bag'))
        return pairs

    def _match(self, final: bool) -> List[Tuple[Stamped, Stamped]]:
        pairs = []
        while self.color and self.depth:
            c = self.color[0]
            if not final and max(d.stamp for d in self.depth) <= c.stamp + self.slop:
                break  # a depth message nearer to this colour one may still come
            best = min(range(len(self.depth)), key=lambda k: (abs(self.depth[k].stamp - c.stamp), k))
            d = self.depth[best]
            if abs(d.stamp - c.stamp) <= self.slop:
                for _ in range(best):
                    old = self.depth.popleft()
                    self.dropped.append(('depth', old.stamp, 'a later depth image matched the colour image'))
                self.depth.popleft()
                self.color.popleft()
                pairs.append((c, d))
            else:
                self.color.popleft()
                self.dropped.append(('color', c.stamp, f'no depth image within {self.slop * 1e3:.0f} ms '
                                                       f'(nearest {abs(d.stamp - c.stamp) * 1e3:.1f} ms)'))
        return pairs


class TransformBuffer:
    """Static and time-stamped transforms (child -> parent 4x4), looked up along the parent chain."""

    def __init__(self) -> None:
        """Start empty."""
        self.static: Dict[str, Tuple[str, np.ndarray]] = {}
        self.dynamic: Dict[str, Tuple[List[float], List[Tuple[str, np.ndarray]]]] = {}

    def add(self, parent: str, child: str, stamp: float, matrix: np.ndarray, static: bool) -> None:
        """Store the transform of ``child`` in ``parent`` (static, or valid from ``stamp`` on)."""
        if static:
            self.static[child] = (parent, np.asarray(matrix, np.float64))
            return
        stamps, values = self.dynamic.setdefault(child, ([], []))
        k = bisect.bisect_right(stamps, stamp)
        stamps.insert(k, stamp)
        values.insert(k, (parent, np.asarray(matrix, np.float64)))

    def _edge(self, child: str, stamp: float) -> Optional[Tuple[str, np.ndarray]]:
        if child in self.static:
            return self.static[child]
        if child not in self.dynamic:
            return None
        stamps, values = self.dynamic[child]
        k = bisect.bisect_right(stamps, stamp) - 1
        return values[max(k, 0)]  # latest at or before the stamp, else the earliest one

    def lookup(self, target: str, source: str, stamp: float) -> Optional[np.ndarray]:
        """The 4x4 transform taking points in ``source`` to ``target`` (an ancestor), or None."""
        target, frame = target.lstrip('/'), source.lstrip('/')
        transform = np.eye(4)
        for _ in range(64):
            if frame == target:
                return transform
            edge = self._edge(frame, stamp)
            if edge is None:
                return None
            frame, matrix = edge[0], edge[1]
            transform = matrix @ transform
        return None

    @property
    def frames(self) -> List[str]:
        """All frame names seen, sorted."""
        names = set(self.static) | set(self.dynamic)
        names |= {p for p, _ in self.static.values()}
        names |= {p for _, values in self.dynamic.values() for p, _ in values}
        return sorted(names)
