"""The latest-item worker thread of the nodes: it handles always the newest submitted item (the latest-frame policy)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


class LatestWorker:
    """A thread that handles always the newest submitted item (latest-frame policy).

    ``submit`` replaces an item that is still waiting (``dropped`` counts those); ``handle(item)``
    runs on the thread, and any exception it raises goes to ``on_error(exc)`` (the thread goes on).
    ``waited_ms``: how long the item in hand waited between its submission and the thread taking it.
    """

    def __init__(self, name: str, handle: Callable[[Any], None],
                 on_error: Callable[[Exception], None]) -> None:
        self._handle, self._on_error = handle, on_error
        self._pending: Any = None
        self._pending_since = 0.0
        self.waited_ms = 0.0
        self._wake = threading.Condition()
        self._running = True
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Queue ``item`` for the thread, replacing (and counting as dropped) one still waiting."""
        with self._wake:
            if self._pending is not None:
                self.dropped += 1
            self._pending, self._pending_since = item, time.monotonic()
            self._wake.notify()

    def is_alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the item in hand (a waiting one is discarded)."""
        with self._wake:
            self._running = False
            self._wake.notify_all()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._running and self._pending is None:
                    self._wake.wait(timeout=0.5)
                if not self._running:
                    return
                item, self._pending = self._pending, None
                self.waited_ms = (time.monotonic() - self._pending_since) * 1e3
            try:
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - the thread serves every later item whatever one did
                self._on_error(exc)
