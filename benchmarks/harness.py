"""Timing harness shared by every ``benchmarks/bench_*.py`` module.

A benchmark module defines ``run(quick: bool) -> list[dict]`` and builds its rows with
:func:`measure` (or :func:`row` for numbers it measured itself, such as throughput).
"""

import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np


def row(name: str, value: float, unit: str, target: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """A result row for a number measured by the benchmark itself."""
    return {'name': name, 'value': float(value), 'unit': unit, 'target': target, **extra}


def measure(name: str, fn: Callable[[], Any], repeat: int = 50, warmup: int = 3,
            target_ms: Optional[float] = None, **extra: Any) -> Dict[str, Any]:
    """Time ``fn()`` ``repeat`` times after ``warmup`` calls; report median, p95 and mean in ms."""
    for _ in range(warmup):
        fn()
    samples: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    times = np.asarray(samples)
    result = row(name, float(np.median(times)), 'ms',
                 None if target_ms is None else f'median <= {target_ms} ms',
                 p95_ms=float(np.percentile(times, 95)), mean_ms=float(times.mean()), n=repeat, **extra)
    if target_ms is not None:
        result['ok'] = bool(result['value'] <= target_ms)
    return result
