"""3D multi-object tracking in a fixed frame (and a 2D image-space mode), with CLEAR-MOT metrics.

Typical use (the ROS layer supplies ``camera_to_fixed`` for each frame's stamp)::

    tracker = Tracker(TrackerSettings())
    obs = observations_from_objects(objects_in_camera_frame, camera_to_fixed)
    tracks = tracker.update(obs, stamp)      # types.Tracks in the fixed frame
"""

from robot_vision.geometry import box_iou
from robot_vision.tracking.metrics import MotAccumulator, MotMetrics, clear_mot
from robot_vision.tracking.observations import Observations, observations_from_objects
from robot_vision.tracking.settings import LifecycleSettings, Tracker2DSettings, TrackerSettings
from robot_vision.tracking.tracker import Tracker
from robot_vision.tracking.tracker2d import Tracker2D, Tracks2D

__all__ = [
    'LifecycleSettings', 'MotAccumulator', 'MotMetrics', 'Observations', 'Tracker', 'Tracker2D',
    'Tracker2DSettings', 'TrackerSettings', 'Tracks2D', 'box_iou', 'clear_mot', 'observations_from_objects',
]
