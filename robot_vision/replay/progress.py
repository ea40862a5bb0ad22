"""A dependency-free progress bar with rate and time-left estimate, written to a text stream (stderr)."""

from __future__ import annotations

import time
from typing import Optional, TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f'{seconds // 60:d}:{seconds % 60:02d}'


class Progress:
    """``[#####-----] 12/30 frames 40% 3.1 fps elapsed 0:04 ETA 0:06`` on one line.

    On a terminal the line is redrawn in place (at most every ``interval`` seconds); on a pipe
    or file one line is written per 10 % of ``total``, so logs stay short. ``total`` may be
    None (unknown), then no percentage or ETA is shown.
    """

    def __init__(self, total: Optional[int], stream: Optional[TextIO], unit: str = 'frames',
                 interval: float = 0.2, width: int = 24):
        """Start the clock; ``stream`` None disables all output."""
        self.total = total if total and total > 0 else None
        self.stream = stream
        self.unit = unit
        self.interval = interval
        self.width = width
        self.count = 0
        self.start = time.perf_counter()
        self._last_draw = -1e9
        self._last_decile = -1
        self._tty = bool(stream is not None and getattr(stream, 'isatty', lambda: False)())

    def text(self) -> str:
        """The progress line for the current count."""
        elapsed = time.perf_counter() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(1.0, self.count / self.total)
            filled = int(round(frac * self.width))
            eta = (self.total - self.count) / rate if rate > 0 else float('nan')
            eta_text = _clock(eta) if eta == eta else '?'
            return (f'[{"#" * filled}{"-" * (self.width - filled)}] {self.count}/{self.total} {self.unit} '
                    f'{frac * 100:3.0f}% {rate:.1f} {self.unit}/s elapsed {_clock(elapsed)} ETA {eta_text}')
        return f'{self.count} {self.unit} {rate:.1f} {self.unit}/s elapsed {_clock(elapsed)}'

    def update(self, step: int = 1) -> None:
        """Advance by ``step`` and redraw when due."""
        self.count += step
        if self.stream is None:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last_draw >= self.interval:
                self.stream.write('\r' + self.text() + '\x1b[K')
                self.stream.flush()
                self._last_draw = now
            return
        decile = int(10 * self.count / self.total) if self.total else self.count // 50
        if decile != self._last_decile and self.count != self.total:  # close() writes the last line
            self.stream.write(self.text() + '\n')
            self.stream.flush()
            self._last_decile = decile

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.stream is None:
            return
        if self._tty:
            self.stream.write('\r' + self.text() + '\x1b[K\n')
        else:
            self.stream.write(self.text() + ' done\n')
        self.stream.flush()
