"""Lift 2D detections (masks or boxes) to 3D object instances with robust background rejection."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from robot_vision.errors import InputError
from robot_vision.perception3d.boxes import oriented_box
from robot_vision.perception3d.plane import orient_plane
from robot_vision.perception3d.segmentation import (SegmentationSettings, fit_support_plane, prepare_cloud,
                                                    up_prior)
from robot_vision.types import Detections, Objects3D, RGBDFrame

#: A detection needs at least this many object points after outlier rejection to be kept.
MIN_DETECTION_POINTS = 20

#: Without a plane or an up prior, the box z axis is the camera's "up" (optical frame -y).
CAMERA_UP = np.array([0.0, -1.0, 0.0])


def _depth_clusters(z: np.ndarray, settings: SegmentationSettings) -> np.ndarray:
    """Label (N,) depths into clusters separated by gaps larger than the depth-gap threshold."""
    order = np.argsort(z, kind='stable')
    zs = z[order]
    gaps = np.diff(zs) > settings.detection_depth_gap + settings.detection_depth_gap_relative * zs[:-1]
    labels_sorted = np.r_[0, np.cumsum(gaps)]
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return labels


def objects_from_detections(frame: RGBDFrame, detections: Detections,
                            settings: SegmentationSettings = SegmentationSettings(),
                            plane: Optional[np.ndarray] = None) -> Objects3D:
    """Turn 2D detections into 3D instances using the frame's depth.

    ``frame.depth`` (H, W) float32 metres must match ``frame.intrinsics``; ``detections``
    holds boxes ``xyxy`` in pixels of that image and optional (N, H, W) masks. For each
    detection the region is its mask when present, else its box (clipped to the image).
    Region pixels with valid depth inside the workspace are kept; when a support ``plane``
    (4,) [a, b, c, d] is known (or found here by the same RANSAC as :func:`segment_scene`
    when ``plane`` is None), points on or below it are dropped. The remaining depths are
    split into clusters at gaps larger than ``detection_depth_gap +
    detection_depth_gap_relative * z``; the cluster with the largest weight is kept, where a
    point weighs more near the box centre (Gaussian, sigma = 1/4 of the box size) for boxes,
    and uniformly for masks, so background seen around the object is rejected.

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
    flat_cloud = cloud.reshape(-1, 3)
    rows: List[dict] = []
    for i in range(len(detections)):
        x1, y1, x2, y2 = detections.xyxy[i]
        if not np.all(np.isfinite(detections.xyxy[i])):
            continue
        c0, r0 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        c1, r1 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
        if detections.mask is not None:
            region = detections.mask[i]
            ys, xs = np.nonzero(region & valid)
        else:
            if c1 <= c0 or r1 <= r0:
                continue
            ys, xs = np.nonzero(valid[r0:r1, c0:c1])
            ys, xs = ys + r0, xs + c0
        if ys.size < MIN_DETECTION_POINTS:
            continue
        idx = ys.astype(np.int64) * w + xs
        pts = flat_cloud[idx]
        if plane is not None:
            height = pts @ plane[:3].astype(np.float32) + np.float32(plane[3])
            above = height > settings.inlier_threshold(pts[:, 2])
            idx, pts, ys, xs = idx[above], pts[above], ys[above], xs[above]
            if idx.size < MIN_DETECTION_POINTS:
                continue
        labels = _depth_clusters(pts[:, 2], settings)
        if detections.mask is not None:
            weight = np.ones(idx.size)
        else:
            sx, sy = max((x2 - x1) / 4.0, 1.0), max((y2 - y1) / 4.0, 1.0)
            weight = np.exp(-0.5 * (((xs + 0.5 - 0.5 * (x1 + x2)) / sx) ** 2
                                    + ((ys + 0.5 - 0.5 * (y1 + y2)) / sy) ** 2))
        scores = np.bincount(labels, weights=weight)
        keep = labels == int(np.argmax(scores))
        if np.count_nonzero(keep) < MIN_DETECTION_POINTS:
            continue
        idx, pts = idx[keep], pts[keep]
        pose, size = oriented_box(pts, up, plane, settings.contact_tolerance)
        mask = np.zeros(h * w, bool)
        mask[idx] = True
        rows.append(dict(pose=pose, size=size, centroid=pts.mean(axis=0, dtype=np.float64),
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
