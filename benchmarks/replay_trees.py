"""Replay speed of two source trees (before / after a change) in one run, on the same bags and the same machine.

For each bag, each tree replays it in a child process (``PYTHONPATH`` = the tree) with ``--workers``
processes, twice: a short run and a long one, so that start-up (imports, worker processes, the
report) cancels out of the per-frame CPU time. Trees alternate round by round, so both see the same
machine load. Prints per tree: frames/s and real-time factor of the long run, CPU per frame of the
replay process and of its children (frame workers, grasp process), the load average, and at the end
the ratios after / before and whether the per-frame results (``results.json``) are identical.

    git worktree add /tmp/before <commit>      # or: git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python -m benchmarks.replay_trees /tmp/before . [--frames 300] [--hd-frames 40] [--rounds 2]

Bags: the bundled one looped to ``--frames`` at 15 Hz (640x480) and, with ../shared/data, GraspNet's
1280x720 RealSense views (:func:`benchmarks.bench_replay.graspnet_bag`, ``--hd-frames``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = '''
import json, resource, sys
from pathlib import Path
from robot_vision.replay import ReplaySettings, replay
bag, out, frames, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
run = replay(bag, out, settings=ReplaySettings(workers=workers, max_frames=frames), progress=None)
after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = [a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before)]
print(json.dumps({'self_s': cpu[0], 'children_s': cpu[1], **run.summary['run']}))
'''


def _replay(tree: Path, bag: Path, out: Path, frames: int, workers: int) -> dict:
    env = {**os.environ, 'PYTHONPATH': str(tree)}
    done = subprocess.run([sys.executable, '-c', CHILD, str(bag), str(out), str(frames), str(workers)], env=env,
                          cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(tree: Path, bag: Path, tmp: Path, frames: int, short: int, workers: int) -> dict:
    load = os.getloadavg()[0]
    a = _replay(tree, bag, tmp / 'short', short, workers)
    b = _replay(tree, bag, tmp / 'long', frames, workers)
    n = b['frames_processed'] - a['frames_processed']
    results = json.loads((tmp / 'long' / 'results.json').read_text())['frames']
    return {'fps': b['throughput_fps'], 'real_time_factor': b['real_time_factor'], 'wall_s': b['wall_s'],
            'parent_ms_per_frame': (b['self_s'] - a['self_s']) / n * 1e3,
            'children_ms_per_frame': (b['children_s'] - a['children_s']) / n * 1e3,
            'load_1min': round(load, 2), 'results': results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m benchmarks.replay_trees', description=__doc__.splitlines()[0])
    parser.add_argument('before', type=Path, help='source tree of the reference (e.g. a git worktree)')
    parser.add_argument('after', type=Path, help='source tree of the change')
    parser.add_argument('--frames', type=int, default=300, help='frames of the looped 640x480 bag (300)')
    parser.add_argument('--hd-frames', type=int, default=40, help='frames of the 1280x720 bag (40; 0: skip)')
    parser.add_argument('--workers', type=int, default=2, help='replay --workers (2)')
    parser.add_argument('--rounds', type=int, default=2, help='alternating rounds per bag (2)')
    args = parser.parse_args(argv)
    from benchmarks.bench_replay import graspnet_bag, looped_bag
    from robot_vision.datasets import shared_data_dir
    trees = {'before': args.before.resolve(), 'after': args.after.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bags = [('640x480', looped_bag(tmp / 'looped', args.frames), args.frames)]
        if args.hd_frames and shared_data_dir() is not None and (shared_data_dir() / 'real_clutter').is_dir():
            bags.append(('1280x720', graspnet_bag(tmp / 'graspnet', args.hd_frames), args.hd_frames))
        for label, bag, frames in bags:
            short = max(2, frames // 8)
            rows = {name: [] for name in trees}
            for k in range(args.rounds):
                for name, tree in trees.items():
                    row = _measure(tree, bag, tmp / f'{label}-{name}-{k}', frames, short, args.workers)
                    rows[name].append(row)
                    print(f'{label} round {k} {name:6}: ' + ', '.join(
                        f'{key} {value:.3g}' for key, value in row.items() if key != 'results'), flush=True)
            for key in ('wall_s', 'parent_ms_per_frame', 'children_ms_per_frame'):
                ratios = [a[key] / b[key] for a, b in zip(rows['after'], rows['before'])]
                print(f'{label} after / before, {key}: ' + ', '.join(f'{r:.3f}' for r in ratios))
            total = [(a['parent_ms_per_frame'] + a['children_ms_per_frame'])
                     / (b['parent_ms_per_frame'] + b['children_ms_per_frame'])
                     for a, b in zip(rows['after'], rows['before'])]
            print(f'{label} after / before, CPU per frame: ' + ', '.join(f'{r:.3f}' for r in total))
            print(f'{label} identical results: '
                  f'{all(row["results"] == rows["before"][0]["results"] for name in trees for row in rows[name])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
