"""Entry point: ``python -m robot_vision.sim`` runs the simulation evaluation (see robot_vision.sim.cli)."""

import sys

from robot_vision.sim.cli import main

if __name__ == '__main__':
    sys.exit(main())
