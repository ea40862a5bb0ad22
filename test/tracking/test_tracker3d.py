"""3D tracker: scripted ground-truth scenarios (CLEAR-MOT), lifecycle, stamps, gating and conversions."""

import logging

import numpy as np
import pytest

from robot_vision.errors import ConfigError, InputError
from robot_vision.geometry import make_transform
from robot_vision.tracking import (MotAccumulator, Observations, Tracker, TrackerSettings,
                                   observations_from_objects)
from robot_vision.tracking import kalman
from robot_vision.tracking.scenarios import CLEAN_SCENARIOS, NOISY_SCENARIOS, make_scenario
from robot_vision.types import Detections, Objects3D, TrackState

THRESHOLD = 0.5  # metres, CLEAR-MOT match distance


def run_scenario(name, settings=None, seed=0):
    scenario = make_scenario(name, seed)
    tracker = Tracker(settings or TrackerSettings())
    acc = MotAccumulator(THRESHOLD)
    history = []
    for frame in scenario.frames:
        obs = observations_from_objects(frame.objects, frame.camera_to_fixed)
        tracks = tracker.update(obs, frame.stamp)
        assert tracker.rejected_reason is None
        acc.update(frame.gt_ids, frame.gt_position, tracks.track_id, tracks.position,
                   frame.gt_velocity, tracks.velocity)
        history.append(tracks)
    return acc.result(), history, scenario


def obs_at(*positions, class_id=None, **kwargs):
    positions = np.asarray(positions, float).reshape(-1, 3)
    if class_id is not None:
        kwargs['class_id'] = np.full(len(positions), class_id)
    return Observations(position=positions, **kwargs)


# ----------------------------------------------------------------------------- scenarios
@pytest.mark.parametrize('name', CLEAN_SCENARIOS)
def test_clean_scenarios_mota_and_no_id_switches(name):
    metrics, _, _ = run_scenario(name)
    print(f'\n{name:26s} {metrics.summary()}')
    assert metrics.mota >= 0.95
    assert metrics.num_switches == 0


@pytest.mark.parametrize('name', NOISY_SCENARIOS)
def test_noisy_scenarios_report(name):
    metrics, _, _ = run_scenario(name)
    print(f'\n{name:26s} {metrics.summary()}')
    # Regression guards well below the measured values (see docs/tracking.md).
    assert metrics.mota >= 0.9
    assert metrics.num_switches <= 2
    assert metrics.velocity_rmse < 0.35


def test_constant_acceleration_model_on_turning_objects():
    metrics, _, _ = run_scenario('turning', TrackerSettings(constant_acceleration=True, process_noise=0.5))
    print(f'\nturning (CA model)         {metrics.summary()}')
    assert metrics.mota >= 0.95 and metrics.num_switches == 0


def test_static_objects_stay_static_while_the_camera_moves():
    # Observations are made in the moving camera's frame and moved to the fixed frame with the
    # known camera pose, so static objects must come out static (and the mover moving).
    _, history, scenario = run_scenario('noisy_moving_camera')
    kinds = [obj.kind for obj in scenario.settings.objects]
    static_rows = mover_rows = mover_flagged = 0
    for frame, tracks in zip(scenario.frames, history, strict=True):
        for row in range(len(tracks)):
            dist = np.linalg.norm(frame.gt_position - tracks.position[row], axis=1)
            gt = int(np.argmin(dist))
            assert dist[gt] < THRESHOLD
            if kinds[gt] == 'static':
                assert not tracks.moving[row], 'a static object was flagged moving'
                static_rows += 1
            else:
                mover_rows += 1
                mover_flagged += int(tracks.moving[row])  # 0.63 m/s > moving_enter_speed
    assert static_rows > 250
    assert mover_flagged >= 0.9 * mover_rows


def test_occluded_object_keeps_its_id_and_coasts():
    _, history, scenario = run_scenario('occlusion')
    obj, first, count = scenario.settings.occlusions[0]
    def id_near(k):
        tracks = history[k]
        d = np.linalg.norm(tracks.position - scenario.frames[k].gt_position[obj], axis=1)
        return int(tracks.track_id[np.argmin(d)]), int(tracks.state[np.argmin(d)])
    before, state_before = id_near(first - 1)
    during, state_during = id_near(first + count - 1)
    after, state_after = id_near(first + count + 1)
    assert before == during == after
    assert (state_before, state_during, state_after) == (TrackState.CONFIRMED, TrackState.COASTING,
                                                         TrackState.CONFIRMED)


