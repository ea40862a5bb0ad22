"""Unknown-object segmentation of one RGB-D frame: support plane, instances, oriented boxes and poses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from robot_vision.camera import deproject
from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import mean_point
from robot_vision.perception3d.boxes import box_sample, oriented_box
from robot_vision.perception3d.filtering import workspace_mask
from robot_vision.types import Objects3D, RGBDFrame

Vec3 = Tuple[float, float, float]

#: "Up" in the image (optical frame -y): without a gravity prior, support planes facing it are preferred.
IMAGE_UP = (0.0, -1.0, 0.0)

#: The segmentation methods :func:`segment_scene` can run (``SegmentationSettings.method``).
SEGMENTATION_METHODS = ('clutter', 'planar')


def _vec3(name: str, value, allow_none: bool = True) -> Optional[Vec3]:
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f'{name}: expected 3 finite numbers, got None')
    try:
        arr = np.asarray(value, np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{name}: expected 3 finite numbers, got {value!r}') from exc
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ConfigError(f'{name}: expected 3 finite numbers, got {value!r}')
    return tuple(float(v) for v in arr)


def _positive(settings, *names: str, zero_ok: bool = False) -> None:
    for name in names:
        value = getattr(settings, name)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
              and (value >= 0 if zero_ok else value > 0))
        if not ok:
            raise ConfigError(f'{type(settings).__name__}.{name}: expected a '
                              f'{"non-negative" if zero_ok else "positive"} number, got {value!r}')


@dataclass(frozen=True)
class SegmentationSettings:
    """Settings of :func:`segment_scene` and :func:`objects_from_detections` (metres, degrees).

    Method:
      ``method`` ('clutter'): 'clutter' (support from the gravity prior or the dominant surface,
      instances cut at depth steps, concave creases and colour edges backed by geometry; see
      :mod:`robot_vision.perception3d.clutter`) or 'planar' (one RANSAC plane and the depth-connected
      components above it, the earlier algorithm: :mod:`robot_vision.perception3d.planar`;
      :meth:`planar` gives it with the defaults it was tuned with).
    Workspace:
      ``min_depth`` / ``max_depth`` (0.2 / 4.0 m): valid depth range along the optical axis.
      ``workspace_min`` / ``workspace_max`` (None): optional axis-aligned box corners (x, y, z)
      in metres, in the camera frame or, when ``workspace_transform`` (a 4x4 camera->box-frame
      transform, given as nested tuples or an array) is set, in that frame.
    Support plane:
      ``plane_stride`` (6): pixel stride of the organized-cloud subsample used for RANSAC.
      ``voxel_size`` (0.02 m): voxel grid applied to that subsample so that near and far
      surfaces count equally (0 disables it).
      ``plane_distance`` (0.005 m) + ``plane_distance_quadratic`` (0.003 1/m) * z^2: inlier
      threshold, growing with depth like structured-light/ToF noise.
      ``ransac_iterations`` (200), ``seed`` (0).
      ``up_vector`` (None): gravity "up" in the camera frame, when known; only planes whose
      normal is within ``max_plane_tilt_deg`` (20 deg) of it are accepted. When None and the
      frame has ``camera_to_fixed``, the fixed frame's +z is used (``use_frame_up``, True).
      ``image_up_weight`` (1.0): without any gravity prior, a plane hypothesis's inlier count
      is weighted by 1 + w * (n . image-up) (n towards the camera, image-up = optical -y), a
      soft preference for floors/tables over walls when the camera is roughly upright; a
      top-down camera (n . image-up ~ 0) is unaffected. 0 disables it.
      ``min_plane_fraction`` (0.05): the plane must hold this fraction of the valid subsample.
    Objects:
      ``min_height`` (0.007 m) / ``max_height`` (1.0 m): object points lie this far above the plane.
      ``edge_depth_jump`` (0.006 m) + ``edge_depth_jump_relative`` (0.012) * z: depth step between
      neighbouring pixels that separates two surfaces (splits touching objects).
      ``min_object_points`` (150) / ``max_object_points`` (150000): instance size limits in pixels
      (the 'clutter' method scales ``max_object_points`` with the image area above 640x480).
      ``contact_tolerance`` (0.02 m): an object whose lowest point is this close to the plane
      rests on it, and its box is extended down to the plane.
      ``split_supports`` (True): horizontal surfaces above the main plane (normal within
      ``support_normal_tolerance_deg``, 15 deg, of the plane normal) whose area summed over a
      height band (3 cm) reaches ``min_support_area`` (0.08 m^2) are secondary supports (a
      tray, a board, a desk seen from a camera that found the floor first): they are reported
      in ``support_mask`` and removed, so that the objects standing on them separate.
      ``min_floor_area`` (0.02 m^2; 0: ``min_support_area`` applies): a level less than 2 cm
      above the main plane (a tote's or tray's floor between the objects in it) needs only this
      area; it must still carry something.
      ``max_plane_samples`` (3000): RANSAC scores at most this many subsample points.
      ``grow_iterations`` (4): pixels of image-space region growing that give instances back
      their low border pixels (just above the plane inlier band) at equal depth.
    The 'clutter' method (``plane_distance``, ``plane_distance_quadratic``, ``min_height``,
    ``max_height``, ``max_plane_tilt_deg``, ``support_normal_tolerance_deg``, ``image_up_weight``,
    ``edge_depth_jump(_relative)``, ``ransac_iterations``, ``max_plane_samples``, ``min/max_object_points``
    and the workspace apply to it as above) also uses:
      ``working_width`` (320): the depth is block-averaged to at most this width first (640x480
      runs at 320x240, 1280x720 at 320x180); labels are upsampled back.
      ``fill_holes`` (True): missing pixels whose valid 5x5 neighbours agree in depth are filled.
      ``smoothing_radius`` (3): bilateral depth smoothing radius in working pixels (0 disables it).
      ``support_grow_distance`` (0.015 m): the support region grows over up-facing pixels this close
      to the plane; a quadratic height correction fitted to it follows a warped or curved table.
      ``support_margin`` (0.02 m): objects must lie over the support's convex hull grown by this.
      ``crease_angle_deg`` (30): concave creases sharper than this cut objects apart;
      ``min_crease_pixels`` (20): shorter crease specks are ignored (sensor noise).
      ``color_edge_threshold`` (15, CIE Lab units per pixel; 0 disables colour): a colour edge cuts
      where geometry shows at least ``weak_edge_fraction`` (0.4) of a depth step or crease.
      ``fragment_area`` (0.0012 m^2, about 3.5 x 3.5 cm seen face-on): smaller segments join the
      neighbour they continue at a similar depth (slivers, caps), else stay.
      ``max_object_size`` (0.45 m): a planar, sideways-facing segment larger than this is a wall
      (bin, shelf), not an object.
      ``min_occluded_fraction`` (0.1; 0 disables it): an object stands in front of something; a
      segment of which less than this fraction of the pixels around it (3 working pixels out) lie
      behind its nearest surface there by more than the depth-step threshold, and that is not mostly
      up-facing, is background (a bin's back or side wall, a shelf lip, the room), not an object.
      ``min_wall_occluded_fraction`` (0.3): the same for a segment shaped like a wall (its mean normal at
      least 60 deg from up, half its normals within 15 deg of it): a wall shows what lies behind it
      only past its free edge (a bin wall's top, a divider's front edge), an object's face all round.
      ``min_object_area`` (0.0002 m^2, 2 cm^2; 0 disables it): an object must show at least this much
      surface with depth (each pixel's footprint z^2 / (fx fy), seen face-on), besides
      ``min_object_points`` pixels of mask: a few scattered points that the hole filling spread
      over many pixels (shiny, dark or grazing surfaces) are not an object one could measure or grasp.
      ``support_edge_band`` (0.05 m; 0 disables it): next to a secondary support (within 4 working
      pixels), pixels no higher than its surface and at most this far below it are its edge (a
      table top's thickness seen when the floor is the main support), not objects.
      ``min_outline_contrast`` (0.3; 0 disables it; needs colour): a segment lower than the
      depth-step threshold at its mean depth (at most 5 % of its pixels above it) is kept only when this
      fraction of its outline lies on a colour edge, and this much more than of the pixels around it
      (a textured support's edges); else it is the sensor's low-frequency depth
      error (stereo cameras show centimetre waves at 1-2 m), or a flat object of the support's colour
      that depth cannot tell from one.
      ``join_container_insides`` (True): the pieces of an open mug, cup, pot or bowl are one object.
      A round wall (a segment whose points, projected along the support normal, lie on a circle of
      2-15 cm radius, standing on the support) takes the segments next to it that lie within its
      circle, no higher than its rim, as its inner far wall (hidden in part by the near rim), an
      inner wall or its floor, and the slivers of its rim; two neighbouring segments that both
      reach up to a common rim (their top points on one circle, each within it) are one bowl
      (:mod:`hollows`).
      ``join_convex_seams`` (True): two segments that meet along a convex seam without a depth step
      (an object's own edge, where a colour edge cut it) are one object.
      ``split_walls`` (True; under gravity only): a segment that is an object and the wall it stands
      against (two upright planes meeting without a convex edge, of which the background rules drop
      exactly one) becomes the two (:mod:`walls`).
      ``hole_label_distance`` (3 working pixels; 0 disables it): pixels without depth take the
      label of the nearest pixel with depth this close, so masks cover what the sensor missed.
    """

    min_depth: float = 0.2
    max_depth: float = 4.0
    workspace_min: Optional[Vec3] = None
    workspace_max: Optional[Vec3] = None
    workspace_transform: Optional[Tuple[Tuple[float, ...], ...]] = None
    plane_stride: int = 6
    voxel_size: float = 0.02
    plane_distance: float = 0.005
    plane_distance_quadratic: float = 0.003
    ransac_iterations: int = 200
    seed: int = 0
    up_vector: Optional[Vec3] = None
    max_plane_tilt_deg: float = 20.0
    use_frame_up: bool = True
    image_up_weight: float = 1.0
    min_plane_fraction: float = 0.05
    min_height: float = 0.007
    max_height: float = 1.0
    edge_depth_jump: float = 0.006
    edge_depth_jump_relative: float = 0.012
    min_object_points: int = 150
    max_object_points: int = 150000
    contact_tolerance: float = 0.02
    grow_iterations: int = 4
    split_supports: bool = True
    support_normal_tolerance_deg: float = 15.0
    min_support_area: float = 0.08
    min_floor_area: float = 0.02
    max_plane_samples: int = 3000
    method: str = 'clutter'
    working_width: int = 320
    fill_holes: bool = True
    smoothing_radius: int = 3
    support_grow_distance: float = 0.015
    support_margin: float = 0.02
    crease_angle_deg: float = 30.0
    min_crease_pixels: int = 20
    color_edge_threshold: float = 15.0
    weak_edge_fraction: float = 0.4
    fragment_area: float = 0.0012
    max_object_size: float = 0.45
    min_occluded_fraction: float = 0.1
    min_wall_occluded_fraction: float = 0.3
    min_object_area: float = 0.0002
    support_edge_band: float = 0.05
    min_outline_contrast: float = 0.3
    join_container_insides: bool = True
    join_convex_seams: bool = True
    split_walls: bool = True
    hole_label_distance: float = 3.0

    @classmethod
    def planar(cls, **overrides) -> SegmentationSettings:
        """The 'planar' method with the thresholds it was tuned with (before 'clutter' was the default)."""
        values = dict(method='planar', plane_distance=0.008, plane_distance_quadratic=0.002, min_height=0.012,
                      edge_depth_jump=0.01, edge_depth_jump_relative=0.03, max_plane_tilt_deg=25.0,
                      support_normal_tolerance_deg=20.0, min_support_area=0.025, min_floor_area=0.0)
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        _positive(self, 'max_depth', 'plane_distance', 'max_height', 'edge_depth_jump')
        _positive(self, 'min_depth', 'voxel_size', 'plane_distance_quadratic', 'min_height',
                  'edge_depth_jump_relative', 'contact_tolerance',
                  'min_plane_fraction', 'min_floor_area', zero_ok=True)
        if self.min_depth >= self.max_depth:
            raise ConfigError(f'SegmentationSettings.min_depth: expected < max_depth '
                              f'({self.max_depth}), got {self.min_depth}')
        if self.min_height >= self.max_height:
            raise ConfigError(f'SegmentationSettings.min_height: expected < max_height '
                              f'({self.max_height}), got {self.min_height}')
        for name, low in (('plane_stride', 1), ('ransac_iterations', 1), ('min_object_points', 1),
                          ('grow_iterations', 0), ('max_plane_samples', 3)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ConfigError(f'SegmentationSettings.{name}: expected an integer >= {low}, '
                                  f'got {value!r}')
        if self.max_object_points < self.min_object_points:
            raise ConfigError(f'SegmentationSettings.max_object_points: expected >= min_object_points '
                              f'({self.min_object_points}), got {self.max_object_points}')
        _positive(self, 'min_support_area', 'support_grow_distance', 'max_object_size', 'crease_angle_deg')
        _positive(self, 'support_margin', 'color_edge_threshold', 'weak_edge_fraction', 'fragment_area',
                  'hole_label_distance', 'min_occluded_fraction', 'min_wall_occluded_fraction', 'min_object_area',
                  'support_edge_band', 'min_outline_contrast', zero_ok=True)
        if self.method not in SEGMENTATION_METHODS:
            raise ConfigError(f'SegmentationSettings.method: expected one of {list(SEGMENTATION_METHODS)}, '
                              f'got {self.method!r}')
        for name, low in (('working_width', 16), ('smoothing_radius', 0), ('min_crease_pixels', 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ConfigError(f'SegmentationSettings.{name}: expected an integer >= {low}, got {value!r}')
        if self.weak_edge_fraction > 1 or self.crease_angle_deg >= 180:
            raise ConfigError(f'SegmentationSettings.weak_edge_fraction / crease_angle_deg: expected a fraction in '
                              f'[0, 1] and an angle in (0, 180), got {self.weak_edge_fraction!r} and '
                              f'{self.crease_angle_deg!r}')
        _positive(self, 'image_up_weight', zero_ok=True)
        for name in ('use_frame_up', 'split_supports', 'fill_holes', 'join_container_insides'):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f'SegmentationSettings.{name}: expected True or False, '
                                  f'got {getattr(self, name)!r}')
        if not 0 < self.support_normal_tolerance_deg < 90:
            raise ConfigError(f'SegmentationSettings.support_normal_tolerance_deg: expected a number in '
                              f'(0, 90), got {self.support_normal_tolerance_deg!r}')
        if not 0 < self.max_plane_tilt_deg <= 90:
            raise ConfigError(f'SegmentationSettings.max_plane_tilt_deg: expected a number in '
                              f'(0, 90], got {self.max_plane_tilt_deg!r}')
        if self.min_plane_fraction > 1:
            raise ConfigError(f'SegmentationSettings.min_plane_fraction: expected a number in [0, 1], '
                              f'got {self.min_plane_fraction!r}')
        object.__setattr__(self, 'workspace_min', _vec3('SegmentationSettings.workspace_min',
                                                         self.workspace_min))
        object.__setattr__(self, 'workspace_max', _vec3('SegmentationSettings.workspace_max',
                                                         self.workspace_max))
        up = _vec3('SegmentationSettings.up_vector', self.up_vector)
        if up is not None and np.linalg.norm(up) < 1e-9:
            raise ConfigError(f'SegmentationSettings.up_vector: expected a non-zero vector, got {up}')
        object.__setattr__(self, 'up_vector', up)
        if self.workspace_min is not None and self.workspace_max is not None and np.any(
                np.asarray(self.workspace_min) > np.asarray(self.workspace_max)):
            raise ConfigError(f'SegmentationSettings.workspace_min: expected <= workspace_max '
                              f'{self.workspace_max} on every axis, got {self.workspace_min}')
        if self.workspace_transform is not None:
            transform = np.asarray(self.workspace_transform, np.float64)
            if transform.shape != (4, 4) or not np.all(np.isfinite(transform)):
                raise ConfigError(f'SegmentationSettings.workspace_transform: expected a finite 4x4 '
                                  f'transform, got shape {transform.shape}')
            object.__setattr__(self, 'workspace_transform', tuple(map(tuple, transform.tolist())))

    def step_threshold(self, z):
        """Depth step (metres) between neighbouring pixels at depth ``z`` that separates two surfaces."""
        return self.edge_depth_jump + self.edge_depth_jump_relative * z

    def inlier_threshold(self, z: np.ndarray) -> np.ndarray:
        """Plane inlier distance (metres) at depth ``z`` (metres), in the dtype of ``z``."""
        z = np.asarray(z)
        dtype = z.dtype if z.dtype.kind == 'f' else np.dtype(np.float64)
        out = np.square(z, dtype=dtype)
        out *= dtype.type(self.plane_distance_quadratic)
        out += dtype.type(self.plane_distance)
        return out


@dataclass
class SceneSegmentation:
    """Result of :func:`segment_scene`.

    ``cloud`` (H, W, 3) float32 organized points in the camera optical frame (metres, NaN
    invalid or outside the workspace); ``plane`` (4,) float64 [a, b, c, d] with a unit normal
    pointing towards the camera (``a x + b y + c z + d = 0``, ``d > 0``), or None;
    ``plane_mask`` (H, W) bool inlier pixels of the plane; ``objects`` the instances
    (class_id -1, detection_index -1, masks, points, indices, poses as documented in
    :class:`~robot_vision.types.Objects3D`); ``status`` 'ok', 'no_valid_depth',
    'empty_workspace' or 'no_plane'; ``timings_ms`` per-stage wall times in milliseconds;
    ``support_mask`` (H, W) bool pixels of secondary horizontal supports (trays, shelves, a
    desk above the floor), or None when not computed.
    """

    cloud: np.ndarray
    plane: Optional[np.ndarray]
    plane_mask: np.ndarray
    objects: Objects3D
    status: str = 'ok'
    timings_ms: Dict[str, float] = field(default_factory=dict)
    support_mask: Optional[np.ndarray] = None

    @property
    def ok(self) -> bool:
        """True when the status is 'ok'."""
        return self.status == 'ok'

    def label_image(self) -> np.ndarray:
        """(H, W) int32 image: -1 plane, -2 secondary support, 0 nothing, i + 1 for object row i."""
        labels = np.zeros(self.plane_mask.shape, np.int32)
        labels[self.plane_mask] = -1
        if self.support_mask is not None:
            labels[self.support_mask] = -2
        if self.objects.mask is not None:
            for i, mask in enumerate(self.objects.mask):
                labels[mask] = i + 1
        return labels


def check_depth_frame(frame: RGBDFrame) -> np.ndarray:
    """Return the frame's depth (H, W) float32 metres after checking it against the intrinsics."""
    if not isinstance(frame, RGBDFrame):
        raise InputError(f'frame: expected an RGBDFrame, got {type(frame).__name__}')
    if frame.depth is None:
        raise InputError('frame.depth: expected an (H, W) float32 depth image in metres, got None')
    depth = np.asarray(frame.depth)
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise InputError(f'frame.depth: expected (H, W) float32 metres, got {depth.shape} {depth.dtype}')
    frame.intrinsics.check_image(depth.shape, 'depth image')
    return depth


def up_prior(frame: RGBDFrame, settings: SegmentationSettings) -> Optional[np.ndarray]:
    """The gravity 'up' direction in the camera frame from the settings or the frame, or None."""
    if settings.up_vector is not None:
        up = np.asarray(settings.up_vector, np.float64)
        return up / np.linalg.norm(up)
    if settings.use_frame_up and frame.camera_to_fixed is not None:
        # The fixed frame's +z expressed in the camera frame: R^T e_z.
        up = np.asarray(frame.camera_to_fixed, np.float64)[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        return up / np.linalg.norm(up)
    return None


def prepare_cloud(frame: RGBDFrame, settings: SegmentationSettings) -> Tuple[np.ndarray, np.ndarray, bool]:
    """Deproject the frame and apply the workspace; returns (cloud, valid mask, any raw depth).

    ``cloud`` is (H, W, 3) float32 with NaN outside the workspace; zero, negative or NaN depth
    counts as missing (the third value is False when no pixel has depth at all).
    """
    depth = check_depth_frame(frame)
    low = max(settings.min_depth, float(np.nextafter(np.float32(0), np.float32(1))))
    with np.errstate(invalid='ignore'):
        valid = (depth >= np.float32(low)) & (depth <= np.float32(settings.max_depth))
    if settings.workspace_min is None and settings.workspace_max is None:
        # Depth range only: mask the depth first, and NaN propagates into x and y for free.
        cloud = deproject(np.where(valid, depth, np.float32(np.nan)), frame.intrinsics)
    else:
        cloud = deproject(depth, frame.intrinsics)
        valid = workspace_mask(
            cloud, low, settings.max_depth, settings.workspace_min, settings.workspace_max,
            None if settings.workspace_transform is None else np.asarray(settings.workspace_transform))
        np.copyto(cloud, np.float32(np.nan), where=~valid[..., None])
    if not valid.any():
        with np.errstate(invalid='ignore'):
            any_depth = bool(np.any(depth > 0))
        cloud[:] = np.nan
        return cloud, valid, any_depth
    return cloud, valid, True


def segment_scene(frame: RGBDFrame,
                  settings: SegmentationSettings = SegmentationSettings()) -> SceneSegmentation:
    """Find the support and every object resting on it in one RGB-D frame (class-agnostic).

    ``frame.depth`` is (H, W) float32 metres (NaN invalid) matching ``frame.intrinsics`` (else
    InputError); ``frame.color`` (optional) helps the 'clutter' method split touching objects;
    ``frame.camera_to_fixed`` (optional) gives the gravity prior. The depth is deprojected and the
    workspace applied, then ``settings.method`` segments it: 'clutter' (default,
    :mod:`robot_vision.perception3d.clutter`) or 'planar' (the earlier algorithm,
    :mod:`robot_vision.perception3d.planar`).

    Returns a :class:`SceneSegmentation`. Degenerate input gives an empty result with a status,
    never an exception: 'no_valid_depth' (no finite depth), 'empty_workspace' (no point within
    the depth range / workspace box), 'no_plane' (no support found). Instances are ordered by
    decreasing pixel count; oriented boxes have z = the support normal, x = the longer horizontal
    side. ``confidence`` is the fraction of the instance outline not cut by the image border or by
    missing depth (a truncated or occluded object scores lower).
    """
    timings: Dict[str, float] = {}
    t0 = time.perf_counter()
    cloud, valid, any_depth = prepare_cloud(frame, settings)
    timings['prepare'] = (time.perf_counter() - t0) * 1e3
    if not any_depth or not valid.any():
        status = 'no_valid_depth' if not any_depth else 'empty_workspace'
        timings['total'] = (time.perf_counter() - t0) * 1e3
        empty = Objects3D.empty(mask=np.zeros((0,) + valid.shape, bool))
        return SceneSegmentation(cloud, None, np.zeros(valid.shape, bool), empty, status, timings)
    if settings.method == 'planar':
        from robot_vision.perception3d.planar import segment_planar
        return segment_planar(frame, cloud, valid, settings, t0, timings)
    from robot_vision.perception3d.clutter import segment_clutter
    return segment_clutter(frame, cloud, valid, settings, t0, timings)


def grow_labels(labels: np.ndarray, todo: np.ndarray, depth: np.ndarray, settings: SegmentationSettings,
                iterations: int) -> np.ndarray:
    """In place: the unlabelled pixels ``todo`` (flat indices) take the label of a 4-neighbour at a similar depth.

    Repeated up to ``iterations`` times, on the listed pixels only, so the cost follows the outlines,
    not the image; "similar" is within :meth:`SegmentationSettings.step_threshold`. Returns
    the flat indices of the pixels that received a label.
    """
    h, w = labels.shape
    flat_labels = labels.reshape(-1)
    flat_depth = depth.reshape(-1)
    rows, cols = np.divmod(todo, w)
    z = flat_depth[todo]
    thr = settings.step_threshold(z)
    neighbours = []
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        inside = (rows + dy >= 0) & (rows + dy < h) & (cols + dx >= 0) & (cols + dx < w)
        nb = np.where(inside, todo + dy * w + dx, todo)
        with np.errstate(invalid='ignore'):
            neighbours.append((nb, inside & (np.abs(flat_depth[nb] - z) < thr)))
    grown = []
    for _ in range(iterations):
        if todo.size == 0:
            break
        new = flat_labels[todo].copy()
        for nb, close in neighbours:
            nb_label = flat_labels[nb]
            take = (new == 0) & close & (nb_label > 0)
            new[take] = nb_label[take]
        changed = new != 0
        if not changed.any():
            break
        flat_labels[todo[changed]] = new[changed]
        grown.append(todo[changed])
        keep = ~changed  # only pixels still unlabelled need another look
        todo, neighbours = todo[keep], [(nb[keep], close[keep]) for nb, close in neighbours]
    return np.concatenate(grown) if grown else np.zeros(0, np.int64)


def padded_window(window: Tuple[slice, slice], radius: int, shape: Tuple[int, int]) -> Tuple[slice, slice]:
    """A (rows, cols) window of ``scipy.ndimage.find_objects`` grown by ``radius`` pixels, clipped to ``shape``."""
    ys, xs = window
    return (slice(max(ys.start - radius, 0), min(ys.stop + radius, shape[0])),
            slice(max(xs.start - radius, 0), min(xs.stop + radius, shape[1])))


def nearest_depth(inside: np.ndarray, depth: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(H, W) float32: the smallest depth of the ``inside`` pixels with depth within ``kernel`` of each pixel.

    +inf where none is within reach: the border is explicit, as OpenCV's default border value for a
    dilation is finite (-FLT_MAX), which would make every pixel near the image's edge "within reach".
    """
    return -cv2.dilate(np.where(inside & np.isfinite(depth), -depth, np.float32(-np.inf)), kernel,
                       borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)


def objects_from_labels(labels: np.ndarray, keep: np.ndarray, boxes: np.ndarray, cloud: np.ndarray,
                         valid: np.ndarray, plane: np.ndarray, settings: SegmentationSettings) -> Objects3D:
    """Build Objects3D rows for the labels in ``keep`` (in that order) within their (x, y, w, h) boxes.

    A mask holds every pixel of its label; the points (and indices) are the mask's pixels with a
    valid point (``valid``), so a mask may cover holes in the depth that its neighbours filled.
    """
    h, w = labels.shape
    if keep.size == 0:
        return Objects3D.empty(mask=np.zeros((0, h, w), bool))
    flat_cloud = cloud.reshape(-1, 3)
    depth = np.ascontiguousarray(cloud[..., 2])  # once: box_sample reads it flat for every object
    masks = np.zeros((keep.size, h, w), bool)
    poses, sizes, centroids, confidences, points, indices = [], [], [], [], [], []
    for row, (label, (bx, by, bw, bh)) in enumerate(zip(keep, boxes, strict=True)):
        x0, y0 = max(int(bx), 0), max(int(by), 0)
        x1, y1 = min(int(bx + bw), w), min(int(by + bh), h)
        crop = labels[y0:y1, x0:x1] == label
        masks[row, y0:y1, x0:x1] = crop
        ys, xs = np.nonzero(crop & valid[y0:y1, x0:x1])
        idx = (ys + y0).astype(np.int64) * w + (xs + x0)
        pts = flat_cloud[idx]
        sample = box_sample(idx, masks[row], depth, settings.step_threshold)
        pose, size = oriented_box(pts, plane[:3], plane, settings.contact_tolerance, sample)
        poses.append(pose)
        sizes.append(size)
        centroids.append(mean_point(pts))
        confidences.append(_outline_visibility(crop, depth, x0, y0, float(pts[:, 2].min()),
                                               settings))
        points.append(pts)
        indices.append(idx)
    return Objects3D(pose=np.stack(poses), size=np.stack(sizes), centroid=np.stack(centroids),
                     confidence=np.asarray(confidences, np.float32),
                     class_id=np.full(keep.size, -1, np.int32),
                     detection_index=np.full(keep.size, -1, np.int32),
                     mask=masks, points=points, indices=indices)


def _outline_visibility(crop: np.ndarray, depth: np.ndarray, x0: int, y0: int, z_min: float,
                        settings: SegmentationSettings) -> float:
    """Fraction of the outline of a mask crop (placed at x0, y0) not cut by the border or an occluder."""
    h, w = depth.shape
    ch, cw = crop.shape
    padded = np.zeros((ch + 2, cw + 2), np.uint8)
    padded[1:-1, 1:-1] = crop
    ring = (cv2.dilate(padded, np.ones((3, 3), np.uint8)) > 0) & (padded == 0)
    ring_depth = np.full(padded.shape, -np.inf, np.float32)  # outside the image: cut
    ya, yb, xa, xb = max(y0 - 1, 0), min(y0 + ch + 1, h), max(x0 - 1, 0), min(x0 + cw + 1, w)
    ring_depth[ya - (y0 - 1):yb - (y0 - 1), xa - (x0 - 1):xb - (x0 - 1)] = depth[ya:yb, xa:xb]
    thr = settings.step_threshold(z_min)
    with np.errstate(invalid='ignore'):
        cut = ring & (ring_depth < z_min - thr)
    total = np.count_nonzero(ring)
    return float(1.0 - np.count_nonzero(cut) / total) if total else 0.0
