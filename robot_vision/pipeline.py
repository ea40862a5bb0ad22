"""The perception pipeline: detection -> 3D objects -> model refinement -> grasps -> tracks, per RGB-D frame.

The ROS nodes, the all-in-one node, bag replay and the simulation evaluation all run this one class,
so their results agree. Stages that have no input (no depth in a colour-only setup, or a disabled
stage) are skipped and return empty results; per-stage wall times are reported in milliseconds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from robot_vision.camera import depth_unit_problem
from robot_vision.config import dataclass_from_dict
from robot_vision.detection import DetectorSettings, create_detector, detections_from_objects
from robot_vision.errors import ConfigError
from robot_vision.grasping import GraspSettings, GripperModel
from robot_vision.grasping.stream import StreamGraspPlanner
from robot_vision.grasping.workers import SceneCloud
from robot_vision.perception3d import (
    RegistrationSettings,
    SegmentationSettings,
    objects_from_detections,
    register_model,
    segment_scene,
)
from robot_vision.types import CameraIntrinsics, Detections, Grasps, Objects3D, RGBDFrame, Tracks
from robot_vision.tracking import (
    Tracker,
    Tracker2D,
    Tracker2DSettings,
    Tracks2D,
    TrackerSettings,
    observations_from_objects,
)
from robot_vision.tracking.ids import detection_rows, untracked, with_track_ids


#: Settings the pipeline reads on every frame, so that :meth:`Pipeline.apply_live` can change them between
#: frames; the others are built into the detector, models, tracker and grasp planner.
LIVE_SETTINGS = ('segmentation', 'registration', 'enable_grasps', 'enable_tracking', 'scene_voxel')


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of every stage; build from the YAML ``robot_vision`` section with :meth:`from_dict`.

    ``detector.backend`` picks the detector ('depth' needs no model). ``object_models`` maps a class
    name (or numeric class id as a string) to a model point-cloud file (.xyz/.pcd/.ply) used to refine
    that class's pose by registration. ``fixed_frame`` names the frame tracks are expressed in.
    ``scene_voxel`` (m): voxel size of the depth cloud grasp planning checks collisions against;
    0 (default) keeps every valid depth point, which is faster than downsampling the whole frame and
    lets the exact checks see real points rather than voxel means (about twice the grasps found).
    """

    detector: DetectorSettings = field(default_factory=lambda: DetectorSettings(backend='depth'))
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    gripper: GripperModel = field(default_factory=GripperModel)
    grasping: GraspSettings = field(default_factory=GraspSettings)
    tracking: TrackerSettings = field(default_factory=TrackerSettings)
    tracking_2d: Tracker2DSettings = field(default_factory=Tracker2DSettings)
    object_models: Tuple[Tuple[str, str], ...] = ()
    enable_grasps: bool = True
    enable_tracking: bool = True
    fixed_frame: str = 'odom'
    scene_voxel: float = 0.0

    def __post_init__(self) -> None:
        """Normalise ``object_models`` to a tuple of (class, path) pairs."""
        models = self.object_models
        if isinstance(models, Mapping):
            models = tuple(sorted((str(k), str(v)) for k, v in models.items()))
        object.__setattr__(self, 'object_models', tuple(tuple(m) for m in models))
        if not self.scene_voxel >= 0:
            raise ConfigError(f'PipelineSettings.scene_voxel: expected >= 0 metres, got {self.scene_voxel}')

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> PipelineSettings:
        """Build from a nested dict; unknown or mistyped keys raise ConfigError naming the key path."""
        data = dict(data or {})
        models = data.pop('object_models', None)
        settings = dataclass_from_dict(cls, data, 'robot_vision')
        if models is not None:
            if not isinstance(models, Mapping):
                raise ConfigError(f'robot_vision.object_models: expected a mapping class -> model file, '
                                  f'got {type(models).__name__}')
            settings = dataclasses.replace(settings, object_models=models)
        return settings