# ----------------------------------------------------------------------------- lifecycle and stamps
def test_lifecycle_confirm_coast_delete_and_ids_never_reused():
    s = TrackerSettings(confirm_hits=3, coast_timeout=0.5, tentative_timeout=0.2)
    tracker = Tracker(s)
    for k in range(2):
        assert len(tracker.update(obs_at([1, 0, 0]), 0.1 * k)) == 0  # tentative: not reported
    assert tracker.tracks(include_tentative=True).state.tolist() == [TrackState.TENTATIVE]
    tracks = tracker.update(obs_at([1, 0, 0]), 0.2)
    assert tracks.state.tolist() == [TrackState.CONFIRMED] and tracks.hits.tolist() == [3]
    first_id = int(tracks.track_id[0])
    tracks = tracker.update(obs_at(), 0.4)
    assert tracks.state.tolist() == [TrackState.COASTING] and tracks.last_seen.tolist() == [0.2]
    tracks = tracker.update(obs_at(), 0.71)  # unseen for 0.51 s > coast_timeout
    assert len(tracks) == 0 and tracker.deleted_ids.tolist() == [first_id]
    tracker.update(obs_at([5, 0, 0]), 0.8)
    new_id = int(tracker.tracks(include_tentative=True).track_id[0])
    tracker.reset()
    assert len(tracker) == 0 and tracker.stamp is None
    tracker.update(obs_at([5, 0, 0]), 0.0)
    after_reset = int(tracker.tracks(include_tentative=True).track_id[0])
    assert first_id < new_id < after_reset


def test_tentative_track_dropped_after_tentative_timeout():
    tracker = Tracker(TrackerSettings(tentative_timeout=0.2))
    tracker.update(obs_at([1, 0, 0]), 0.0)
    tracker.update(obs_at(), 0.1)
    assert len(tracker) == 1
    tracker.update(obs_at(), 0.25)
    assert len(tracker) == 0 and len(tracker.deleted_ids) == 1


@pytest.mark.parametrize('bad_stamp,kind', [(1.0, 'duplicate'), (0.5, 'out-of-order')])
def test_duplicate_and_out_of_order_stamps_are_rejected(bad_stamp, kind, caplog):
    tracker = Tracker()
    for k, stamp in enumerate((0.0, 0.5, 1.0)):
        tracker.update(obs_at([k * 0.1, 0, 0]), stamp)
    before = tracker.tracks(include_tentative=True)
    with caplog.at_level(logging.WARNING, logger='robot_vision.tracking'):
        returned = tracker.update(obs_at([9, 9, 0], [0.3, 0, 0]), bad_stamp)
    assert kind in tracker.rejected_reason
    assert any(kind in r.getMessage() and r.name == 'robot_vision.tracking' for r in caplog.records)
    after = tracker.tracks(include_tentative=True)
    assert tracker.stamp == 1.0 and len(after) == len(before) == 1
    for name in ('track_id', 'position', 'velocity', 'covariance', 'hits', 'last_seen', 'state'):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    np.testing.assert_array_equal(returned.track_id, tracker.tracks().track_id)
    assert tracker.assigned_ids.tolist() == [-1, -1]
    tracker.update(obs_at([5, 5, 0], [0.3, 0, 0]), 1.1)  # the next good stamp is accepted again
    assert tracker.rejected_reason is None and tracker.stamp == 1.1
    track_id = int(before.track_id[0])
    assert tracker.assigned_ids.tolist() == [track_id + 1, track_id]  # new track, then the match


def test_irregular_intervals_give_the_true_velocity():
    rng = np.random.default_rng(3)
    stamps = np.cumsum(rng.uniform(0.02, 0.3, 40))
    velocity = np.array([0.7, -0.4, 0.1])
    tracker = Tracker()
    for t in stamps:
        tracks = tracker.update(obs_at(np.array([1.0, 2.0, 0.5]) + velocity * t), t)
    np.testing.assert_allclose(tracks.velocity[0], velocity, atol=1e-3)
    cov = tracks.covariance[0]
    assert cov.shape == (6, 6)
    np.testing.assert_allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_predict_extrapolates_without_changing_state(caplog):
    tracker = Tracker()
    for k in range(5):
        tracker.update(obs_at([0.5 * 0.1 * k, 0, 0]), 0.1 * k)
    before = tracker.tracks()
    predicted = tracker.predict(0.9)
    np.testing.assert_allclose(predicted.position, before.position + 0.5 * before.velocity, atol=1e-9)
    assert np.all(np.diag(predicted.covariance[0]) > np.diag(before.covariance[0]))
    np.testing.assert_array_equal(tracker.tracks().position, before.position)
    assert tracker.stamp == pytest.approx(0.4)
    assert len(tracker.predict(100.0)) == 0  # past the coast timeout
    with caplog.at_level(logging.WARNING, logger='robot_vision.tracking'):
        tracker.predict(0.1)
    assert 'earlier' in tracker.rejected_reason


