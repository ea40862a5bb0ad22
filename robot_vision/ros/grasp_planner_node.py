"""The grasp planner lifecycle node: 3D objects (from any 3D detector) + depth in; ranked grasps out."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from std_msgs.msg import String
from vision_msgs.msg import Detection3DArray

from robot_vision.detection import DetectorSettings
from robot_vision.perception3d.box_points import SupportPlaneStream, objects_with_box_points
from robot_vision.pipeline import FrameResult, PipelineSettings, scene_points
from robot_vision.ros import conversions as cv
from robot_vision.ros.diagnostics import ERROR
from robot_vision.ros.node_base import PipelineNode, main_for

_GRASPS = ('grasps', 'best_grasp', 'grasp_markers')


class GraspPlannerNode(PipelineNode):
    """Plan parallel-jaw grasps for the objects of a Detection3DArray on the synchronised depth image.

    Each object's cloud is the scene (depth) points inside its box grown by ``box_margin``, less
    the support plane fitted to the depth image, so any 3D detector's boxes work (ours, or e.g.
    Isaac ROS FoundationPose). Grasps are ranked best first (by score over all objects).
    The support plane is not refitted on every set: the plane of an earlier depth image is kept
    while, on every ``segmentation.plane_stride``-th pixel of the new one, the fraction of valid
    points within the segmentation inlier threshold of it is still at least 95 % of that fraction
    when it was fitted, and it was fitted fewer than 30 sets ago; otherwise (the floor or the
    camera moved, or objects now cover the floor) it is refitted
    (:class:`~robot_vision.perception3d.box_points.SupportPlaneStream`). Configuring starts afresh.

    Subscribed (relative, remappable; QoS by ``input_reliability``): ``objects`` (vision_msgs/
      Detection3DArray in the camera frame), ``camera/aligned_depth_to_color/image_raw``
      (sensor_msgs/Image 16UC1/32FC1, or CompressedImage by ``depth_transport``),
      ``camera/color/camera_info`` (sensor_msgs/CameraInfo);
      ``grasp_request`` (std_msgs/String, ``grasp_mode`` 'on_request' only: a Detection3D id to
      plan for that object, '' for all); ``/tf``, ``/tf_static`` for camera -> ``target_frame``.
    Published (in ``target_frame``, empty: the camera frame; at the objects' stamp): ``grasps``
      (geometry_msgs/PoseArray), ``scored_grasps`` (vision_msgs/Detection3DArray: the same grasps with
      their scores, each with the Detection3D id of its object), ``best_grasp`` (geometry_msgs/PoseStamped,
      when there is one),
      ``grasp_markers`` (visualization_msgs/MarkerArray), ``/diagnostics``. Without the transform
      nothing is published for that set (a 'tf' diagnostic says why).
    Parameters: robot_vision.ros.node_parameters (grasp_planner_node) plus the pipeline settings
      (``gripper.*``, ``grasping.*``, ``segmentation.*`` for the support plane, ``scene_voxel``).
    Processing: 'continuous' plans on the latest synchronised set on a worker thread (sets that
      arrive meanwhile replace the waiting one); 'on_request' keeps the latest set and plans on it
      once per request.
    """

    EXECUTABLE = 'grasp_planner_node'
    #: scored_grasps names the objects by the ids of the objects message, so _plan builds it itself.
    OUTPUTS = _GRASPS + ('scored_grasps',)

    def __init__(self, node_name: str = 'grasp_planner', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._latest: Optional[Dict[str, Any]] = None
        self._requests: List[str] = []
        self._request_lock = threading.Lock()
        self._support: Optional[SupportPlaneStream] = None

    def setup(self, settings: PipelineSettings) -> None:
        """Build the grasp planner; forget sets, requests and the support plane of before."""
        super().setup(dataclasses.replace(settings, detector=DetectorSettings(backend='depth')))  # no detector
        self._latest, self._requests = None, []
        self._support = SupportPlaneStream(settings.segmentation)

    def apply_settings(self, settings: PipelineSettings) -> None:
        """Settings changed at runtime: the support plane is fitted afresh with the new segmentation settings."""
        super().apply_settings(settings)
        self._support = SupportPlaneStream(settings.segmentation)

    def inputs(self) -> List[Tuple[str, type, str]]:
        """The objects and the depth image they were seen in."""
        return [('objects', Detection3DArray, self.params['objects_topic']),
                self.image_input('depth')]

    def extra_subscriptions(self) -> None:
        """The request topic, in 'on_request' mode."""
        if self.params['grasp_mode'] == 'on_request':
            self.subscribe(String, self.params['request_topic'], self._on_request)

    def _on_request(self, msg: String) -> None:
        if self._latest is None:
            text = (f'grasp request {msg.data!r} ignored: no objects and depth received yet on '
                    f'{self.resolve_topic_name(self.params["objects_topic"])} and '
                    f'{self.resolve_topic_name(self.params["depth_topic"])}')
            self.diag.problem('request', text)
            self.get_logger().warn(text, throttle_duration_sec=5.0)
            return
        with self._request_lock:
            self._requests.append(msg.data.strip())
        self.submit(self._latest)

    def process(self, msgs: Dict[str, Any]) -> None:
        """Plan for every object ('continuous') or for the waiting requests ('on_request') and publish."""
        self._latest = msgs
        if self.params['grasp_mode'] == 'continuous':
            self._plan(msgs, '')
            return
        with self._request_lock:
            requests, self._requests = self._requests, []
        for request in requests:
            self._plan(msgs, request)

    def _plan(self, msgs: Dict[str, Any], request: str) -> None:
        """Plan on one set for the objects whose Detection3D id is ``request`` ('' = all) and publish."""
        objects_msg = msgs['objects']
        ids = [d.id for d in objects_msg.detections]
        rows = [i for i, det_id in enumerate(ids) if not request or det_id == request]
        if request and not rows:
            text = f'grasp request {request!r}: no object with that id in the latest objects; ids available: {ids}'
            self.diag.problem('request', text, ERROR)
            self.get_logger().error(text)
            return
        frame = self.frame(depth=msgs['depth'])
        target = self.params['target_frame'] or frame.frame_id
        camera_to_target = self.lookup(target, frame.frame_id, frame.stamp, 'grasps')
        if camera_to_target is None:
            return
        settings, start = self.settings, time.perf_counter()
        points = scene_points(frame, settings.scene_voxel)
        plane = self._support.update(frame)
        objects = objects_with_box_points(cv.msg_to_objects(objects_msg)[rows], points, plane,
                                          float(self.params['box_margin']), settings.segmentation)
        prepared = time.perf_counter()
        grasps, reason = self.pipeline.plan_grasps(objects, points, frame.stamp, plane)
        result = FrameResult.empty(frame.stamp, target)
        result.grasps = dataclasses.replace(grasps, pose=camera_to_target @ grasps.pose)
        self.publish(result, _GRASPS, objects_msg.header.stamp)
        if self.outputs['scored_grasps'].get_subscription_count() > 0:
            self.outputs['scored_grasps'].publish(cv.grasps_to_detections(
                result.grasps, target, objects_msg.header.stamp, [ids[row] for row in rows], objects.class_id))
        warnings = [f'grasps: {reason}'] if rows and not len(grasps) else []
        planner = self.pipeline.grasp_planner
        self.diag.counts['grasp objects searched'] = planner.searched
        self.diag.counts['grasp objects kept (re-checked)'] = planner.reused
        self.finished(frame.stamp, {'prepare': (prepared - start) * 1e3,
                                    'grasps': (time.perf_counter() - prepared) * 1e3}, warnings)

def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision grasp_planner_node`` (Ctrl-C or external shutdown stop it)."""
    main_for(GraspPlannerNode, args)
