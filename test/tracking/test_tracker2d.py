"""Image-space tracker: moving boxes with an occlusion and a crossing, the shared lifecycle and stamps."""

import logging

import numpy as np
import pytest

from robot_vision.errors import ConfigError, InputError
from robot_vision.tracking import MotAccumulator, Tracker2D, Tracker2DSettings, Tracks2D, box_iou
from robot_vision.types import Detections, TrackState


def box_sequence(seed=0, n_frames=80, noise_px=0.0, occlude=(0, 30, 10)):
    """Three 60x120 px boxes moving at constant pixel velocity; box 0 is hidden for 10 frames."""
    rng = np.random.default_rng(seed)
    starts = np.array([[100.0, 200.0], [500.0, 220.0], [300.0, 100.0]])
    velocities = np.array([[80.0, 0.0], [-70.0, 5.0], [0.0, 40.0]])   # px/s; boxes 0 and 1 cross
    sizes = np.array([[60.0, 120.0], [50.0, 110.0], [70.0, 70.0]])
    stamps = np.cumsum(rng.uniform(0.07, 0.13, n_frames))
    frames = []
    for k, t in enumerate(stamps):
        centres = starts + velocities * (t - stamps[0])
        visible = np.ones(3, bool)
        obj, first, count = occlude
        visible[obj] = not (first <= k < first + count)
        c = centres[visible] + rng.normal(0, noise_px, (visible.sum(), 2)) if noise_px else centres[visible]
        half = sizes[visible] / 2
        dets = Detections(xyxy=np.hstack([c - half, c + half]), confidence=np.full(visible.sum(), 0.9),
                          class_id=np.zeros(visible.sum(), np.int32))
        frames.append((t, dets, np.arange(1, 4), centres, velocities))
    return frames


@pytest.mark.parametrize('noise_px', [0.0, 3.0])
def test_boxes_keep_their_ids_through_occlusion_and_crossing(noise_px):
    tracker = Tracker2D()
    acc = MotAccumulator(20.0)  # pixels
    for t, dets, gt_ids, centres, velocities in box_sequence(noise_px=noise_px):
        tracks = tracker.update(dets, t)
        assert isinstance(tracks, Tracks2D)
        hyp_centres = 0.5 * (tracks.xyxy[:, :2] + tracks.xyxy[:, 2:])
        acc.update(gt_ids, centres, tracks.track_id, hyp_centres, velocities, tracks.velocity)
    m = acc.result()
    print(f'\n2D boxes, noise {noise_px} px: {m.summary()} (px, px/s)')
    assert m.mota >= 0.95 and m.num_switches == 0


def test_lifecycle_and_stamps_are_shared_with_the_3d_tracker(caplog):
    tracker = Tracker2D(Tracker2DSettings(confirm_hits=2, coast_timeout=0.3))
    box = Detections(xyxy=[[10, 10, 50, 50]], confidence=[0.8], class_id=[1])
    none = Detections.empty()
    assert len(tracker.update(box, 0.0)) == 0
    tracks = tracker.update(box, 0.1)
    assert tracks.state.tolist() == [TrackState.CONFIRMED]
    with caplog.at_level(logging.WARNING, logger='robot_vision.tracking'):
        tracker.update(box, 0.1)
    assert 'duplicate' in tracker.rejected_reason and tracker.tracks().hits.tolist() == [2]
    assert tracker.update(none, 0.2).state.tolist() == [TrackState.COASTING]
    tid = int(tracks.track_id[0])
    assert len(tracker.update(none, 0.45)) == 0 and tracker.deleted_ids.tolist() == [tid]
    tracker.update(box, 0.5)
    assert int(tracker.tracks(include_tentative=True).track_id[0]) > tid
    dets = tracks.to_detections()
    assert dets.tracker_id.tolist() == [tid] and dets.class_id.tolist() == [1]


def test_velocity_and_prediction_in_pixels():
    tracker = Tracker2D()
    for k in range(20):
        x = 100 + 50.0 * 0.1 * k
        tracker.update(Detections(xyxy=[[x, 100, x + 40, 140]], confidence=[1.0], class_id=[0]), 0.1 * k)
    tracks = tracker.tracks()
    np.testing.assert_allclose(tracks.velocity[0], [50.0, 0.0], atol=0.5)
    predicted = tracker.predict(2.9)
    np.testing.assert_allclose(predicted.xyxy[0], tracks.xyxy[0] + np.array([50, 0, 50, 0]), atol=1.0)


def test_class_consistency_and_bad_input():
    tracker = Tracker2D(Tracker2DSettings(confirm_hits=1))
    tracker.update(Detections(xyxy=[[0, 0, 10, 10]], confidence=[1.0], class_id=[0]), 0.0)
    tracker.update(Detections(xyxy=[[0, 0, 10, 10]], confidence=[1.0], class_id=[2]), 0.1)
    assert len(tracker) == 2
    with pytest.raises(InputError, match='Detections'):
        tracker.update(np.zeros((1, 4)), 0.2)
    with pytest.raises(InputError, match='finite'):
        tracker.update(Detections(xyxy=[[0, 0, np.nan, 10]], confidence=[1.0], class_id=[0]), 0.2)
    with pytest.raises(ConfigError, match='iou_threshold'):
        Tracker2DSettings(iou_threshold=1.0)


def test_box_iou_hand_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0], [np.nan] * 4])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]])
    # overlap 5x10 = 50, union 100 + 100 - 50 = 150 -> 1/3; identical -> 1; empty/NaN -> 0
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0], [0.0, 0.0], [0.0, 0.0]])
