"""Soak: the all-in-one perception node streamed 1280x720 real RGB-D at 15 Hz for 10 minutes.

The stream of :mod:`benchmarks.bench_node_stream` (its warm-up, reliable QoS, DDS profile and
outputs) with the two RealSense D435 frames of GraspNet-1Billion scene 0000 (1280x720, colour and
depth) in turn. Prints the latency rows, the RSS of the node and its grasp workers sampled every
10 s (growth after the warm-up minute), the frames dropped by the latest-frame policy and the
node's errors. Not part of ``python -m benchmarks`` (it takes 11 minutes):

    .venv/bin/python -m benchmarks.soak_node [--seconds 600]
"""

import argparse
import os
import sys

from benchmarks.bench_node_stream import _camera_pose, _stream
from benchmarks.__main__ import format_row
from robot_vision.datasets import shared_data_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m benchmarks.soak_node', description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=600.0, help='measured seconds after the warm-up (600)')
    args = parser.parse_args(argv)
    if shared_data_dir() is None or not (shared_data_dir() / 'real_clutter').is_dir():
        print('skipped: ../shared/data/real_clutter not found')
        return 0
    from robot_vision.real_scenes import load_graspnet
    frames = [row.frame for row in load_graspnet() if '/realsense/' in row.name]
    for frame in frames:
        frame.camera_to_fixed = None  # the stream publishes its own static camera pose on TF
    print(f'load average at start {os.getloadavg()}', flush=True)
    rows = _stream('single', 'rgbd', frames, _camera_pose(frames[0]), args.seconds, 150 + os.getpid() % 50)
    for result in rows:
        print(format_row(result), {k: v for k, v in result.items()
                                   if k not in ('name', 'value', 'unit', 'target', 'ok')} or '', flush=True)
    print(f'load average at end {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
