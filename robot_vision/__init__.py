"""robot_vision: RGB-D perception core (detection, segmentation, 6-DoF pose, grasps, tracking)."""

from robot_vision._version import __version__

__all__ = ['__version__']
