"""Draw parallel-jaw grasps (finger and palm outlines) into a camera image for visual checks."""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from robot_vision.camera import project
from robot_vision.errors import InputError
from robot_vision.geometry import invert_transform
from robot_vision.grasping.gripper import GripperModel
from robot_vision.types import CameraIntrinsics, Grasps

# The 12 edges of a box given by its 8 corners in itertools.product order over (x, y, z).
_EDGES = [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7)]


def gripper_boxes(width: float, gripper: GripperModel) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Return (lo, hi) corners in the grasp frame of the left finger, right finger and palm.

    The fingers are drawn at the pre-grasp opening ``gripper.pregrasp_opening(width)``.
    """
    g = gripper
    half = float(g.pregrasp_opening(width)) / 2
    fy, fd = g.finger_width / 2, g.finger_depth
    left = (np.array([-half - g.finger_thickness, -fy, -fd]), np.array([-half, fy, 0.0]))
    right = (np.array([half, -fy, -fd]), np.array([half + g.finger_thickness, fy, 0.0]))
    palm = (np.array([-g.palm_width / 2, -g.palm_thickness / 2, -fd - g.palm_depth]),
            np.array([g.palm_width / 2, g.palm_thickness / 2, -fd]))
    return [left, right, palm]


def draw_grasps(image: np.ndarray, grasps: Grasps, intrinsics: CameraIntrinsics,
                gripper: GripperModel = GripperModel(), colors: Optional[List[Tuple[int, int, int]]] = None,
                thickness: int = 1) -> np.ndarray:
    """Return a copy of ``image`` (H, W, 3) uint8 with each grasp's fingers, palm and approach drawn.

    ``grasps.pose`` are TCP poses in the camera optical frame (as the planner returns them);
    ``colors`` gives one (R, G, B) per grasp (default: green for the best, fading to red).
    The approach axis is drawn as a line from 6 cm behind the fingertip centre to the centre.
    """
    import cv2
    canvas = np.array(image, dtype=np.uint8, copy=True)
    if canvas.ndim != 3 or canvas.shape[2] != 3:
        raise InputError(f'image: expected (H, W, 3) uint8, got {canvas.shape}')
    intrinsics.check_image(canvas.shape)
    grasp_frames = np.asarray(grasps.pose) @ invert_transform(gripper.tcp_offset)
    n = len(grasps)
    for i in range(n):
        if colors is not None:
            color = tuple(int(c) for c in colors[i % len(colors)])
        else:
            t = i / max(n - 1, 1)
            color = (int(255 * t), int(255 * (1 - t)), 0)
        pose = grasp_frames[i]
        for lo, hi in gripper_boxes(float(grasps.width[i]), gripper):
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                                for z in (lo[2], hi[2])])
            world = corners @ pose[:3, :3].T + pose[:3, 3]
            uv = project(world, intrinsics)
            for a, b in _EDGES:
                if np.all(np.isfinite(uv[[a, b]])):
                    cv2.line(canvas, tuple(int(round(v)) for v in uv[a]), tuple(int(round(v)) for v in uv[b]),
                             color, thickness, cv2.LINE_AA)
        axis = np.array([pose[:3, 3] - 0.06 * pose[:3, 2], pose[:3, 3]])
        uv = project(axis, intrinsics)
        if np.all(np.isfinite(uv)):
            cv2.arrowedLine(canvas, tuple(int(round(v)) for v in uv[0]), tuple(int(round(v)) for v in uv[1]),
                            color, thickness, cv2.LINE_AA, tipLength=0.2)
    return canvas
