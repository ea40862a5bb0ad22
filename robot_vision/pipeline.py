"""The perception pipeline: detection -> 3D objects -> model refinement -> grasps -> tracks, per RGB-D frame.

The ROS nodes, the all-in-one node, bag replay and the simulation evaluation all run this one class,
so their results agree. Stages that have no input (no depth in a colour-only setup, or a disabled
stage) are skipped and return empty results; per-stage wall times are reported in milliseconds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from robot_vision.camera import deproject, depth_unit_problem
from robot_vision.config import dataclass_from_dict
from robot_vision.detection import DetectorSettings, create_detector, detections_from_objects
from robot_vision.errors import ConfigError
from robot_vision.grasping import GraspSettings, GripperModel, plan_scene_grasps
from robot_vision.perception3d import (
    RegistrationSettings,
    SegmentationSettings,
    objects_from_detections,
    register_model,
    segment_scene,
)
from robot_vision.perception3d.filtering import voxel_downsample
from robot_vision.types import CameraIntrinsics, Detections, Grasps, Objects3D, RGBDFrame, Tracks
from robot_vision.tracking import (
    Tracker,
    Tracker2D,
    Tracker2DSettings,
    Tracks2D,
    TrackerSettings,
    observations_from_objects,
)


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of every stage; build from the YAML ``robot_vision`` section with :meth:`from_dict`.

    ``detector.backend`` picks the detector ('depth' needs no model). ``object_models`` maps a class
    name (or numeric class id as a string) to a model point-cloud file (.xyz/.pcd/.ply) used to refine
    that class's pose by registration. ``fixed_frame`` names the frame tracks are expressed in.
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
    scene_voxel: float = 0.005

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


class Pipeline:
    """Run detection, 3D estimation, registration, grasp planning and tracking on RGB-D frames."""

    def __init__(self, settings: PipelineSettings = PipelineSettings()) -> None:
        self._settings = settings
        self._detector = None if settings.detector.backend == 'depth' else create_detector(
            settings.detector.backend, settings.detector)
        self._models = {name: _load_model(path) for name, path in settings.object_models}
        self._tracker = Tracker(settings.tracking)
        self._tracker_2d = Tracker2D(settings.tracking_2d)

    @property
    def settings(self) -> PipelineSettings:
        """The settings the pipeline was built with."""
        return self._settings

    @property
    def class_names(self) -> Dict[int, str]:
        """Class id -> name of the detector (empty for the class-agnostic depth backend)."""
        return {} if self._detector is None else dict(enumerate(self._detector.class_names))

    def reset(self) -> None:
        """Forget all tracks (e.g. when a bag loops or time jumps back)."""
        self._tracker.reset()
        self._tracker_2d.reset()

    def close(self) -> None:
        """Release the detector's resources."""
        if self._detector is not None:
            self._detector.close()

    def process(self, frame: RGBDFrame, track: bool = True) -> FrameResult:
        """Process one frame; see :class:`FrameResult`. Raises InputError for unusable frames.

        ``track=False`` leaves the tracker untouched for this frame (e.g. when the camera -> fixed
        frame transform is unavailable) and returns no tracks.
        """
        s = self._settings
        timings: Dict[str, float] = {}
        warnings: List[str] = []
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = (now - clock) * 1e3
            clock = now

        plane = None
        objects = Objects3D.empty()
        if frame.depth is not None:
            problem = depth_unit_problem(frame.depth)
            if problem:
                warnings.append(problem)
        if self._detector is None:
            if frame.depth is None:
                raise ConfigError('the depth detector backend needs depth images; this frame has none')
            scene = segment_scene(frame, s.segmentation)
            objects, plane = scene.objects, scene.plane
            if scene.status != 'ok':
                warnings.append(f'segmentation: {scene.status}')
            detections = detections_from_objects(objects)
            lap('segment')
        else:
            detections = self._detector.detect(frame)
            lap('detect')
            if frame.depth is not None:
                objects = objects_from_detections(frame, detections, s.segmentation)
                lap('objects_3d')
        if self._models and len(objects):
            objects = self._refine(objects, warnings)
            lap('register')
        grasps, reason = Grasps.empty(), 'disabled'
        if s.enable_grasps:
            grasps, reason = self._grasps(frame, objects, plane)
            lap('grasps')
        tracks, tracks_2d = Tracks.empty(), None
        if s.enable_tracking and track:
            if frame.depth is None:
                tracks_2d = self._tracker_2d.update(detections, frame.stamp)
            else:
                observations = observations_from_objects(objects, frame.camera_to_fixed)
                tracks = self._tracker.update(observations, frame.stamp)
            lap('track')
        timings['total'] = float(sum(timings.values()))
        return FrameResult(stamp=frame.stamp, frame_id=frame.frame_id, fixed_frame=s.fixed_frame,
                           intrinsics=frame.intrinsics, detections=detections, objects=objects, grasps=grasps,
                           grasp_reason=reason, tracks=tracks, tracks_2d=tracks_2d, plane=plane,
                           class_names=self.class_names,
                           timings_ms=timings, warnings=warnings)

    def _refine(self, objects: Objects3D, warnings: List[str]) -> Objects3D:
        names = self.class_names
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

    def _grasps(self, frame: RGBDFrame, objects: Objects3D, plane: Optional[np.ndarray]) -> Tuple[Grasps, str]:
        if frame.depth is None:
            return Grasps.empty(), 'no depth'
        if not len(objects):
            return Grasps.empty(), 'no objects'
        scene_points = _scene_points(frame, self._settings.scene_voxel)
        result = plan_scene_grasps(objects, scene_points, self._settings.gripper, self._settings.grasping,
                                   support_normal=plane)
        return result.grasps, result.reason


def _scene_points(frame: RGBDFrame, voxel: float) -> np.ndarray:
    """Valid scene points (N, 3) float32 of a frame, voxel-downsampled for collision checks."""
    cloud = deproject(frame.depth, frame.intrinsics).reshape(-1, 3)
    points = cloud[np.isfinite(cloud[:, 2])]
    if voxel <= 0 or not len(points):
        return points
    return voxel_downsample(points, voxel)


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
