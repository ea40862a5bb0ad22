"""Command-line interface: ``robot-vision <command>`` or ``python -m robot_vision <command>``."""

import argparse
import sys
from typing import List, Optional

from robot_vision import __version__


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog='robot-vision', description=__doc__)
    parser.add_argument('--version', action='version', version=f'robot_vision {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    from robot_vision.replay.cli import register as register_replay
    register_replay(subparsers)
    from robot_vision.sim.cli import register as register_sim
    register_sim(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.handler(args) or 0)
