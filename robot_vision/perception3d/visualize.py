"""Debug overlays: instance masks, the support plane and projected 3D boxes drawn on the colour image."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from robot_vision.camera import project
from robot_vision.types import CameraIntrinsics, Objects3D

_EDGES = [(0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def box_corners(pose: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of a box of ``size`` (3,) metres at ``pose`` (4, 4) object->camera."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
    local = 0.5 * signs * np.asarray(size, np.float64)
    return local @ np.asarray(pose)[:3, :3].T + np.asarray(pose)[:3, 3]


def overlay_objects(color: np.ndarray, objects: Objects3D, intrinsics: Optional[CameraIntrinsics] = None,
                    plane_mask: Optional[np.ndarray] = None, seed: int = 1) -> np.ndarray:
    """Draw instances on an (H, W, 3) uint8 RGB image; returns a new RGB image.

    The plane pixels are darkened, each instance mask gets its own tint, and, when
    ``intrinsics`` is given, each oriented box is drawn as a projected wireframe with its x
    (red), y (green) and z (blue) axes and its row number.
    """
    out = np.asarray(color, np.uint8).copy()
    if plane_mask is not None:
        out[plane_mask] = (out[plane_mask] * 0.45).astype(np.uint8)
    rng = np.random.default_rng(seed)
    colours = rng.integers(60, 256, (max(len(objects), 1), 3))
    if objects.mask is not None:
        for i, mask in enumerate(objects.mask):
            out[mask] = (0.4 * out[mask] + 0.6 * colours[i]).astype(np.uint8)
    if intrinsics is None:
        return out
    for i in range(len(objects)):
        pose, size = objects.pose[i], objects.size[i]
        uv = project(box_corners(pose, size), intrinsics)
        if not np.all(np.isfinite(uv)):
            continue
        pts = np.round(uv).astype(np.int32)
        colour = tuple(int(c) for c in colours[i])
        for a, b in _EDGES:
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), colour, 1, cv2.LINE_AA)
        axes = pose[:3, 3] + 0.5 * np.min(size[:2]) * pose[:3, :3].T
        auv = project(np.vstack([pose[:3, 3], axes]), intrinsics)
        if np.all(np.isfinite(auv)):
            a = np.round(auv).astype(np.int32)
            for k, axis_colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
                cv2.line(out, tuple(a[0]), tuple(a[k + 1]), axis_colour, 2, cv2.LINE_AA)
            cv2.putText(out, str(i), tuple(a[0] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return out
