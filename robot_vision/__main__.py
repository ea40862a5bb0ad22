"""``python -m robot_vision``: the command-line interface (see robot_vision.cli)."""

from robot_vision.cli import main

raise SystemExit(main())
