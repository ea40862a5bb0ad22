"""The all-in-one perception lifecycle node: RGB-D in; detections, 3D objects, grasps and tracks out."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, List, Optional, Tuple


from robot_vision.pipeline import FrameResult, Pipeline, PipelineSettings
from robot_vision.ros.node_base import PipelineNode, main_for
from robot_vision.ros.topics import OUTPUT_TOPICS
from robot_vision.types import RGBDFrame

#: Topics published once a frame's objects are tracked (so that their ids are track ids), and after grasp planning.
_PERCEPTION = ('detections', 'instance_labels', 'objects', 'object_points', 'object_markers')
_TRACKS = ('tracked_objects', 'track_markers', 'obstacles')
_GRASPS = ('grasps', 'scored_grasps', 'best_grasp', 'grasp_markers')


class PerceptionNode(PipelineNode):
    """Run the whole robot_vision pipeline in one process (the lowest-latency setup).

    Subscribed (relative, remappable; sensor-data QoS by default, see ``input_reliability``):
      ``camera/color/image_raw`` (sensor_msgs/Image), ``camera/aligned_depth_to_color/image_raw``
      (sensor_msgs/Image 16UC1/32FC1), ``camera/color/camera_info`` (sensor_msgs/CameraInfo); with
      ``color_transport`` / ``depth_transport`` 'compressed' / 'compressedDepth' the images' image_transport
      sub-topics (sensor_msgs/CompressedImage) instead;
      ``/tf``, ``/tf_static`` for camera -> ``fixed_frame``. ``mode`` picks the images.
    Published: every topic of robot_vision.ros.topics.OUTPUT_TOPICS and ``/diagnostics``. Per
      frame, detections, objects and tracks go out together once the frame is tracked (with
      ``enable_tracking`` every object's id on ``detections``, ``instance_labels``, ``objects``,
      its markers and ``scored_grasps`` is its track id, stable across frames; '' for an object
      without a track, e.g. in a frame without a camera pose: robot_vision.tracking.ids); grasps
      and the overlay follow from a second worker thread (latest frame only), so that the slowest
      stage, grasp planning, never delays the perception of the next frame. The grasp topics are
      in ``target_frame`` (empty: the camera frame), transformed through TF at the image stamp;
      without that transform they are not published for the frame (a 'tf' diagnostic and a
      throttled warning say why).
    Parameters: robot_vision.ros.node_parameters (perception_node) plus every pipeline setting.
    Processing: always the latest synchronised frame on a worker thread; frames that arrive while
    one is being processed replace the waiting one and are counted as dropped.
    """

    EXECUTABLE = 'perception_node'
    OUTPUTS = tuple(topic.name for topic in OUTPUT_TOPICS)

    def __init__(self, node_name: str = 'robot_vision', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._grasp_worker = None

    def setup(self, settings: PipelineSettings) -> None:
        """Build the pipeline with ``grasp_processes`` grasp worker processes (loads the detector model).

        The worker processes run their BLAS and OpenMP single-threaded (:mod:`robot_vision.processes`,
        unless the environment sets the thread counts), restarted ones too: a grasp search is many
        small matrix products, and OpenBLAS's own threads made the searches cost 1.6-1.9x the CPU time.
        """
        self.pipeline = Pipeline(settings, grasp_processes=self.params['grasp_processes'])

    def inputs(self) -> List[Tuple[str, type, str]]:
        """Colour and/or depth, by ``mode``."""
        mode = self.params['mode']
        chosen = []
        if mode in ('rgbd', 'color'):
            chosen.append(self.image_input('color'))
        if mode in ('rgbd', 'depth'):
            chosen.append(self.image_input('depth'))
        return chosen

    def activated(self) -> None:
        """Publish the detector's class names once (latched) and start the grasp worker."""
        self.publish_label_info(self.pipeline.class_names)
        self._grasp_worker = self.worker('grasps', self._plan_grasps)

    def process(self, msgs: Dict[str, Any]) -> None:
        """Detect, estimate and track one frame and publish that; grasps are planned on their own worker."""
        frame = self.frame(msgs.get('color'), msgs.get('depth'))
        self.pipeline.prepare_grasps(frame)
        stamp = next(iter(msgs.values())).header.stamp
        settings = self.pipeline.settings
        if settings.enable_tracking:  # the camera pose also gives segmentation its floor prior
            frame.camera_to_fixed = self.lookup(settings.fixed_frame, frame.frame_id, frame.stamp, 'tracking')
        result = self.pipeline.perceive(frame)
        self.pipeline.add_tracks(result, frame, track=frame.camera_to_fixed is not None)
        start = time.perf_counter()
        self.publish(result, _PERCEPTION + (_TRACKS if settings.enable_tracking else ()), stamp)
        self.diag.stage('publish objects', (time.perf_counter() - start) * 1e3)
        self.finished(frame.stamp, result.timings_ms, result.warnings)
        self._grasp_worker.submit((result, frame, stamp))
        self.diag.counts['grasp sets dropped (planning slower than frames)'] = self._grasp_worker.dropped

    def _plan_grasps(self, item: Tuple[FrameResult, RGBDFrame, Any]) -> None:
        """Plan grasps for a perceived frame, publish them and the overlay that shows everything."""
        result, frame, stamp = item
        self.pipeline.add_grasps(result, frame)
        target = self.params['target_frame']
        if not target or target == frame.frame_id:
            self.publish(result, _GRASPS, stamp)
        else:  # the grasps in target_frame (the overlay below draws them in the camera image)
            camera_to_target = self.lookup(target, frame.frame_id, frame.stamp, 'grasps')
            if camera_to_target is not None:
                grasps = dataclasses.replace(result.grasps, pose=camera_to_target @ result.grasps.pose)
                self.publish(dataclasses.replace(result, frame_id=target, grasps=grasps), _GRASPS, stamp)
        if frame.color is not None:
            self.publish(result, ['detections_overlay'], stamp, frame.color, frame.camera_to_fixed)
        if 'grasps' in result.timings_ms:
            self.diag.stage('grasps', result.timings_ms['grasps'])
        planner = self.pipeline.grasp_planner
        self.diag.counts['grasp objects searched'] = planner.searched
        self.diag.counts['grasp objects kept (re-checked)'] = planner.reused
        self.diag.stage('latency to grasps', self.latency_ms(frame.stamp))


def main(args: Optional[List[str]] = None) -> None:
    """Entry point: ``ros2 run robot_vision perception_node`` (Ctrl-C or external shutdown stop it)."""
    main_for(PerceptionNode, args)
