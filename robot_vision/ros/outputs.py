"""Every output message of one pipeline result, plus the overlay and instance-label images they carry.

:func:`result_messages` is what the nodes publish and what the bag replay records for one
:class:`~robot_vision.pipeline.FrameResult`; the topic names and types come from
:data:`robot_vision.ros.topics.OUTPUT_TOPICS`. All message building goes through
:mod:`robot_vision.ros.conversions`. The two image helpers are plain numpy/cv2.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from robot_vision.camera import project
from robot_vision.errors import InputError
from robot_vision.geometry import invert_transform, mask_windows, transform_points
from robot_vision.grasping.gripper import GripperModel
from robot_vision.perception3d.visualize import box_corners
from robot_vision.ros import conversions as conv
from robot_vision.ros.topics import OUTPUT_TOPIC_TYPES, OUTPUT_TOPICS
from robot_vision.tracking.ids import NO_ID, detection_rows
from robot_vision.types import Detections, Tracks, TrackState

_BOX_EDGES = [(0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7)]

#: Spacing (m) of the points sampled on tracked boxes for the ``obstacles`` cloud.
OBSTACLE_SPACING = 0.03


def _rgb255(index: int) -> Tuple[int, int, int]:
    r, g, b = conv.palette(index)
    return int(r * 255), int(g * 255), int(b * 255)


#: ``instance_labels`` pixel values: ids 1..LABEL_IDS are their own value, larger (track) ids wrap around
#: into that range, and detections without an id take the values above it, in message order.
LABEL_IDS = 60000


def object_ids(result: Any) -> List[int]:
    """The numeric id of each of ``result``'s objects: the id of the detection it came from (-1: none).

    The detection is ``objects.detection_index``; objects of the depth backend (index -1) are its
    detections row for row (:func:`robot_vision.tracking.ids.detection_rows`). With tracking the ids
    are track ids, stable across frames (see :mod:`robot_vision.tracking.ids`); an object with no
    detection gets -1 (no id) then, else its row + 1. So an object has the same id on
    ``detections``, ``instance_labels``, ``objects``, its markers and its grasps on
    ``scored_grasps``, and the same colour wherever drawn.
    """
    det_ids = conv.detection_ids(result.detections)
    rows = detection_rows(result.objects, len(det_ids))
    missing = NO_ID if result.detections.tracker_id is not None else None
    return [det_ids[j] if j >= 0 else (i + 1 if missing is None else missing) for i, j in enumerate(rows)]


def label_values(ids: Sequence[int]) -> np.ndarray:
    """The ``instance_labels`` pixel value (uint16, 1..65535) of each detection id (see :data:`LABEL_IDS`)."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    values = (ids - 1) % LABEL_IDS + 1
    none = ids < 0
    if none.sum() > 65535 - LABEL_IDS:
        raise InputError(f'instance labels: expected at most {65535 - LABEL_IDS} detections without an id, '
                         f'got {int(none.sum())}')
    values[none] = LABEL_IDS + 1 + np.arange(int(none.sum()))
    return values.astype(np.uint16)


def instance_label_image(detections: Detections, shape: Tuple[int, int],
                         windows: Optional[List[Optional[Tuple[slice, slice]]]] = None) -> np.ndarray:
    """Paint detections into an (H, W) uint16 image: pixel = the detection's id, 0 = background.

    The id is what ``detections_to_msg`` puts in ``Detection2D.id``: the tracker id when the
    detections carry one, else the row index + 1; ids above :data:`LABEL_IDS` wrap around and
    detections without an id take the values above it (:func:`label_values`). ``shape`` is (H, W).
    Each detection's mask is used when present, else its box. Larger instances are painted first so
    that a smaller one lying on top of a larger one stays visible; ties keep index order.
    ``windows``: :func:`mask_windows` of the masks when already known.
    """
    height, width = int(shape[0]), int(shape[1])
    labels = np.zeros((height, width), np.uint16)
    if len(detections) > 65534:
        raise InputError(f'instance labels: expected at most 65534 detections (uint16), got {len(detections)}')
    if len(detections) == 0:
        return labels
    masks = detections.mask
    if masks is not None and masks.shape[1:] != (height, width):
        raise InputError(f'Detections.mask: expected masks of {height}x{width} (HxW), got {masks.shape[1:]}')
    values = label_values(conv.detection_ids(detections))
    if masks is not None:
        windows = mask_windows(masks) if windows is None else windows
        areas = [0 if w is None else np.count_nonzero(masks[k][w]) for k, w in enumerate(windows)]
    else:
        areas = detections.area
    for i in sorted(range(len(detections)), key=lambda k: (-float(areas[k]), k)):
        if masks is not None:
            if windows[i] is not None:
                labels[windows[i]][masks[i][windows[i]]] = values[i]
        else:
            x1, y1, x2, y2 = np.round(detections.xyxy[i]).astype(int)
            labels[max(y1, 0):max(min(y2, height), 0), max(x1, 0):max(min(x2, width), 0)] = values[i]
    return labels


