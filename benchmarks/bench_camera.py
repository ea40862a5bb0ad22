"""Depth decoding and deprojection at 640x480 and 1280x720."""

import numpy as np

from benchmarks.harness import measure
from robot_vision.camera import decode_depth, deproject
from robot_vision.types import CameraIntrinsics


def run(quick: bool):
    repeat = 20 if quick else 200
    rng = np.random.default_rng(0)
    rows = []
    for width, height in ((640, 480), (1280, 720)):
        intr = CameraIntrinsics(width, height, 600.0, 600.0, width / 2, height / 2)
        raw = rng.integers(0, 4000, (height, width), dtype=np.uint16)
        depth = decode_depth(raw)
        target = 5.0 if width == 640 else None
        rows.append(measure(f'decode_depth 16UC1 mm -> m {width}x{height}', lambda raw=raw: decode_depth(raw),
                            repeat, target_ms=target))
        rows.append(measure(f'deproject organized cloud {width}x{height}',
                            lambda depth=depth, intr=intr: deproject(depth, intr), repeat, target_ms=target))
    return rows