@dataclass
class FrameResult:
    """Everything the pipeline found in one frame (objects and grasps in the camera frame)."""

    stamp: float
    frame_id: str
    fixed_frame: str
    intrinsics: CameraIntrinsics
    detections: Detections
    objects: Objects3D
    grasps: Grasps
    grasp_reason: str
    tracks: Tracks
    plane: Optional[np.ndarray]
    tracks_2d: Optional[Tracks2D]
    class_names: Dict[int, str]
    timings_ms: Dict[str, float] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def empty(cls, stamp: float, frame_id: str, fixed_frame: str = '',
              intrinsics: Optional[CameraIntrinsics] = None, class_names: Optional[Dict[int, str]] = None
              ) -> FrameResult:
        """A result with nothing found yet, for stages run on their own (the separate nodes fill it in)."""
        return cls(stamp=stamp, frame_id=frame_id, fixed_frame=fixed_frame, intrinsics=intrinsics,
                   detections=Detections.empty(), objects=Objects3D.empty(), grasps=Grasps.empty(),
                   grasp_reason='', tracks=Tracks.empty(), plane=None, tracks_2d=None,
                   class_names=dict(class_names or {}))


class _Lap:
    """Context manager adding a stage's wall time (ms) to ``timings[stage]``."""

    def __init__(self, timings: Dict[str, float], stage: str) -> None:
        self._timings, self._stage = timings, stage

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self._timings[self._stage] = (time.perf_counter() - self._start) * 1e3
        self._timings['total'] = float(sum(v for k, v in self._timings.items() if k != 'total'))