def test_moving_flag_hysteresis():
    s = TrackerSettings(moving_enter_speed=0.3, moving_leave_speed=0.1)
    tracker = Tracker(s)
    t, x = 0.0, 0.0
    flags = {}
    for phase, speed in (('slow', 0.2), ('fast', 0.6), ('medium', 0.2), ('stop', 0.0)):
        for _ in range(40):
            t += 0.1
            x += speed * 0.1
            tracks = tracker.update(obs_at([x, 0, 0]), t)
        flags[phase] = bool(tracks.moving[0])
    # 0.2 m/s lies between leave (0.1) and enter (0.3): it keeps whichever flag it had.
    assert flags == {'slow': False, 'fast': True, 'medium': True, 'stop': False}


# ----------------------------------------------------------------------------- association
@pytest.mark.parametrize('consistent,expected_tracks', [(True, 2), (False, 1)])
def test_class_consistency(consistent, expected_tracks):
    tracker = Tracker(TrackerSettings(class_consistent=consistent, confirm_hits=1))
    tracker.update(obs_at([1, 0, 0], class_id=0), 0.0)
    tracker.update(obs_at([1.01, 0, 0], class_id=1), 0.1)
    assert len(tracker) == expected_tracks


def test_class_agnostic_track_adopts_the_first_class():
    tracker = Tracker(TrackerSettings(confirm_hits=1))
    tracker.update(obs_at([1, 0, 0], class_id=-1), 0.0)
    tracks = tracker.update(obs_at([1, 0, 0], class_id=4), 0.1)
    assert len(tracks) == 1 and tracks.class_id.tolist() == [4]


def test_gating_rejects_far_observations():
    tracker = Tracker(TrackerSettings(confirm_hits=1))
    for k in range(5):
        tracker.update(obs_at([0, 0, 0]), 0.1 * k)
    tracker.update(obs_at([1.0, 0, 0]), 0.5)  # 1 m jump of a well-settled static track: gated out
    assert len(tracker) == 2


@pytest.mark.parametrize('box_of,expected', [('a', 0), ('b', 1)])
def test_iou_cue_breaks_a_tie(box_of, expected):
    boxes = {'a': [0, 0, 50, 50], 'b': [200, 0, 250, 50]}
    tracker = Tracker(TrackerSettings(iou_weight=2.0, confirm_hits=1, measurement_noise=0.2))
    xyxy = np.array([boxes['a'], boxes['b']], np.float32)
    for k in range(3):
        tracker.update(obs_at([0, 0, 0], [0.3, 0, 0], xyxy=xyxy), 0.1 * k)
    hits_before = tracker.tracks().hits.copy()
    tracker.update(obs_at([0.15, 0, 0], xyxy=np.array([boxes[box_of]], np.float32)), 0.3)
    tracks = tracker.tracks()
    gained = np.flatnonzero(tracks.hits - hits_before)
    assert gained.tolist() == [expected]


def test_hungarian_assignment_is_optimal_not_greedy():
    # Tracks at 0 and 1; observations at 0.55 and 1.6 (1-D). Greedy nearest-first would give
    # 0.55 -> track 1 (0.45) and leave 1.6 unmatched; the optimum matches 0.55 -> 0, 1.6 -> 1.
    tracker = Tracker(TrackerSettings(confirm_hits=1, measurement_noise=0.5, max_match_distance=0.7))
    tracker.update(obs_at([0, 0, 0], [1, 0, 0]), 0.0)
    ids = tracker.tracks().track_id.copy()
    tracks = tracker.update(obs_at([1.6, 0, 0], [0.55, 0, 0]), 0.1)
    assert len(tracker) == 2
    np.testing.assert_array_equal(tracks.track_id, ids)


def test_max_tracks_keeps_the_most_confident():
    tracker = Tracker(TrackerSettings(max_tracks=2))
    tracker.update(obs_at([0, 0, 0], [5, 0, 0], [9, 0, 0], confidence=np.array([0.2, 0.9, 0.5])), 0.0)
    tracks = tracker.tracks(include_tentative=True)
    np.testing.assert_allclose(np.sort(tracks.position[:, 0]), [5, 9])


