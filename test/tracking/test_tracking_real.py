"""Real data: the 3-frame PCL Kinect sequence keeps the same track ids for the same objects."""

import cv2
import numpy as np

from robot_vision.datasets import load_pcl_sequence
from robot_vision.perception3d.segmentation import segment_scene
from robot_vision.tracking import Tracker, observations_from_objects
from robot_vision.types import TrackState


def _mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 0.0


def test_pcl_sequence_keeps_ids(shared_data, artifacts_dir):
    frames = load_pcl_sequence()
    assert len(frames) == 3
    tracker = Tracker()
    segmentations, assigned = [], []
    for frame in frames:
        seg = segment_scene(frame)
        assert seg.ok, seg.status
        # The Kinect is static in this sequence, so the fixed frame is the camera frame.
        tracker.update(observations_from_objects(seg.objects, np.eye(4)), frame.stamp)
        assert tracker.rejected_reason is None
        segmentations.append(seg.objects)
        assigned.append(tracker.assigned_ids.copy())
        assert np.all(assigned[-1] > 0)

    # Independent reference: with a static camera the same physical object covers nearly the
    # same pixels in consecutive frames, so instances whose masks overlap (IoU > 0.5) are the
    # same object and must carry the same track id.
    pairs = 0
    for k in range(2):
        a, b = segmentations[k], segmentations[k + 1]
        for i in range(len(a)):
            for j in range(len(b)):
                if _mask_iou(a.mask[i], b.mask[j]) > 0.5:
                    assert assigned[k][i] == assigned[k + 1][j], f'frame {k} object {i} vs frame {k + 1} object {j}'
                    pairs += 1
    print(f'\nPCL sequence: {[len(s) for s in segmentations]} objects per frame, '
          f'{pairs} same-object pairs across frames, ids per frame {[a.tolist() for a in assigned]}')
    assert pairs >= 8

    # The two largest instances (laptop and box) are tracked through all three frames, confirmed
    # after the third, and not flagged as moving.
    tracks = tracker.tracks()
    for rank in range(2):
        ids = {int(assigned[k][rank]) for k in range(3)}
        assert len(ids) == 1
        row = int(np.flatnonzero(tracks.track_id == ids.pop())[0])
        assert tracks.state[row] == TrackState.CONFIRMED and tracks.hits[row] == 3
        assert not tracks.moving[row]

    # Picture for a human: each instance tinted by its track id, with the id written on it.
    palette = np.random.default_rng(7).integers(60, 256, (64, 3))
    panels = []
    for frame, objects, ids in zip(frames, segmentations, assigned, strict=True):
        image = frame.color.copy()
        for mask, tid in zip(objects.mask, ids, strict=True):
            image[mask] = (0.4 * image[mask] + 0.6 * palette[tid % 64]).astype(np.uint8)
            ys, xs = np.nonzero(mask)
            cv2.putText(image, f'id {tid}', (int(xs.mean()), int(ys.mean())), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, (255, 255, 255), 2)
        panels.append(image)
    cv2.imwrite(str(artifacts_dir / 'pcl_sequence_track_ids.png'),
                cv2.cvtColor(np.hstack(panels), cv2.COLOR_RGB2BGR))
