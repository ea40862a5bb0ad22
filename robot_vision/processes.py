"""Worker processes that share the cores: their OpenMP and BLAS libraries run single-threaded.

The replay's frame workers and the grasp workers (of the node and of the replay) are started
inside :func:`single_threaded_children`. Each of them already has a core's worth of work; the
per-library thread pools on top made a grasp search cost 1.6-1.9x the CPU time and a 60-frame
replay about 1.6x slower on the 2-core development machine. A thread count the environment sets
is kept.
"""

import os
from contextlib import contextmanager
from typing import Iterator

#: Thread-count variables of OpenMP, OpenBLAS and MKL given to worker processes (read when they load).
SINGLE_THREAD_ENV = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes started inside get SINGLE_THREAD_ENV (where the environment does not set them)."""
    added = {k: v for k, v in SINGLE_THREAD_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            del os.environ[name]