def _draw_polyline(image: np.ndarray, uv: np.ndarray, pairs: Sequence[Tuple[int, int]],
                   colour: Tuple[int, int, int], thickness: int) -> None:
    uv = np.asarray(uv, np.float64)
    drawable = (np.isfinite(uv) & (np.abs(uv) < 1e5)).all(axis=1).tolist()
    pixels = np.round(np.where(np.asarray(drawable)[:, None], uv, 0.0)).astype(int).tolist()
    for a, b in pairs:
        if drawable[a] and drawable[b]:
            cv2.line(image, tuple(pixels[a]), tuple(pixels[b]), colour, thickness, cv2.LINE_AA)


def _label(image: np.ndarray, text: str, xy: Tuple[int, int], colour: Tuple[int, int, int]) -> None:
    """Draw ``text`` on a filled box of ``colour`` with its lower-left corner at ``xy``."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    x = int(np.clip(xy[0], 0, max(image.shape[1] - w - 2, 0)))
    y = int(np.clip(xy[1], h + 2, image.shape[0] - base - 1))
    cv2.rectangle(image, (x - 1, y - h - 2), (x + w + 1, y + base), colour, -1)
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, ink, 1, cv2.LINE_AA)


def grasp_outline_segments(grasps_pose: np.ndarray, width: np.ndarray,
                           gripper: GripperModel = GripperModel()) -> List[np.ndarray]:
    """Gripper outlines, (K, 2, 3) line segments per grasp in the grasps' frame (metres).

    Drawn in the grasp frame of :mod:`robot_vision.grasping.gripper` with ``gripper``'s
    dimensions at its pre-grasp opening for ``width``: the two fingers (inner and outer edge,
    from the tips at z = 0 back to z = -finger_depth), the palm bar across them, and a stem of
    ``palm_depth`` behind the palm along -z (the approach direction is +z).
    """
    outlines = []
    openings = gripper.pregrasp_opening(np.asarray(width, np.float64).reshape(-1))
    depth, thick, palm = gripper.finger_depth, gripper.finger_thickness, gripper.palm_depth
    for pose, opening in zip(np.asarray(grasps_pose).reshape(-1, 4, 4), openings):
        h = float(opening) / 2
        segments = []
        for sign in (-1.0, 1.0):
            inner, outer = sign * h, sign * (h + thick)
            segments += [[[inner, 0, 0], [inner, 0, -depth]], [[outer, 0, 0], [outer, 0, -depth]],
                         [[inner, 0, 0], [outer, 0, 0]]]
        segments += [[[-h - thick, 0, -depth], [h + thick, 0, -depth]], [[0, 0, -depth], [0, 0, -depth - palm]]]
        local = np.asarray(segments, np.float64)
        outlines.append(transform_points(pose, local.reshape(-1, 3)).reshape(-1, 2, 3))
    return outlines


def overlay_image(color: np.ndarray, result: Any, camera_to_fixed: Optional[np.ndarray] = None,
                  windows: Optional[List[Optional[Tuple[slice, slice]]]] = None) -> np.ndarray:
    """Draw a result on its colour image; returns a new (H, W, 3) uint8 RGB image.

    Draws instance masks (tinted per detection), the 2D boxes with class and score, the
    objects' oriented 3D boxes projected with the intrinsics, the grasps' gripper outlines (the
    best in green, thicker), and, when ``camera_to_fixed`` (4x4, camera -> fixed frame) is
    given, the tracks projected back into the image with their ids ``#id``. ``windows``:
    :func:`mask_windows` of the detections' masks when already known.
    """
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise InputError(f'overlay colour image: expected (H, W, 3) uint8 RGB, got {color.shape} {color.dtype}')
    out = color.copy()
    intr = result.intrinsics
    dets = result.detections
    names = result.class_names or {}
    det_ids = conv.detection_ids(dets)
    if dets.mask is not None and dets.mask.shape[1:] == out.shape[:2]:
        windows = mask_windows(dets.mask) if windows is None else windows
        levels = np.arange(256, dtype=np.uint8)[:, None]
        for i, window in enumerate(windows):
            if window is None:
                continue
            # 0.45 * pixel + 0.55 * tint per channel, as a table of the 256 values of a pixel
            table = (0.45 * levels + 0.55 * np.array(_rgb255(det_ids[i]), np.float32)).astype(np.uint8)
            region = out[window]
            np.copyto(region, cv2.LUT(region, table.reshape(1, 256, 3)), where=dets.mask[i][window][:, :, None])
    for i in range(len(dets)):
        x1, y1, x2, y2 = np.round(dets.xyxy[i]).astype(int)
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), _rgb255(det_ids[i]), 1)
        cls = int(dets.class_id[i])
        name = names.get(cls, 'obj' if cls < 0 else str(cls))
        _label(out, f'{conv.id_text(det_ids[i]) or "-"}:{name} {float(dets.confidence[i]):.2f}',
               (x1 + 2, max(y1 - 4, 12)), _rgb255(det_ids[i]))
    objects = result.objects
    for i, object_id in enumerate(object_ids(result)):
        uv = project(box_corners(objects.pose[i], objects.size[i]), intr)
        _draw_polyline(out, uv, _BOX_EDGES, _rgb255(object_id), 2)
    grasps = result.grasps
    if len(grasps):
        outlines = grasp_outline_segments(grasps.pose, grasps.width)
        for i in reversed(range(len(outlines))):
            uv = project(outlines[i].reshape(-1, 3), intr)
            pairs = [(2 * k, 2 * k + 1) for k in range(len(outlines[i]))]
            _draw_polyline(out, uv, pairs, (40, 230, 60) if i == 0 else (230, 180, 30), 3 if i == 0 else 1)
    tracks = result.tracks
    if camera_to_fixed is not None and len(tracks):
        fixed_to_camera = invert_transform(np.asarray(camera_to_fixed, np.float64))
        uv = project(transform_points(fixed_to_camera, tracks.position), intr)
        for i in range(len(tracks)):
            if not np.all(np.isfinite(uv[i])):
                continue
            track_id = int(tracks.track_id[i])
            u, v = np.round(uv[i]).astype(int)
            cv2.circle(out, (int(u), int(v)), 5, (255, 255, 255), -1)
            cv2.circle(out, (int(u), int(v)), 3, _rgb255(track_id), -1)
            _label(out, f'track #{track_id}', (u + 6, v - 6), _rgb255(track_id))
    return out


def obstacle_points(tracks: Tracks, spacing: float = OBSTACLE_SPACING) -> np.ndarray:
    """Points (N, 3) float32 on the faces of the live tracks' boxes, in the tracks' fixed frame.

    Deleted tracks are left out. Each box (centre ``position``, extent ``size``, rotated by
    ``yaw`` about z) is sampled on its six faces at about ``spacing`` metres.
    """
    if not spacing > 0:
        raise InputError(f'obstacle spacing: expected a positive number of metres, got {spacing}')
    clouds = []
    for i in range(len(tracks)):
        if int(tracks.state[i]) == TrackState.DELETED:
            continue
        size = np.maximum(np.asarray(tracks.size[i], np.float64), 1e-3)
        axes = [np.linspace(-s / 2, s / 2, max(2, int(np.ceil(s / spacing)) + 1)) for s in size]
        grid = np.stack(np.meshgrid(*axes, indexing='ij'), -1).reshape(-1, 3)
        on_face = np.any(np.isclose(np.abs(grid), size / 2), axis=1)
        local = grid[on_face]
        c, s = np.cos(tracks.yaw[i]), np.sin(tracks.yaw[i])
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        clouds.append(local @ rot.T + tracks.position[i])
    return np.concatenate(clouds).astype(np.float32) if clouds else np.zeros((0, 3), np.float32)


def _object_cloud(result: Any, ids: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """The objects' points (N, 3) float32 and their colours (N, 3) uint8 (:func:`palette` of each object's id)."""
    clouds = [np.asarray(cloud, np.float32).reshape(-1, 3) for cloud in result.objects.points]
    if not clouds:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    colours = np.array([_rgb255(object_id) for object_id in ids], np.uint8).reshape(-1, 3)
    return np.concatenate(clouds), np.repeat(colours, [len(cloud) for cloud in clouds], axis=0)


def result_messages(result: Any, color: Optional[np.ndarray], camera_to_fixed: Optional[np.ndarray] = None,
                    overlay: Optional[np.ndarray] = None,
                    topics: Optional[Sequence[str]] = None) -> List[Tuple[str, Any]]:
    """Build the output messages of one FrameResult as (relative topic name, message) pairs.

    ``color`` is the frame's (H, W, 3) uint8 RGB image (None: no ``detections_overlay``);
    ``camera_to_fixed`` (4x4) lets the overlay label tracks; ``overlay`` is an already drawn
    :func:`overlay_image` to reuse. ``topics`` selects which messages to build (default: all of
    OUTPUT_TOPICS). Camera-frame topics carry ``result.frame_id``, fixed-frame topics
    ``result.fixed_frame``; all carry ``result.stamp``. ``best_grasp`` is only included when there
    is a grasp. The order follows OUTPUT_TOPICS.
    """
    wanted = set(OUTPUT_TOPIC_TYPES if topics is None else topics)
    unknown = sorted(wanted - set(OUTPUT_TOPIC_TYPES))
    if unknown:
        raise InputError(f'result_messages: topics {unknown} are not in OUTPUT_TOPICS')
    frame, fixed, stamp = result.frame_id, result.fixed_frame, conv.seconds_to_stamp(result.stamp)
    names = result.class_names or {}
    objects, grasps, tracks, dets = result.objects, result.grasps, result.tracks, result.detections

    found: List[List[Optional[Tuple[slice, slice]]]] = []

    def windows() -> List[Optional[Tuple[slice, slice]]]:  # of the masks, found once for the label image and overlay
        if not found:
            found.append(mask_windows(dets.mask))
        return found[0]

    def overlay_msg():
        drawn = overlay if overlay is not None else overlay_image(color, result, camera_to_fixed, windows())
        return conv.numpy_to_image(drawn, 'rgb8', frame, stamp)

    def label_info():
        info = conv.label_info_msg(names, frame)
        info.header.stamp = stamp
        return info

    def object_cloud():
        points, colours = _object_cloud(result, ids)
        return conv.points_to_cloud(points, frame, stamp, colours)

    ids = object_ids(result)

    def markers():
        texts = [f'{conv.id_text(k) or "-"} {names.get(int(c), "obj" if c < 0 else str(int(c)))}'
                 for k, c in zip(ids, objects.class_id)]
        return conv.object_markers(objects, frame, stamp, labels=texts, ids=ids)

    builders = {
        'detections': lambda: conv.detections_to_msg(dets, frame, stamp),
        'instance_labels': lambda: conv.numpy_to_image(
            instance_label_image(dets, result.intrinsics.shape, windows() if dets.mask is not None else None),
            'mono16', frame, stamp),
        'detections_overlay': overlay_msg if color is not None else None,
        'label_info': label_info,
        'objects': lambda: conv.objects_to_msg(objects, frame, stamp, ids=[conv.id_text(k) for k in ids]),
        'object_points': object_cloud,
        'object_markers': markers,
        'grasps': lambda: conv.grasps_to_pose_array(grasps, frame, stamp),
        'best_grasp': (lambda: conv.pose_stamped(grasps.pose[0], frame, stamp)) if len(grasps) else None,
        'scored_grasps': lambda: conv.grasps_to_detections(grasps, frame, stamp, [conv.id_text(k) for k in ids],
                                                           objects.class_id),
        'grasp_markers': lambda: conv.gripper_markers(grasp_outline_segments(grasps.pose, grasps.width),
                                                      frame, stamp),
        'tracked_objects': lambda: conv.tracks_to_msg(tracks, fixed, stamp),
        'track_markers': lambda: conv.track_markers(tracks, fixed, stamp),
        'obstacles': lambda: conv.points_to_cloud(obstacle_points(tracks), fixed, stamp),
    }
    return [(topic.name, builders[topic.name]()) for topic in OUTPUT_TOPICS
            if topic.name in wanted and builders[topic.name] is not None]
