"""Lift 2D detections (masks or boxes) to 3D object instances with robust background rejection."""

from __future__ import annotations

from typing import List, Optional

import cv2
import numpy as np

from robot_vision.errors import InputError
from robot_vision.geometry import mean_point
from robot_vision.perception3d.boxes import box_sample, oriented_box
from robot_vision.perception3d.plane import orient_plane
from robot_vision.perception3d.planar import _grow_labels, far_side_edges, fit_support_plane
from robot_vision.perception3d.segmentation import SegmentationSettings, prepare_cloud, up_prior
from robot_vision.types import Detections, Objects3D, RGBDFrame

#: A detection needs at least this many object points after outlier rejection to be kept.
MIN_DETECTION_POINTS = 20

#: Without a plane or an up prior, the box z axis is the camera's "up" (optical frame -y).
CAMERA_UP = np.array([0.0, -1.0, 0.0])


def _dominant_component(depth: np.ndarray, region: np.ndarray, box, centre_weighted: bool,
                        settings: SegmentationSettings) -> np.ndarray:
    """The dominant surface of a detection region (a crop): a bool mask of the crop.

    The region is cut at depth discontinuities (far side of each jump, as in segment_scene)
    and split into 4-connected components; each component scores its pixel count, weighted
    by a Gaussian around the box centre (sigma = 1/4 of the box size) for box detections.
    The best component is grown back over its cut border pixels at equal depth.
    """
    seeds = region & ~far_side_edges(depth, settings)
    count, labels = cv2.connectedComponents(seeds.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    if count <= 1:
        return np.zeros(region.shape, bool)
    flat = labels.reshape(-1)
    if centre_weighted:
        x1, y1, x2, y2 = box
        gy, gx = np.mgrid[0:region.shape[0], 0:region.shape[1]]
        sx, sy = max((x2 - x1) / 4.0, 1.0), max((y2 - y1) / 4.0, 1.0)
        weight = np.exp(-0.5 * (((gx + 0.5 - 0.5 * (x1 + x2)) / sx) ** 2
                                + ((gy + 0.5 - 0.5 * (y1 + y2)) / sy) ** 2)).reshape(-1)
        scores = np.bincount(flat, weights=weight, minlength=count)
    else:
        scores = np.bincount(flat, minlength=count).astype(np.float64)
    scores[0] = -1.0
    best = int(np.argmax(scores))
    labels = np.where(labels == best, 1, 0).astype(np.int32)
    labels, _ = _grow_labels(labels, region, depth, settings, max(settings.grow_iterations, 1))
    return labels == 1


def objects_from_detections(frame: RGBDFrame, detections: Detections,
                            settings: SegmentationSettings = SegmentationSettings(),
                            plane: Optional[np.ndarray] = None) -> Objects3D:
    """Turn 2D detections into 3D instances using the frame's depth.

    ``frame.depth`` (H, W) float32 metres must match ``frame.intrinsics``; ``detections``
    holds boxes ``xyxy`` in pixels of that image and optional (N, H, W) masks. For each
    detection the region is its mask when present, else its box (clipped to the image).
    Region pixels with valid depth inside the workspace are kept; when a support ``plane``
    (4,) [a, b, c, d] is known (or found here by the same RANSAC as :func:`segment_scene`
    when ``plane`` is None), points on or below it are dropped. The rest of the region is cut
    at depth discontinuities (the ``edge_depth_jump`` thresholds of :func:`segment_scene`) into
    4-connected surfaces; the surface with the largest weight is kept, where a pixel weighs
    more near the box centre (Gaussian, sigma = 1/4 of the box size) for boxes, and uniformly
    for masks, so background seen around or behind the object is rejected.

    Returns :class:`~robot_vision.types.Objects3D` in the camera frame with ``class_id`` and
    ``confidence`` copied from the detection and ``detection_index`` = its row in
    ``detections``. Detections with fewer than ``MIN_DETECTION_POINTS`` (20) usable points
    (no depth, outside the workspace, all background) are dropped, never raised on; compare
    ``detection_index`` with ``range(len(detections))`` to see which. Box z is the plane
    normal, else the up prior, else the camera's up (-y).
    """
    if not isinstance(detections, Detections):
        raise InputError(f'detections: expected a Detections, got {type(detections).__name__}')
    cloud, valid, any_depth = prepare_cloud(frame, settings)
    h, w = valid.shape
    if detections.mask is not None and detections.mask.shape[1:] != (h, w):
        raise InputError(f'detections.mask: expected (N, {h}, {w}) to match the depth image, '
                         f'got {detections.mask.shape}')
    empty = Objects3D.empty(mask=np.zeros((0, h, w), bool))
    if len(detections) == 0 or not any_depth or not valid.any():
        return empty
    if plane is None:
        plane, _ = fit_support_plane(cloud, valid, settings, up_prior(frame, settings))
    else:
        plane = orient_plane(plane)
    if plane is not None:
        up = plane[:3]
    else:
        up = up_prior(frame, settings)
        up = CAMERA_UP if up is None else up
    depth = cloud[..., 2].copy()
    if plane is not None:
        with np.errstate(invalid='ignore'):
            height = cloud @ plane[:3].astype(np.float32) + np.float32(plane[3])
            depth[~(height > settings.inlier_threshold(depth))] = np.nan
    flat_cloud = cloud.reshape(-1, 3)
    rows: List[dict] = []
    for i in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
        if not np.all(np.isfinite(detections.xyxy[i])):
            continue
        if detections.mask is not None:
            ys, xs = np.nonzero(detections.mask[i])
            if ys.size == 0:
                continue
            c0, r0, c1, r1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        else:
            c0, r0 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
            c1, r1 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
            if c1 <= c0 or r1 <= r0:
                continue
        crop_depth = depth[r0:r1, c0:c1]
        region = np.isfinite(crop_depth)
        if detections.mask is not None:
            region &= detections.mask[i, r0:r1, c0:c1]
        if np.count_nonzero(region) < MIN_DETECTION_POINTS:
            continue
        keep = _dominant_component(crop_depth, region, (x1 - c0, y1 - r0, x2 - c0, y2 - r0),
                                   detections.mask is None, settings)
        ys, xs = np.nonzero(keep)
        if ys.size < MIN_DETECTION_POINTS:
            continue
        idx = (ys + r0).astype(np.int64) * w + (xs + c0)
        pts = flat_cloud[idx]
        mask = np.zeros(h * w, bool)
        mask[idx] = True
        sample = box_sample(idx, mask.reshape(h, w), depth, settings.step_threshold)
        pose, size = oriented_box(pts, up, plane, settings.contact_tolerance, sample)
        rows.append(dict(pose=pose, size=size, centroid=mean_point(pts),
                         confidence=detections.confidence[i], class_id=detections.class_id[i],
                         detection_index=i, mask=mask.reshape(h, w), points=pts, indices=idx))
    if not rows:
        return empty
    return Objects3D(pose=np.stack([r['pose'] for r in rows]), size=np.stack([r['size'] for r in rows]),
                     centroid=np.stack([r['centroid'] for r in rows]),
                     confidence=np.array([r['confidence'] for r in rows], np.float32),
                     class_id=np.array([r['class_id'] for r in rows], np.int32),
                     detection_index=np.array([r['detection_index'] for r in rows], np.int32),
                     mask=np.stack([r['mask'] for r in rows]),
                     points=[r['points'] for r in rows], indices=[r['indices'] for r in rows])
