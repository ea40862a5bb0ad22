"""The simulation evaluation command: ``robot-vision sim-eval`` and ``python -m robot_vision.sim``.

Both build their options with :func:`add_arguments` and run :func:`run_from_args`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from robot_vision.errors import ConfigError
from robot_vision.sim.noise import NOISE_MODELS
from robot_vision.sim.scene import CONTAINERS, DEFAULT_KINDS, OBJECT_KINDS

_DESCRIPTION = ('Generate tabletop, bin or shelf scenes in MuJoCo, run perception (instances, 2D detection, poses) and '
                'closed-loop top-1 grasps on them against ground truth, optionally score tracking on '
                'moving-object sequences, and write OUT/report.json and OUT/report.md.')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the evaluation options (shared by ``robot-vision sim-eval`` and ``python -m robot_vision.sim``)."""
    parser.add_argument('--scenes', type=int, default=20, help='number of generated scenes (default 20)')
    parser.add_argument('--seed', type=int, default=0, help='scene k uses seed SEED * 100003 + k (default 0)')
    parser.add_argument('--out', default='artifacts/sim_eval',
                        help='output folder for report.json and report.md (default artifacts/sim_eval)')
    parser.add_argument('--noise', default='kinect', choices=NOISE_MODELS, help='depth noise model (default kinect)')
    parser.add_argument('--clutter', default='isolated,clutter',
                        help='comma-separated clutter levels the scenes cycle through: isolated, clutter, dense '
                             '(default isolated,clutter)')
    parser.add_argument('--views', default='tabletop', help="camera preset: 'tabletop' (0.5-1 m, 45-75 deg "
                        "above the table) or 'hard' (0.4-2 m, 45-90 deg: top-down, steep and far)")
    parser.add_argument('--container', default='none', choices=CONTAINERS,
                        help="put the objects in a 'bin' (open tote, seen from above at 45-90 deg) or a 'shelf' "
                             "cubby (seen from the front, 0.4-0.8 m, 5-25 deg above); its camera ranges replace "
                             "--views; the walls are background (default none: objects on the table)")
    parser.add_argument('--kinds', default=','.join(DEFAULT_KINDS),
                        help='comma-separated object kinds to draw from, each equally likely (a kind named twice '
                             f"twice as often): {', '.join(OBJECT_KINDS)} (default {','.join(DEFAULT_KINDS)}; "
                             "'cup' adds open mugs without handle, whose near rim hides their inside; "
                             "'bowl' open bowls with a scalloped rim)")
    parser.add_argument('--no-grasping', action='store_true', help='perception only')
    parser.add_argument('--top-k', type=int, default=1, help='also execute the k best planner grasps (default 1)')
    parser.add_argument('--tracking-sequences', type=int, default=0,
                        help='also score tracking (CLEAR-MOT) on this many moving-object sequences (default 0)')
    parser.add_argument('--grasp-source', default='planner', choices=('planner', 'oracle'),
                        help='planner: robot_vision.grasping top-1; oracle: ground-truth top-down grasp')
    parser.add_argument('--quiet', action='store_true', help='no progress bar and no report on stdout')


def run_from_args(args: argparse.Namespace) -> int:
    """Run the evaluation the options ask for, write the reports and return the exit code (2: bad options)."""
    from robot_vision.sim.evaluate import (EvaluationSettings, render_markdown, run_evaluation,
                                           run_tracking_evaluation, write_reports)
    progress = None if args.quiet else sys.stderr
    started = time.perf_counter()
    try:
        if args.tracking_sequences < 0:
            raise ConfigError(f'--tracking-sequences: expected >= 0, got {args.tracking_sequences}')
        settings = EvaluationSettings(clutter_levels=tuple(c.strip() for c in args.clutter.split(',')),
                                      views=args.views, container=args.container, noise=args.noise,
                                      kinds=tuple(k.strip() for k in args.kinds.split(',')),
                                      grasping=not args.no_grasping,
                                      grasp_source=args.grasp_source, top_k=args.top_k)
        report = run_evaluation(args.scenes, args.seed, None, settings, progress=progress)
    except ConfigError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if args.tracking_sequences > 0:
        report['tracking'] = run_tracking_evaluation(args.tracking_sequences, args.seed, noise=args.noise,
                                                     progress=progress)
    report['total_wall_time_s'] = time.perf_counter() - started
    json_path, md_path = write_reports(report, args.out)
    if not args.quiet:
        print(render_markdown(report))
    print(f'reports: {json_path.resolve()} and {md_path.name} (total wall time {report["total_wall_time_s"]:.1f} s)')
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sim-eval`` sub-command to the ``robot-vision`` parser."""
    parser = subparsers.add_parser('sim-eval', help='evaluate perception, grasping and tracking on simulated scenes',
                                   description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=run_from_args)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m robot_vision.sim [options]``: the same as ``robot-vision sim-eval [options]``."""
    parser = argparse.ArgumentParser(prog='python -m robot_vision.sim', description=_DESCRIPTION)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