class Pipeline:
    """Run detection, 3D estimation, registration, grasp planning and tracking on RGB-D frames."""

    def __init__(self, settings: PipelineSettings = PipelineSettings(), grasp_processes: int = 0) -> None:
        """``grasp_processes`` > 0: plan grasps in that many processes (:mod:`robot_vision.grasping.workers`)."""
        self._settings = settings
        self._detector = None if settings.detector.backend == 'depth' else create_detector(
            settings.detector.backend, settings.detector)
        self._models = {name: _load_model(path) for name, path in settings.object_models}
        self._tracker = Tracker(settings.tracking)
        self._tracker_2d = Tracker2D(settings.tracking_2d)
        self._grasp_planner = StreamGraspPlanner(settings.gripper, settings.grasping, grasp_processes)

    @property
    def settings(self) -> PipelineSettings:
        """The settings the pipeline was built with."""
        return self._settings

    def apply_live(self, settings: PipelineSettings) -> None:
        """Use ``settings``' LIVE_SETTINGS from the next frame on (the other sections stay as built)."""
        self._settings = dataclasses.replace(self._settings, **{name: getattr(settings, name)
                                                               for name in LIVE_SETTINGS})

    @property
    def class_names(self) -> Dict[int, str]:
        """Class id -> name of the detector (empty for the class-agnostic depth backend)."""
        return {} if self._detector is None else dict(enumerate(self._detector.class_names))

    def reset(self) -> None:
        """Forget all tracks and kept grasps (e.g. when a bag loops or time jumps back)."""
        self._tracker.reset()
        self._tracker_2d.reset()
        self._grasp_planner.reset()

    @property
    def grasp_planner(self) -> StreamGraspPlanner:
        """The grasp planner of the stream (its counters say how many objects were searched or kept)."""
        return self._grasp_planner

    def close(self) -> None:
        """Release the detector's resources and stop the grasp worker processes."""
        if self._detector is not None:
            self._detector.close()
        self._grasp_planner.close()

    def process(self, frame: RGBDFrame, track: bool = True) -> FrameResult:
        """Process one frame; see :class:`FrameResult`. Raises InputError for unusable frames.

        ``track=False`` leaves the tracker untouched for this frame (e.g. when the camera -> fixed
        frame transform is unavailable) and returns no tracks. The same as :meth:`perceive`, then
        :meth:`add_tracks`, then :meth:`add_grasps` (the all-in-one node publishes between them).
        """
        result = self.perceive(frame)
        self.add_tracks(result, frame, track)
        self.add_grasps(result, frame)
        return result

    def perceive(self, frame: RGBDFrame) -> FrameResult:
        """Detection and 3D objects of one frame: a FrameResult without grasps ('pending') and tracks."""
        warnings: List[str] = []
        timings: Dict[str, float] = {}
        if frame.depth is not None:
            problem = depth_unit_problem(frame.depth)
            if problem:
                warnings.append(problem)
        with _Lap(timings, 'segment' if self._detector is None else 'detect'):
            detections, objects, plane = self.detect(frame, warnings)
        if frame.depth is not None:  # the depth backend's segmentation already gave the objects
            objects = self.estimate(frame, detections, self.class_names, warnings, timings,
                                    objects if self._detector is None else None)
        result = FrameResult(stamp=frame.stamp, frame_id=frame.frame_id, fixed_frame=self._settings.fixed_frame,
                             intrinsics=frame.intrinsics, detections=detections, objects=objects,
                             grasps=Grasps.empty(), grasp_reason='pending', tracks=Tracks.empty(), plane=plane,
                             tracks_2d=None, class_names=self.class_names, timings_ms=timings, warnings=warnings)
        return result

    def estimate(self, frame: RGBDFrame, detections: Detections, class_names: Mapping[int, str],
                 warnings: List[str], timings: Dict[str, float], objects: Optional[Objects3D] = None) -> Objects3D:
        """3D objects of 2D ``detections`` on the frame's depth (unless ``objects`` are given), model-refined.

        Classes with a model in ``object_models`` (named through ``class_names``) are refined by
        registration. Stage times go into ``timings`` ('objects_3d', 'register'), problems into ``warnings``.
        """
        if objects is None:
            with _Lap(timings, 'objects_3d'):
                objects = objects_from_detections(frame, detections, self._settings.segmentation)
        if self._models and len(objects):
            with _Lap(timings, 'register'):
                objects = self.refine(objects, class_names, warnings)
        return objects

    def detect(self, frame: RGBDFrame, warnings: List[str]) -> Tuple[Detections, Objects3D, Optional[np.ndarray]]:
        """Run the detector: (detections, objects, support plane).

        The class-agnostic ``depth`` backend segments the depth image, so it returns the 3D objects
        and the plane too; model backends return empty objects and no plane. Segmentation problems
        are appended to ``warnings``.
        """
        if self._detector is not None:
            return self._detector.detect(frame), Objects3D.empty(), None
        if frame.depth is None:
            raise ConfigError('the depth detector backend needs depth images; this frame has none')
        scene = segment_scene(frame, self._settings.segmentation)
        if scene.status != 'ok':
            warnings.append(f'segmentation: {scene.status}')
        return detections_from_objects(scene.objects), scene.objects, scene.plane

    def add_tracks(self, result: FrameResult, frame: RGBDFrame, track: bool = True) -> None:
        """Update the tracker with ``result``'s objects (2D detections without depth) and store the tracks.

        Each detection's ``tracker_id`` becomes the id of the track its object updated or started
        (``NO_ID`` where none, and for every detection of a frame that ``track=False`` skips); see
        :mod:`robot_vision.tracking.ids`.
        """
        if not self._settings.enable_tracking:
            return
        if not track:
            result.detections = untracked(result.detections)
            return
        with _Lap(result.timings_ms, 'track'):
            if frame.depth is None:
                result.tracks_2d = self._tracker_2d.update(result.detections, frame.stamp)
                result.detections = with_track_ids(result.detections, self._tracker_2d.assigned_ids)
            else:
                observations = observations_from_objects(result.objects, frame.camera_to_fixed)
                result.tracks = self._tracker.update(observations, frame.stamp)
                result.detections = with_track_ids(result.detections, self._tracker.assigned_ids,
                                                   detection_rows(result.objects, len(result.detections)))

    def prepare_grasps(self, frame: RGBDFrame) -> None:
        """Let idle grasp worker processes deproject ``frame``'s depth while its objects are found (optional)."""
        if self._settings.enable_grasps and frame.depth is not None:
            self._grasp_planner.prepare(frame.stamp, self._scene(frame))

    def add_grasps(self, result: FrameResult, frame: RGBDFrame) -> None:
        """Plan grasps for ``result``'s objects on ``frame``'s depth and store them (and the reason)."""
        if not self._settings.enable_grasps:
            result.grasp_reason = 'disabled'
            return
        with _Lap(result.timings_ms, 'grasps'):
            if frame.depth is None:
                result.grasps, result.grasp_reason = Grasps.empty(), 'no depth'
            else:
                result.grasps, result.grasp_reason = self.plan_grasps(result.objects, self._scene(frame), frame.stamp,
                                                                      result.plane)

    def plan_grasps(self, objects: Objects3D, scene: Union[SceneCloud, np.ndarray], stamp: float,
                    plane: Optional[np.ndarray] = None) -> Tuple[Grasps, str]:
        """Plan grasps for ``objects`` of the frame stamped ``stamp`` in ``scene`` (SceneCloud or (N, 3) points).

        Returns (grasps best first, reason). Objects still where they were in the previous frame
        keep their grasps once these pass the final checks again (see
        :mod:`robot_vision.grasping.stream`).
        """
        if not len(objects):
            return Grasps.empty(), 'no objects'
        result = self._grasp_planner.plan(objects, scene, stamp, support_normal=plane)
        return result.grasps.best_first(), result.reason

    def _scene(self, frame: RGBDFrame) -> SceneCloud:
        return SceneCloud(frame.depth, frame.intrinsics, self._settings.scene_voxel)

    def track(self, objects: Objects3D, stamp: float, camera_to_fixed: Optional[np.ndarray] = None) -> Tracks:
        """Update the 3D tracker with objects seen at ``stamp`` (camera frame, moved by ``camera_to_fixed``)."""
        return self._tracker.update(observations_from_objects(objects, camera_to_fixed), stamp)

    def refine(self, objects: Objects3D, class_names: Mapping[int, str], warnings: List[str]) -> Objects3D:
        """Refine the poses of objects whose class has a model (``object_models``) by registration.

        ``class_names`` maps class ids to the names ``object_models`` uses; failures are appended to
        ``warnings`` and keep the measured pose.
        """
        names = class_names
        poses = objects.pose.copy()
        for i in range(len(objects)):
            class_id = int(objects.class_id[i])
            model = self._models.get(names.get(class_id, str(class_id)))
            if model is None or len(objects.points[i]) < 10:
                continue
            result = register_model(model, objects.points[i], self._settings.registration)
            if result.accepted:
                poses[i] = result.pose
            else:
                warnings.append(f'registration of object {i} ({names.get(class_id, class_id)}): {result.status}')
        return dataclasses.replace(objects, pose=poses)

def scene_points(frame: RGBDFrame, voxel: float) -> np.ndarray:
    """Valid scene points (N, 3) float32 of a frame, voxel-downsampled for collision checks."""
    return SceneCloud(frame.depth, frame.intrinsics, voxel).points


def _load_model(path: str) -> np.ndarray:
    from pathlib import Path

    from robot_vision.datasets import load_pcd_points
    from robot_vision.errors import InputError
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f'object model file not found: {file}')
    if file.suffix == '.pcd':
        return load_pcd_points(file)
    if file.suffix in ('.xyz', '.txt'):
        return np.loadtxt(file, dtype=np.float32).reshape(-1, 3)
    if file.suffix in ('.ply', '.obj', '.stl'):
        import open3d as o3d
        cloud = o3d.io.read_point_cloud(str(file))
        points = np.asarray(cloud.points, np.float32)
        if not len(points):
            raise InputError(f'object model {file}: no points could be read')
        return points
    raise ConfigError(f'object model {file}: expected a .pcd, .xyz, .ply, .obj or .stl file')
