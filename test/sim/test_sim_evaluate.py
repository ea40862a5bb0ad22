"""Evaluation helpers (Wilson interval, mask and box matching, rotation error, ADD-S) and short end-to-end runs."""

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from robot_vision.errors import ConfigError
from robot_vision.sim import SceneSettings, SimScene, generate_scene
from robot_vision.perception3d.instance_metrics import mask_iou_matrix, match_instances
from robot_vision.sim.evaluate import (EvaluationSettings, add_s, evaluate_perception,
                                       render_markdown, rotation_error_deg, run_evaluation,
                                       wilson_interval)
from robot_vision.types import Detections


@pytest.mark.parametrize('successes, trials, low, high', [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (90, 100, 0.8256, 0.9448), (180, 200, 0.8506, 0.9343)])
def test_wilson_interval_matches_reference_values(successes, trials, low, high):
    lo, hi = wilson_interval(successes, trials)
    assert lo == pytest.approx(low, abs=1e-3) and hi == pytest.approx(high, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mask_matching_is_one_to_one_and_thresholded():
    gt = np.zeros((2, 10, 10), bool)
    gt[0, :5, :5] = True
    gt[1, 5:, 5:] = True
    pred = np.zeros((3, 10, 10), bool)
    pred[0, 5:, 5:] = True          # exact copy of gt 1
    pred[1, :5, :4] = True          # IoU 0.8 with gt 0
    pred[2, :1, :1] = True          # tiny
    iou = mask_iou_matrix(gt, pred)
    assert iou.shape == (2, 3)
    assert iou[1, 0] == 1.0 and iou[0, 1] == pytest.approx(0.8)
    assert sorted(match_instances(iou, 0.5)) == [(0, 1, pytest.approx(0.8)), (1, 0, 1.0)]
    assert match_instances(iou, 0.9) == [(1, 0, 1.0)]
    assert mask_iou_matrix(gt, pred[:0]).shape == (2, 0) and match_instances(mask_iou_matrix(gt[:0], pred)) == []


def _rot_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    return pose


def test_rotation_error_respects_symmetry():
    gt = np.eye(4)
    assert rotation_error_deg('box', gt, _rot_z(math.pi)) == pytest.approx(0.0, abs=1e-6)
    assert rotation_error_deg('box', gt, _rot_z(math.radians(30))) == pytest.approx(30.0)
    assert rotation_error_deg('cylinder', gt, _rot_z(math.radians(30))) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(rotation_error_deg('sphere', gt, _rot_z(1.0)))


def test_add_s_is_zero_for_symmetric_flips_and_grows_with_offset():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.05, 0.05, (400, 3)) * [1.0, 0.5, 0.5]
    points[:, 0] = np.sign(points[:, 0]) * 0.05   # two end faces: symmetric about z by 180 deg
    assert add_s(points, np.eye(4), _rot_z(math.pi)) < 0.01
    shifted = np.eye(4)
    shifted[0, 3] = 0.02
    assert add_s(points, np.eye(4), shifted) > 0.005


@pytest.fixture(scope='module')
def clutter_truth():
    """Ground truth of a rendered cluttered scene (no depth noise) and its visible objects as Objects3D."""
    spec = generate_scene(4, SceneSettings(clutter='clutter'))
    with SimScene(spec) as scene:
        frame, gt = scene.render()
    visible = gt.objects()[gt.visible_pixels >= EvaluationSettings().min_visible_pixels]
    assert len(visible) >= 3
    return frame, gt, visible


def test_ground_truth_as_prediction_scores_perfectly(clutter_truth):
    _, gt, visible = clutter_truth
    result = evaluate_perception(visible, gt, EvaluationSettings())
    rows = result['objects']
    assert len(rows) == len(visible) == result['predicted'] == result['predicted_boxes'] == result['box_matches']
    for row in rows:
        assert row['matched'] and row['box_matched']
        assert row['iou'] == pytest.approx(1.0) and row['box_iou'] == pytest.approx(1.0)
        assert row['translation_error_m'] == pytest.approx(0.0, abs=1e-9) and row['add_s_m'] < 1e-6


