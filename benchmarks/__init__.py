"""Benchmarks of robot_vision: ``python -m benchmarks`` prints a table and writes JSON."""
