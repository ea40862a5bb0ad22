"""Depth perception core: workspace filtering, support plane, object instances, poses, registration.

Pure numpy/cv2/open3d; no ROS. See docs/perception3d.md for conventions and measured numbers.
"""

from robot_vision.perception3d.boxes import oriented_box
from robot_vision.perception3d.detections3d import objects_from_detections
from robot_vision.perception3d.filtering import grid_subsample, voxel_downsample, workspace_mask
from robot_vision.perception3d.plane import orient_plane, plane_distance, ransac_plane
from robot_vision.perception3d.registration import RegistrationResult, RegistrationSettings, register_model
from robot_vision.perception3d.planar import fit_support_plane
from robot_vision.perception3d.segmentation import SceneSegmentation, SegmentationSettings, segment_scene
from robot_vision.perception3d.smoothing import PoseSmoother, PoseSmoothingSettings
from robot_vision.perception3d.visualize import overlay_objects

__all__ = [
    'PoseSmoother', 'PoseSmoothingSettings', 'RegistrationResult', 'RegistrationSettings',
    'SceneSegmentation',
    'SegmentationSettings', 'fit_support_plane', 'grid_subsample', 'objects_from_detections', 'orient_plane',
    'oriented_box', 'overlay_objects', 'plane_distance', 'ransac_plane', 'register_model', 'segment_scene',
    'voxel_downsample', 'workspace_mask',
]
