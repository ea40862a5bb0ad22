"""Per-frame records of a replay: JSON-ready, deterministic (rounded, no wall-clock values)."""

from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np

from robot_vision.geometry import quaternion_from_matrix


def _r(values: Any, digits: int = 5) -> Any:
    array = np.asarray(values, np.float64)
    if array.ndim == 0:
        value = float(array)
        return round(value, digits) if math.isfinite(value) else None
    return [_r(v, digits) for v in array]


def _pose_record(pose: np.ndarray) -> Dict[str, Any]:
    return {'position': _r(pose[:3, 3]), 'quaternion': _r(quaternion_from_matrix(pose[:3, :3]))}


def frame_record(index: int, result: Any) -> Dict[str, Any]:
    """A JSON-ready, deterministic record of one FrameResult (no wall-clock values)."""
    names = result.class_names or {}
    dets, objects, grasps, tracks = result.detections, result.objects, result.grasps, result.tracks

    def class_name(c: int) -> str:
        return names.get(int(c), 'object' if c < 0 else str(int(c)))

    record: Dict[str, Any] = {
        'index': index, 'stamp': round(float(result.stamp), 6), 'frame_id': result.frame_id,
        'detections': [{'xyxy': _r(dets.xyxy[i], 2), 'class_id': int(dets.class_id[i]),
                        'class': class_name(dets.class_id[i]), 'confidence': _r(dets.confidence[i], 4),
                        'mask_pixels': None if dets.mask is None else int(np.count_nonzero(dets.mask[i]))}
                       for i in range(len(dets))],
        'objects': [{**_pose_record(objects.pose[i]), 'size': _r(objects.size[i]),
                     'class_id': int(objects.class_id[i]), 'class': class_name(objects.class_id[i]),
                     'confidence': _r(objects.confidence[i], 4),
                     'detection_index': int(objects.detection_index[i]), 'points': int(len(objects.points[i]))}
                    for i in range(len(objects))],
        'grasps': {'count': len(grasps), 'reason': result.grasp_reason,
                   'scores': _r(grasps.score, 4), 'widths': _r(grasps.width),
                   'object_index': [int(k) for k in grasps.object_index],
                   'best': ({**_pose_record(grasps.pose[0]), 'width': _r(grasps.width[0]),
                             'score': _r(grasps.score[0], 4), 'object_index': int(grasps.object_index[0])}
                            if len(grasps) else None)},
        'tracks': [{'id': int(tracks.track_id[i]), 'position': _r(tracks.position[i]),
                    'velocity': _r(tracks.velocity[i]), 'size': _r(tracks.size[i]), 'yaw': _r(tracks.yaw[i]),
                    'class_id': int(tracks.class_id[i]), 'state': int(tracks.state[i]),
                    'moving': bool(tracks.moving[i]), 'hits': int(tracks.hits[i]),
                    'last_seen': round(float(tracks.last_seen[i]), 6)}
                   for i in range(len(tracks))],
        'fixed_frame': result.fixed_frame,
        'plane': None if result.plane is None else _r(result.plane),
        'warnings': list(result.warnings),
    }
    return record