def _outline(mask):
    return mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def test_box_matching_differs_from_mask_matching(clutter_truth):
    """Box and mask matches differ: an outline keeps the box only, a half-box shift loses both.

    A spurious prediction lowers both precisions.
    """
    _, gt, visible = clutter_truth
    masks = visible.mask.copy()
    masks[0] = _outline(masks[0])
    xs = np.flatnonzero(masks[1].any(0))
    masks[1] = np.roll(masks[1], (xs[-1] - xs[0] + 1) // 2 + 1, axis=1)
    spurious = np.zeros_like(masks[:1])
    spurious[0, :20, :20] = True
    predicted = dataclasses.replace(visible, mask=masks)
    predicted = type(visible).concatenate([predicted, dataclasses.replace(visible[:1], mask=spurious)])
    result = evaluate_perception(predicted, gt, EvaluationSettings())
    rows = {row['visible_pixels']: row for row in result['objects']}
    outline = rows[int(visible.mask[0].sum())]
    assert not outline['matched'] and outline['best_iou'] < 0.5
    assert outline['box_matched'] and outline['box_iou'] == pytest.approx(1.0)
    shifted = rows[int(visible.mask[1].sum())]
    assert not shifted['matched'] and not shifted['box_matched']
    n = len(visible)
    assert len(result['matches']) == n - 2 and result['box_matches'] == n - 1
    assert result['predicted'] == result['predicted_boxes'] == n + 1


def test_boxes_of_another_detector_are_scored_without_masks(clutter_truth):
    """``detections`` replaces the masks' boxes: a box-only detector gets box recall, no instance matches."""
    _, gt, visible = clutter_truth
    boxes = gt.detections(EvaluationSettings().min_visible_pixels)
    detections = Detections(xyxy=boxes.xyxy + 2.0, confidence=boxes.confidence, class_id=boxes.class_id)
    result = evaluate_perception(type(visible).empty(), gt, EvaluationSettings(), detections=detections)
    assert result['matches'] == [] and result['box_matches'] == len(visible) == result['predicted_boxes']
    assert all(0.8 < row['box_iou'] < 1.0 for row in result['objects'])


def test_settings_validation():
    with pytest.raises(ConfigError, match='clutter_levels'):
        EvaluationSettings(clutter_levels=('heap',))
    with pytest.raises(ConfigError, match='noise'):
        EvaluationSettings(noise='lidar')
    with pytest.raises(ConfigError, match='n_scenes'):
        run_evaluation(0, out_dir=None)


def test_short_evaluation_writes_reports(tmp_path):
    grasping = True
    try:
        from robot_vision.grasping import plan_scene_grasps  # noqa: F401
    except ImportError:
        grasping = False
    report = run_evaluation(2, seed=1, out_dir=str(tmp_path),
                            settings=EvaluationSettings(grasping=grasping))
    data = json.loads((tmp_path / 'report.json').read_text())
    assert data['n_scenes'] == 2 and data['frames_rendered'] == 2
    assert (tmp_path / 'report.md').read_text().startswith('# Simulation evaluation')
    percep = report['perception']['all']
    assert percep['gt_objects'] >= 5   # one isolated + one cluttered scene
    assert 0.0 <= percep['recall_at_iou'] <= 1.0
    assert report['render_fps'] > 0
    assert 0.0 <= percep['box_recall_at_iou'] <= 1.0 and 0.0 <= percep['box_precision_at_iou'] <= 1.0
    assert percep['box_matched'] == sum(r['box_matches'] for r in report['scenes'])
    assert percep['predicted_boxes'] == sum(r['predicted'] for r in report['scenes'])
    for level in ('isolated', 'clutter'):
        assert report['perception'][level]['gt_objects'] > 0 and 'box_precision_at_iou' in report['perception'][level]
    if grasping:
        grasp = report['grasping']
        assert grasp['scenes'] == 2
        assert set(grasp['by_clutter']) == set(grasp['by_clutter_yield']) == {'isolated', 'clutter'}
        assert grasp['planner_yield']['successes'] == grasp['executed']
        assert grasp['planner_yield']['trials'] == sum(r['trials'] for r in grasp['by_clutter_yield'].values()) == 2
        for kind, rate in grasp['by_kind'].items():
            assert rate['trials'] == sum(grasp['by_clutter_kind'][c][kind]['trials'] for c in grasp['by_clutter'])
        assert 'Planner yield (scenes with a grasp / scenes)' in render_markdown(report)
    assert isinstance(report['scene_notes'], dict) and report['version']
    report['scene_notes'] = {'YCB mesh objects skipped: no data': 2}
    assert 'YCB mesh objects skipped: no data (2)' in render_markdown(report)


def test_oracle_grasps_are_held_in_physics(tmp_path):
    """The simulated hand holds well-placed grasps: checks the executor end to end, not the planner."""
    report = run_evaluation(4, seed=2, out_dir=None,
                            settings=EvaluationSettings(grasp_source='oracle', noise='none'))
    grasp = report['grasping']
    assert grasp['executed'] >= 3
    assert grasp['executed_rate']['successes'] == grasp['executed']


def test_tracking_evaluation_on_a_moving_sequence():
    from robot_vision.sim.evaluate import run_tracking_evaluation
    result = run_tracking_evaluation(1, seed=0, frames=5, noise='none')
    assert result['num_frames'] == 5 and result['num_gt'] >= 20
    assert result['num_switches'] == 0 and result['mota'] > 0.5
    assert result['motp'] < 0.02