def test_yaw_and_size_smoothing():
    s = TrackerSettings(yaw_smoothing=0.5, size_smoothing=0.5, confirm_hits=1)
    tracker = Tracker(s)
    tracker.update(obs_at([0, 0, 0], yaw=np.array([0.0]), size=np.array([[1.0, 1.0, 1.0]])), 0.0)
    # pi - 0.2 is the same box as -0.2 (yaw_period pi): the average moves towards -0.2, not to pi/2
    tracks = tracker.update(obs_at([0, 0, 0], yaw=np.array([np.pi - 0.2]), size=np.array([[2.0, 1.0, 1.0]])),
                            0.1)
    assert tracks.yaw[0] == pytest.approx(-0.1)
    np.testing.assert_allclose(tracks.size[0], [1.5, 1.0, 1.0])


# ----------------------------------------------------------------------------- conversions and errors
def test_observations_from_objects_moves_objects_into_the_fixed_frame():
    yaw = 0.4
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    pose_cam = make_transform(rot, [0.1, 0.2, 2.0])
    objects = Objects3D(pose=pose_cam[None], size=[[0.3, 0.2, 0.1]], centroid=[[0.1, 0.2, 2.0]],
                        confidence=[0.8], class_id=[3], detection_index=[1])
    cam_rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    camera_to_fixed = make_transform(cam_rot, [1.0, 2.0, 3.0])
    dets = Detections(xyxy=[[0, 0, 1, 1], [10, 20, 30, 40]], confidence=[0.5, 0.8], class_id=[0, 3])
    obs = observations_from_objects(objects, camera_to_fixed, detections=dets)
    np.testing.assert_allclose(obs.position[0], [1.0 - 0.2, 2.0 + 0.1, 5.0])
    assert obs.yaw[0] == pytest.approx(yaw + np.pi / 2)
    np.testing.assert_allclose(obs.xyxy[0], [10, 20, 30, 40])
    assert obs.class_id.tolist() == [3] and obs.confidence[0] == pytest.approx(0.8)
    assert len(observations_from_objects(Objects3D.empty(), None)) == 0


@pytest.mark.parametrize('transform,match', [
    (np.eye(3), r'\(4, 4\)'),
    (np.full((4, 4), np.nan), 'finite'),
    (np.diag([2.0, 1.0, 1.0, 1.0]), 'rigid'),
])
def test_observations_from_objects_rejects_bad_transforms(transform, match):
    with pytest.raises(InputError, match=match):
        observations_from_objects(Objects3D.empty(), transform)


def test_bad_inputs_are_named():
    tracker = Tracker()
    with pytest.raises(InputError, match='observations_from_objects'):
        tracker.update(Objects3D.empty(), 0.0)
    with pytest.raises(InputError, match='stamp'):
        tracker.update(obs_at(), float('nan'))
    with pytest.raises(InputError, match='finite'):
        obs_at([np.nan, 0, 0])
    with pytest.raises(InputError, match=r'\(N, 3\)'):
        Observations(position=np.zeros((2, 2)))
    with pytest.raises(InputError, match='TrackerSettings'):
        Tracker(settings={'gate_chi2': 3})


@pytest.mark.parametrize('field,value', [
    ('confirm_hits', 0), ('confirm_hits', 2.5), ('coast_timeout', -1.0), ('process_noise', 0.0),
    ('measurement_noise', float('nan')), ('gate_chi2', 'x'), ('moving_enter_speed', 0.05),
    ('size_smoothing', 1.5), ('class_consistent', 1), ('max_tracks', 0), ('spawn_min_confidence', 2.0),
])
def test_settings_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrackerSettings(**{field: value})


def test_kalman_batch_matches_single_track_and_closed_form():
    F, Q = kalman.motion_model(3, 1, 0.5, 2.0)
    np.testing.assert_allclose(F[:3, 3:], 0.5 * np.eye(3))
    np.testing.assert_allclose(Q[0, 0], 2.0 * 0.5 ** 3 / 3)
    np.testing.assert_allclose(Q[0, 3], 2.0 * 0.5 ** 2 / 2)
    np.testing.assert_allclose(Q[3, 3], 2.0 * 0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6))
    A = rng.normal(size=(4, 6, 6))
    P = A @ np.swapaxes(A, 1, 2) + np.eye(6)
    z = rng.normal(size=(4, 3))
    R = 0.1 * np.eye(3)
    xb, Pb = kalman.update(*kalman.predict(x, P, F, Q), z, R)
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    for i in range(4):
        xp, Pp = F @ x[i], F @ P[i] @ F.T + Q
        K = Pp @ H.T @ np.linalg.inv(H @ Pp @ H.T + R)
        np.testing.assert_allclose(xb[i], xp + K @ (z[i] - H @ xp), atol=1e-9)
        np.testing.assert_allclose(Pb[i], (np.eye(6) - K @ H) @ Pp, atol=1e-9)
