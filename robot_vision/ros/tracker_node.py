"""The tracker lifecycle node: camera-frame 3D objects in; tracks, markers and obstacles in the fixed frame out."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from vision_msgs.msg import Detection3DArray

from robot_vision.pipeline import FrameResult, PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.node_base import PipelineNode, main_for
from robot_vision.tracking import Tracker, observations_from_objects

_TRACKS = ('tracked_objects', 'track_markers', 'obstacles')


class TrackerNode(PipelineNode):
    """Track the objects of a Detection3DArray (from any 3D detector) in ``fixed_frame``.

    Subscribed (relative, remappable; QoS by ``input_reliability``): ``objects`` (vision_msgs/
      Detection3DArray in a camera frame); ``/tf``, ``/tf_static`` for the objects' frame ->
      ``fixed_frame`` at the message stamp.
    Published (in ``fixed_frame``, at the objects' stamp): ``tracked_objects`` (vision_msgs/
      Detection3DArray, ``id`` = track id), ``track_markers`` (visualization_msgs/MarkerArray: boxes,
      velocity arrows, ids), ``obstacles`` (sensor_msgs/PointCloud2 on the tracks' boxes, for a Nav2
      obstacle layer), ``/diagnostics``. Without the transform the message is skipped (a 'tf'
      diagnostic says why) and the tracker is left untouched; so is a message whose stamp is not
      after the last one (a 'tracker' diagnostic).
    Parameters: robot_vision.ros.node_parameters (tracker_node) plus the pipeline settings
      (``fixed_frame``, ``tracking.*``).
    Processing: the latest message on a worker thread; messages that arrive meanwhile replace the
      waiting one (the filter runs on the stamps, so a skipped message only widens the interval).
    """

    EXECUTABLE = 'tracker_node'
    OUTPUTS = _TRACKS
    USES_CAMERA_INFO = False

    def __init__(self, node_name: str = 'tracker', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.tracker: Optional[Tracker] = None

    def setup(self, settings: PipelineSettings) -> None:
        """Create the tracker."""
        self.tracker = Tracker(settings.tracking)

    def reset_state(self) -> None:
        """Forget the tracks (time went back)."""
        self.tracker.reset()

    def teardown(self) -> None:
        """Forget the tracks."""
        self.tracker = None

    def inputs(self) -> List[Tuple[str, type, str]]:
        """The objects to track."""
        return [('objects', Detection3DArray, self.params['objects_topic'])]

    def process(self, msgs: Dict[str, Any]) -> None:
        """Move the objects into the fixed frame, update the tracker and publish the tracks."""
        msg = msgs['objects']
        stamp = cv.stamp_to_seconds(msg.header.stamp)
        fixed = self.settings.fixed_frame
        camera_to_fixed = self.lookup(fixed, msg.header.frame_id, stamp, 'tracking')
        if camera_to_fixed is None:
            return
        start = time.perf_counter()
        observations = observations_from_objects(cv.msg_to_objects(msg), camera_to_fixed)
        result = FrameResult.empty(stamp, msg.header.frame_id, fixed)
        result.tracks = self.tracker.update(observations, stamp)
        if self.tracker.rejected_reason:  # a stamp not after the last one: nothing new to publish
            self.diag.problem('tracker', self.tracker.rejected_reason)
            return
        self.publish(result, _TRACKS, msg.header.stamp)
        self.finished(stamp, {'track': (time.perf_counter() - start) * 1e3})


def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision tracker_node`` (Ctrl-C or external shutdown stop it)."""
    main_for(TrackerNode, args)
