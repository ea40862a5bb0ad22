"""Evaluate perception and closed-loop grasping on generated scenes against simulator ground truth.

Run ``robot-vision sim-eval --scenes 400 --seed 0 --out artifacts/sim_eval`` (the same options as
``python -m robot_vision.sim``; see :mod:`robot_vision.sim.cli`) or call :func:`run_evaluation`;
it writes ``report.json`` and ``report.md`` into the output folder.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO, Tuple

import numpy as np

from robot_vision import __version__
from robot_vision.detection.depth_backend import detections_from_objects
from robot_vision.errors import ConfigError
from robot_vision.geometry import invert_transform
from robot_vision.replay.progress import Progress
from robot_vision.sim.grasp_execution import GraspExecutionSettings, execute_grasp
from robot_vision.sim.noise import NOISE_MODELS, DepthNoise
from robot_vision.sim.scene import (CLUTTER_LEVELS, CONTAINERS, DEFAULT_KINDS, OBJECT_KINDS, VIEW_PRESETS,
                                    SceneSettings, generate_scene)
from robot_vision.sim.simulator import GroundTruth, SimScene
from robot_vision.geometry import box_iou
from robot_vision.perception3d.instance_metrics import mask_iou_matrix, match_instances
from robot_vision.types import Detections

#: Rotational symmetry used for the rotation error: which canonical axes are meaningful.
_YAW_SYMMETRIC = {'sphere', 'cylinder', 'cup', 'bowl'}
_NO_ROTATION = {'sphere'}


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> Tuple[float, float]:
    """Wilson score interval (low, high) of a binomial proportion; (0, 1) when ``trials`` is 0."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rotation_error_deg(kind: str, gt_pose: np.ndarray, pred_pose: np.ndarray) -> float:
    """Symmetry-aware rotation error in degrees between two poses in the Objects3D convention.

    Tilt (angle between the z axes) plus, for shapes that are not symmetric about z, the yaw
    error modulo 180 degrees (a box looks the same turned half-way round); NaN for spheres.
    """
    if kind in _NO_ROTATION:
        return float('nan')
    zg, zp = gt_pose[:3, 2], pred_pose[:3, 2]
    tilt = math.degrees(math.acos(float(np.clip(abs(zg @ zp), -1.0, 1.0))))
    if kind in _YAW_SYMMETRIC:
        return tilt
    xg, xp = gt_pose[:3, 0], pred_pose[:3, 0]
    xp = xp - zg * (zg @ xp)
    xg = xg - zg * (zg @ xg)
    if np.linalg.norm(xp) < 1e-9 or np.linalg.norm(xg) < 1e-9:
        return tilt
    cos = abs(float(xg @ xp) / (np.linalg.norm(xg) * np.linalg.norm(xp)))
    yaw = math.degrees(math.acos(min(1.0, cos)))
    return max(tilt, yaw)


def add_s(model_points: np.ndarray, gt_pose: np.ndarray, pred_pose: np.ndarray) -> float:
    """ADD-S (m): mean distance from each GT-posed model point to the closest prediction-posed model point."""
    from scipy.spatial import cKDTree
    pts = np.asarray(model_points, np.float64)
    gt = pts @ gt_pose[:3, :3].T + gt_pose[:3, 3]
    pred = pts @ pred_pose[:3, :3].T + pred_pose[:3, 3]
    return float(cKDTree(pred).query(gt)[0].mean())


@dataclass(frozen=True)
class EvaluationSettings:
    """What :func:`run_evaluation` measures (metres unless stated).

    ``clutter_levels``: scenes cycle through these ('isolated', 'clutter', 'dense'). ``kinds``: the object
    kinds of ``SceneSettings.kinds`` (default ``DEFAULT_KINDS``; add 'cup' for open mugs, 'bowl' for open
    bowls). ``views``: camera preset of ``robot_vision.sim.scene.VIEW_PRESETS`` ('tabletop', or 'hard':
    top-down, steep and up to 2 m away). ``container``: 'none', 'bin' or 'shelf' (``SceneSettings.with_container``; its
    camera ranges replace those of ``views``, and 'hard' brings a wrist camera close in). ``noise``: depth noise
    model (see ``DepthNoise``). ``min_visible_pixels`` (200): GT objects with fewer visible
    pixels are not counted for recall. ``iou_threshold`` (0.5). ``perception`` / ``grasping``:
    which parts to run. ``image_size`` (640, 480) pixels. ``grasp_source``: 'planner' (top-1 of
    ``robot_vision.grasping`` on the segmented clouds, the real closed loop) or 'oracle' (a
    top-down grasp across the narrower side of the most visible object computed from ground
    truth: a check of the simulated hand and physics, not of the planner). ``top_k`` (1): with
    k > 1 the k best planner grasps are also executed, each from the same initial state, and the
    rate at which any of them succeeds is reported too.
    """

    clutter_levels: Tuple[str, ...] = ('isolated', 'clutter')
    kinds: Tuple[str, ...] = DEFAULT_KINDS
    views: str = 'tabletop'
    container: str = 'none'
    noise: str = 'kinect'
    min_visible_pixels: int = 200
    iou_threshold: float = 0.5
    perception: bool = True
    grasping: bool = True
    image_size: Tuple[int, int] = (640, 480)
    grasp_source: str = 'planner'
    top_k: int = 1

    def __post_init__(self) -> None:
        """Validate the fields."""
        if not self.clutter_levels or any(c not in CLUTTER_LEVELS for c in self.clutter_levels):
            raise ConfigError(f'EvaluationSettings.clutter_levels: expected a non-empty subset of '
                              f'{sorted(CLUTTER_LEVELS)}, got {self.clutter_levels!r}')
        if not self.kinds or any(k not in OBJECT_KINDS for k in self.kinds):
            raise ConfigError(f'EvaluationSettings.kinds: expected kinds among {OBJECT_KINDS}, got {self.kinds!r}')
        if self.views not in VIEW_PRESETS:
            raise ConfigError(f'EvaluationSettings.views: expected one of {sorted(VIEW_PRESETS)}, got {self.views!r}')
        if self.container not in CONTAINERS:
            raise ConfigError(f'EvaluationSettings.container: expected one of {CONTAINERS}, got {self.container!r}')
        if self.noise not in NOISE_MODELS:
            raise ConfigError(f'EvaluationSettings.noise: expected one of {NOISE_MODELS}, got {self.noise!r}')
        if not (0.0 < self.iou_threshold <= 1.0):
            raise ConfigError(f'EvaluationSettings.iou_threshold: expected (0, 1], got {self.iou_threshold}')
        if self.grasp_source not in ('planner', 'oracle'):
            raise ConfigError(f"EvaluationSettings.grasp_source: expected 'planner' or 'oracle', "
                              f'got {self.grasp_source!r}')
        if not (1 <= int(self.top_k) <= 50):
            raise ConfigError(f'EvaluationSettings.top_k: expected 1 to 50, got {self.top_k}')
        if self.min_visible_pixels < 0:
            raise ConfigError(f'EvaluationSettings.min_visible_pixels: expected >= 0, '
                              f'got {self.min_visible_pixels}')


def evaluate_perception(seg_objects: Any, gt: GroundTruth, settings: EvaluationSettings,
                        detections: Optional[Detections] = None) -> Dict[str, Any]:
    """Compare one frame's segmented objects (Objects3D with masks, camera frame) with ground truth.

    Instances: mask IoU, one-to-one (Hungarian) matches with IoU >= ``settings.iou_threshold``.
    Detection: the same on 2D box IoU between ``detections.xyxy`` (pixels; None: the pipeline's
    depth-backend boxes, ``detections_from_objects(seg_objects)``, the tight boxes of the masks)
    and the ground-truth boxes of the visible objects' masks. Only ground-truth objects with at
    least ``settings.min_visible_pixels`` visible pixels are counted.
    Returns per-GT-object rows (kind, visible pixels, distance, matched / box_matched, IoU and
    box IoU, translation error, rotation error, ADD-S), the mask match list ``(gt, pred, iou)``,
    the number of predictions and of matched boxes.
    """
    counted = np.flatnonzero(gt.visible_pixels >= settings.min_visible_pixels)
    pred_masks = seg_objects.mask if len(seg_objects) else np.zeros((0,) + gt.mask.shape[1:], bool)
    iou = mask_iou_matrix(gt.mask[counted], pred_masks)
    matches = [(int(counted[g]), p, v) for g, p, v in match_instances(iou, settings.iou_threshold)]
    matched = {g: (p, v) for g, p, v in matches}
    if detections is None:
        detections = detections_from_objects(seg_objects)
    boxes_iou = box_iou(gt.xyxy[counted], detections.xyxy)
    box_matched = {int(counted[g]): v for g, _, v in match_instances(boxes_iou, settings.iou_threshold)}
    rows = []
    for row_index, g in enumerate(counted):
        g = int(g)
        row = {'kind': gt.kind[g], 'class_name': gt.class_name[g], 'visible_pixels': int(gt.visible_pixels[g]),
               'distance_m': float(np.linalg.norm(gt.pose_camera[g][:3, 3])),
               'best_iou': float(iou[row_index].max()) if iou.shape[1] else 0.0,
               'matched': g in matched, 'box_matched': g in box_matched}
        if g in box_matched:
            row['box_iou'] = box_matched[g]
        if g in matched:
            p, v = matched[g]
            pred = seg_objects.pose[p]
            row.update(iou=v, translation_error_m=float(np.linalg.norm(pred[:3, 3] - gt.pose_camera[g][:3, 3])),
                       centroid_error_m=float(np.linalg.norm(seg_objects.centroid[p] - gt.pose_camera[g][:3, 3])),
                       rotation_error_deg=rotation_error_deg(gt.kind[g], gt.pose_camera[g], pred),
                       add_s_m=add_s(gt.model_points[g], gt.pose_camera[g], pred))
        rows.append(row)
    return {'objects': rows, 'matches': matches, 'predicted': int(len(seg_objects)),
            'predicted_boxes': int(len(detections)), 'box_matches': len(box_matched)}


def _summary_rate(successes: int, trials: int) -> Dict[str, Any]:
    low, high = wilson_interval(successes, trials)
    return {'successes': successes, 'trials': trials,
            'rate': successes / trials if trials else float('nan'), 'ci95': [low, high]}


def run_evaluation(n_scenes: int, seed: int = 0, out_dir: Optional[str] = 'artifacts/sim_eval',
                   settings: EvaluationSettings = EvaluationSettings(), gripper: Any = None,
                   grasp_settings: Any = None, exec_settings: Optional[GraspExecutionSettings] = None,
                   segmentation_settings: Any = None, progress: Optional[TextIO] = None) -> Dict[str, Any]:
    """Generate ``n_scenes`` scenes, run perception and the top-1 planned grasp in each, and report.

    Perception: ``robot_vision.perception3d.segmentation.segment_scene`` on the noisy frame;
    mask IoU matching (Hungarian, IoU >= ``iou_threshold``) against ground truth; translation
    error of the box centre (m), symmetry-aware rotation error (deg), ADD-S (m).
    Grasping: ``robot_vision.grasping.plan_scene_grasps`` on the segmented objects (camera
    frame); the best-scoring grasp is moved to the world and executed with
    :func:`~robot_vision.sim.execute_grasp`, targeted at the GT object its segment matches.
    ``exec_settings`` None means ``GraspExecutionSettings(pregrasp_distance=gripper.approach_clearance)``:
    the straight approach covers exactly the corridor the planner checked for collisions.
    ``progress``: a text stream (e.g. ``sys.stderr``) for a progress bar, None for none.
    Returns the report dict (also written as ``report.json`` and ``report.md`` in ``out_dir``
    unless it is None, see :func:`write_reports`).
    """
    if int(n_scenes) < 1:
        raise ConfigError(f'run_evaluation: n_scenes must be >= 1, got {n_scenes}')
    from robot_vision.perception3d.segmentation import SegmentationSettings, segment_scene
    seg_settings = segmentation_settings or SegmentationSettings()
    if settings.grasping:
        from robot_vision.grasping import GraspSettings, GripperModel, plan_scene_grasps
        gripper = gripper or GripperModel()
        grasp_settings = grasp_settings or GraspSettings()
        if exec_settings is None:
            exec_settings = GraspExecutionSettings(pregrasp_distance=float(gripper.approach_clearance))
    width, height = settings.image_size
    bar = Progress(int(n_scenes), progress, unit='scenes')
    started = time.perf_counter()
    timing = {'render_s': 0.0, 'segment_s': 0.0, 'plan_s': 0.0, 'execute_s': 0.0, 'build_s': 0.0}
    frames = 0
    notes: Dict[str, int] = {}
    object_rows: List[Dict[str, Any]] = []
    grasp_rows: List[Dict[str, Any]] = []
    scene_rows: List[Dict[str, Any]] = []
    for k in range(int(n_scenes)):
        clutter = settings.clutter_levels[k % len(settings.clutter_levels)]
        scene_seed = int(seed) * 100003 + k
        t0 = time.perf_counter()
        scene_settings = (SceneSettings(clutter=clutter, width=width, height=height, kinds=tuple(settings.kinds))
                          .with_views(settings.views)
                          .with_container(settings.container, settings.views))
        spec = generate_scene(scene_seed, scene_settings)
        for note in spec.notes:
            notes[note] = notes.get(note, 0) + 1
        scene = SimScene(spec, DepthNoise(settings.noise, seed=scene_seed))
        t1 = time.perf_counter()
        try:
            frame, gt = scene.render()
            t2 = time.perf_counter()
            frames += 1
            timing['build_s'] += t1 - t0
            timing['render_s'] += t2 - t1
            seg = segment_scene(frame, seg_settings)
            t3 = time.perf_counter()
            timing['segment_s'] += t3 - t2
            perception = evaluate_perception(seg.objects, gt, settings)
            for row in perception['objects']:
                row.update(scene=k, clutter=clutter)
            object_rows.extend(perception['objects'])
            scene_row = {'scene': k, 'seed': scene_seed, 'clutter': clutter, 'objects': len(gt),
                         'predicted': perception['predicted'], 'matched': len(perception['matches']),
                         'predicted_boxes': perception['predicted_boxes'],
                         'box_matches': perception['box_matches'], 'status': seg.status}
            if settings.grasping and settings.grasp_source == 'oracle':
                scene_row['grasp'] = _oracle_grasp_once(scene, gt, gripper, exec_settings, timing)
                scene_row['grasp'].update(scene=k, clutter=clutter)
                grasp_rows.append(scene_row['grasp'])
            elif settings.grasping:
                scene_row['grasp'] = _grasp_once(scene, frame, gt, seg, perception['matches'], gripper,
                                                 grasp_settings, exec_settings, plan_scene_grasps, timing,
                                                 settings.top_k)
                scene_row['grasp'].update(scene=k, clutter=clutter)
                grasp_rows.append(scene_row['grasp'])
            scene_rows.append(scene_row)
        finally:
            scene.close()
        bar.update()
    bar.close()
    wall = time.perf_counter() - started
    report = _summarise(object_rows, grasp_rows, scene_rows, settings, timing, frames, wall, n_scenes, seed,
                        exec_settings)
    report['scene_notes'] = notes
    if out_dir is not None:
        write_reports(report, out_dir)
    return report


def write_reports(report: Dict[str, Any], out_dir: str) -> Tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` (see :func:`render_markdown`) into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / 'report.json', out / 'report.md'
    json_path.write_text(json.dumps(report, indent=2, default=_json_default))
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _grasp_once(scene: SimScene, frame, gt: GroundTruth, seg, matches, gripper, grasp_settings,
                exec_settings, plan_scene_grasps, timing, top_k: int = 1) -> Dict[str, Any]:
    t0 = time.perf_counter()
    row: Dict[str, Any] = {'executed': False}
    if not seg.ok or len(seg.objects) == 0:
        row.update(success=False, reason=f'no_objects ({seg.status})', kind=None)
        return row
    normal = None if seg.plane is None else np.asarray(seg.plane[:3])
    result = plan_scene_grasps(seg.objects, seg.cloud, gripper, grasp_settings, support_normal=normal)
    t1 = time.perf_counter()
    timing['plan_s'] += t1 - t0
    if not result.ok:
        row.update(success=False, reason='no_grasp', detail=result.reason, kind=None)
        return row
    ranked = result.grasps.best_first()[:top_k]
    tcp_to_grasp = invert_transform(np.asarray(gripper.tcp_offset))
    outcomes = []
    for best in range(len(ranked)):
        pred_index = int(ranked.object_index[best])
        target = next((g for g, p, _ in matches if p == pred_index), None)
        grasp_world = frame.camera_to_fixed @ ranked.pose[best] @ tcp_to_grasp
        outcomes.append((best, target, grasp_world,
                         execute_grasp(scene, grasp_world, float(ranked.width[best]), gripper,
                                       exec_settings, target_index=target)))
    timing['execute_s'] += time.perf_counter() - t1
    best, target, grasp_world, outcome = outcomes[0]
    row['top_k_executed'] = len(outcomes)
    row['top_k_any_success'] = any(o.success for *_, o in outcomes)
    index = outcome.object_index
    row.update(executed=True, success=bool(outcome.success), reason=outcome.reason,
               lifted_height_m=outcome.lifted_height, target=target, object=index,
               kind=gt.kind[index] if index >= 0 else None,
               class_name=gt.class_name[index] if index >= 0 else None,
               score=float(ranked.score[best]), width_m=float(ranked.width[best]),
               approach_z_world=float(grasp_world[2, 2]), approach_blocked=outcome.approach_blocked)
    return row


def oracle_grasp(gt: GroundTruth, index: int, gripper: Any) -> Optional[Tuple[np.ndarray, float]]:
    """A top-down grasp (world frame) across the narrower horizontal side of GT object ``index``, or None.

    The fingertips reach ``min(0.8 * finger_depth, 0.5 * height + 1 cm, height - 5 mm)`` below
    the object's top (just past the middle, so round objects are held below their equator).
    Returns (grasp pose (4, 4) in the grasp-frame convention, object width in m).
    """
    pose, size = gt.pose_world[index], gt.size[index]
    limit = gripper.max_opening - gripper.opening_margin / 2
    axis = 1 if size[1] <= limit else (0 if size[0] <= limit else -1)
    if axis < 0:
        return None
    z = np.array([0.0, 0.0, -1.0])
    x = pose[:3, axis] - z * (pose[:3, axis] @ z)
    if np.linalg.norm(x) < 1e-6:
        return None
    x /= np.linalg.norm(x)
    grasp = np.eye(4)
    grasp[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    top = pose[2, 3] + size[2] / 2
    depth = min(0.8 * gripper.finger_depth, 0.5 * size[2] + 0.01, size[2] - 0.005)
    grasp[:3, 3] = [pose[0, 3], pose[1, 3], top - depth]
    return grasp, float(size[axis])


def _oracle_grasp_once(scene: SimScene, gt: GroundTruth, gripper, exec_settings, timing) -> Dict[str, Any]:
    t0 = time.perf_counter()
    order = np.argsort(-gt.visible_pixels)
    for index in order:
        found = oracle_grasp(gt, int(index), gripper)
        if found is not None:
            break
    else:
        return {'executed': False, 'success': False, 'reason': 'no_grasp', 'kind': None}
    grasp_world, width = found
    outcome = execute_grasp(scene, grasp_world, width, gripper, exec_settings, target_index=int(index))
    timing['execute_s'] += time.perf_counter() - t0
    return {'executed': True, 'success': bool(outcome.success), 'reason': outcome.reason,
            'lifted_height_m': outcome.lifted_height, 'target': int(index), 'object': outcome.object_index,
            'kind': gt.kind[int(index)], 'class_name': gt.class_name[int(index)], 'width_m': width,
            'approach_blocked': outcome.approach_blocked}


def _summarise(object_rows, grasp_rows, scene_rows, settings, timing, frames, wall, n_scenes, seed,
               exec_settings=None):
    report: Dict[str, Any] = {'n_scenes': int(n_scenes), 'seed': int(seed), 'version': __version__,
                              'settings': asdict(settings),
                              'exec_settings': None if exec_settings is None else asdict(exec_settings),
                              'wall_time_s': wall, 'frames_rendered': frames,
                              'render_fps': frames / timing['render_s'] if timing['render_s'] else None,
                              'timing_s': timing}
    percep: Dict[str, Any] = {}
    subsets = [('all', object_rows)] + [(c, [r for r in object_rows if r['clutter'] == c])
                                         for c in settings.clutter_levels]
    subsets.append(('0.5-1.0 m', [r for r in object_rows if 0.5 <= r['distance_m'] <= 1.0]))
    for name, rows in subsets:
        matched = [r for r in rows if r['matched']]
        box_ious = [r['box_iou'] for r in rows if r['box_matched']]
        trans = np.array([r['translation_error_m'] for r in matched])
        rot = np.array([r['rotation_error_deg'] for r in matched], float)
        adds = np.array([r['add_s_m'] for r in matched])
        percep[name] = {
            'gt_objects': len(rows), 'matched': len(matched),
            'recall_at_iou': len(matched) / len(rows) if rows else float('nan'),
            'mean_iou_matched': float(np.mean([r['iou'] for r in matched])) if matched else float('nan'),
            'box_matched': len(box_ious),
            'box_recall_at_iou': len(box_ious) / len(rows) if rows else float('nan'),
            'mean_box_iou_matched': float(np.mean(box_ious)) if box_ious else float('nan'),
            'median_translation_error_m': float(np.median(trans)) if len(trans) else float('nan'),
            'p90_translation_error_m': float(np.percentile(trans, 90)) if len(trans) else float('nan'),
            'median_rotation_error_deg': float(np.nanmedian(rot)) if np.isfinite(rot).any() else float('nan'),
            'median_add_s_m': float(np.median(adds)) if len(adds) else float('nan'),
            'add_s_below_1cm': float(np.mean(adds < 0.01)) if len(adds) else float('nan'),
        }
    for name in ('all',) + tuple(settings.clutter_levels):
        scenes = [r for r in scene_rows if name in ('all', r['clutter'])]
        predicted, boxes = sum(r['predicted'] for r in scenes), sum(r['predicted_boxes'] for r in scenes)
        percep[name]['predicted'] = predicted
        percep[name]['precision_at_iou'] = (sum(r['matched'] for r in scenes) / predicted if predicted
                                            else float('nan'))
        percep[name]['predicted_boxes'] = boxes
        percep[name]['box_precision_at_iou'] = (sum(r['box_matches'] for r in scenes) / boxes if boxes
                                                else float('nan'))
    kinds = sorted({r['kind'] for r in object_rows})
    percep['by_kind'] = {k: {'gt_objects': sum(r['kind'] == k for r in object_rows),
                             'recall_at_iou': float(np.mean([r['matched'] for r in object_rows if r['kind'] == k])),
                             'box_recall_at_iou': float(np.mean([r['box_matched'] for r in object_rows
                                                                 if r['kind'] == k])),
                             'median_translation_error_m': float(np.median(
                                 [r['translation_error_m'] for r in object_rows if r['kind'] == k and r['matched']]
                                 or [np.nan]))} for k in kinds}
    report['perception'] = percep
    if grasp_rows:
        executed = [r for r in grasp_rows if r['executed']]
        grasp: Dict[str, Any] = {'scenes': len(grasp_rows), 'executed': len(executed),
                                 'executed_rate': _summary_rate(sum(r['success'] for r in executed), len(executed)),
                                 'per_scene_rate': _summary_rate(sum(r['success'] for r in grasp_rows),
                                                                 len(grasp_rows))}
        grasp['by_clutter'] = {c: _summary_rate(sum(r['success'] for r in executed if r['clutter'] == c),
                                                sum(1 for r in executed if r['clutter'] == c))
                               for c in settings.clutter_levels}
        grasp['planner_yield'] = _summary_rate(len(executed), len(grasp_rows))
        grasp['by_clutter_yield'] = {c: _summary_rate(sum(1 for r in executed if r['clutter'] == c),
                                                      sum(1 for r in grasp_rows if r['clutter'] == c))
                                     for c in settings.clutter_levels}
        grasp['by_clutter_per_scene'] = {
            c: _summary_rate(sum(r['success'] for r in grasp_rows if r['clutter'] == c),
                             sum(1 for r in grasp_rows if r['clutter'] == c)) for c in settings.clutter_levels}
        if any(r.get('top_k_executed', 1) > 1 for r in executed):
            grasp['top_k_any_rate'] = _summary_rate(sum(bool(r.get('top_k_any_success')) for r in executed),
                                                    len(executed))
        kinds = sorted({str(r['kind']) for r in executed})   # 'None': the hand closed on no object
        grasp['by_kind'] = {k: _summary_rate(sum(r['success'] for r in executed if str(r['kind']) == k),
                                             sum(1 for r in executed if str(r['kind']) == k)) for k in kinds}
        grasp['by_clutter_kind'] = {
            c: {k: _summary_rate(sum(r['success'] for r in executed if r['clutter'] == c and str(r['kind']) == k),
                                 sum(1 for r in executed if r['clutter'] == c and str(r['kind']) == k))
                for k in kinds} for c in settings.clutter_levels}
        reasons: Dict[str, int] = {}
        for r in grasp_rows:
            key = r['reason'].split(' ')[0]
            reasons[key] = reasons.get(key, 0) + 1
        grasp['reasons'] = reasons
        report['grasping'] = grasp
    report['scenes'] = scene_rows
    report['objects'] = object_rows
    return report


def run_tracking_evaluation(n_sequences: int, seed: int = 0, frames: int = 20, rate_hz: float = 10.0,
                            moving_objects: int = 2, noise: str = 'kinect', threshold: float = 0.05,
                            min_visible_pixels: int = 200, tracker_settings: Any = None,
                            segmentation_settings: Any = None, progress: Optional[TextIO] = None) -> Dict[str, Any]:
    """Track objects through simulated sequences with moving objects and score CLEAR-MOT against ground truth.

    Each sequence is a cluttered scene in which ``moving_objects`` objects slide at scripted
    velocities; ``frames`` frames are rendered at ``rate_hz``, segmented with ``segment_scene``,
    turned into world-frame observations (``tracking.observations_from_objects`` with the
    frame's ``camera_to_fixed``) and fed to ``tracking.Tracker``. Ground truth per frame: the
    objects with at least ``min_visible_pixels`` visible pixels, at their world box centres.
    Returns MOTA, MOTP (m), ID switches, misses, false positives, velocity RMSE (m/s), frames/s.
    ``progress``: a text stream for a progress bar, None for none.
    """
    if int(n_sequences) < 1 or int(frames) < 2 or not rate_hz > 0:
        raise ConfigError(f'run_tracking_evaluation: expected n_sequences >= 1, frames >= 2 and rate_hz > 0, '
                          f'got {n_sequences}, {frames}, {rate_hz}')
    from robot_vision.perception3d.segmentation import SegmentationSettings, segment_scene
    from robot_vision.tracking import MotAccumulator, Tracker, TrackerSettings, observations_from_objects
    seg_settings = segmentation_settings or SegmentationSettings()
    accumulator = MotAccumulator(threshold)
    started = time.perf_counter()
    rendered = 0
    bar = Progress(int(n_sequences), progress, unit='sequences')
    for k in range(int(n_sequences)):
        scene_seed = int(seed) * 100003 + 50000 + k
        spec = generate_scene(scene_seed, SceneSettings(clutter='clutter', moving_objects=moving_objects))
        tracker = Tracker(tracker_settings or TrackerSettings())
        offset = k * 1_000_000   # ids unique across sequences
        with SimScene(spec, DepthNoise(noise, seed=scene_seed)) as scene:
            for f in range(int(frames)):
                if f:
                    scene.step(1.0 / rate_hz)
                frame, gt = scene.render()
                rendered += 1
                seg = segment_scene(frame, seg_settings)
                tracks = tracker.update(observations_from_objects(seg.objects, frame.camera_to_fixed),
                                        frame.stamp + 1.0)
                seen = np.flatnonzero(gt.visible_pixels >= min_visible_pixels)
                accumulator.update(offset + seen, gt.pose_world[seen, :3, 3], offset + tracks.track_id,
                                   tracks.position, gt.velocity_world[seen], tracks.velocity)
        bar.update()
    bar.close()
    metrics = accumulator.result()
    wall = time.perf_counter() - started
    values = {name: getattr(metrics, name) for name in
              ('mota', 'motp', 'num_frames', 'num_gt', 'num_matches', 'num_misses', 'num_false_positives',
               'num_switches', 'velocity_rmse')}
    values.update(n_sequences=int(n_sequences), frames_per_sequence=int(frames), rate_hz=float(rate_hz),
                  noise=noise, threshold_m=threshold, wall_time_s=wall, pipeline_fps=rendered / wall)
    return values


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'not JSON serialisable: {type(value).__name__}')


def _pct(rate: Dict[str, Any]) -> str:
    if not rate['trials']:
        return 'n/a (0 trials)'
    low, high = rate['ci95']
    return (f"{100 * rate['rate']:.1f} % ({rate['successes']}/{rate['trials']}, "
            f"95 % CI {100 * low:.1f}-{100 * high:.1f} %)")


def _num(value: Optional[float], scale: float = 1.0, digits: int = 3, unit: str = '') -> str:
    """``value * scale`` with ``digits`` decimals and a unit, 'n/a' for None or NaN."""
    if value is None or not math.isfinite(value):
        return 'n/a'
    return f'{value * scale:.{digits}f}{unit}'


def render_markdown(report: Dict[str, Any]) -> str:
    """Format a :func:`run_evaluation` report (with ``report['tracking']`` when present) as Markdown."""
    render_fps = report['render_fps']
    lines = [f"# Simulation evaluation: {report['n_scenes']} scenes, seed {report['seed']}", '',
             f"Depth noise: `{report['settings']['noise']}`. Container: "
             f"`{report['settings'].get('container', 'none')}`. Wall time {report['wall_time_s']:.1f} s; "
             f"rendering {_num(render_fps, digits=1)} frames/s (colour + depth + segmentation + noise).", '',
             *(['Scene generation notes (number of scenes): ' + '; '.join(
                 f'{note} ({count})' for note, count in sorted(report['scene_notes'].items())), '']
               if report.get('scene_notes') else []),
             '## Perception (segment_scene vs ground truth)', '',
             'Ground-truth objects with >= '
             f"{report['settings']['min_visible_pixels']} visible pixels, one-to-one matches at IoU >= "
             f"{report['settings']['iou_threshold']:g}. Instances: mask IoU. Detection: 2D box IoU of the "
             "pipeline's Detections (depth backend: the masks' tight boxes) with the boxes of the visible "
             'ground-truth masks.', '',
             '| subset | GT objects | mask recall | mask precision | mean mask IoU | box recall | box precision '
             '| median transl. err | p90 transl. err | median rot. err | median ADD-S | ADD-S < 1 cm |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    percep = report['perception']
    for name in ['all'] + list(report['settings']['clutter_levels']) + ['0.5-1.0 m']:
        p = percep[name]
        lines.append(f"| {name} | {p['gt_objects']} | {_num(p['recall_at_iou'])} | "
                     f"{_num(p.get('precision_at_iou'))} | {_num(p['mean_iou_matched'])} | "
                     f"{_num(p['box_recall_at_iou'])} | {_num(p.get('box_precision_at_iou'))} | "
                     f"{_num(p['median_translation_error_m'], 1000, 1, ' mm')} | "
                     f"{_num(p['p90_translation_error_m'], 1000, 1, ' mm')} | "
                     f"{_num(p['median_rotation_error_deg'], 1, 1, ' deg')} | "
                     f"{_num(p['median_add_s_m'], 1000, 1, ' mm')} | {_num(p['add_s_below_1cm'])} |")
    lines += ['', 'Precision is over all predictions of the subset\'s scenes (n/a for the distance band).', '',
              '| kind | GT objects | mask recall | box recall | median transl. err |', '|---|---|---|---|---|']
    for kind, p in percep['by_kind'].items():
        lines.append(f"| {kind} | {p['gt_objects']} | {_num(p['recall_at_iou'])} | {_num(p['box_recall_at_iou'])} | "
                     f"{_num(p['median_translation_error_m'], 1000, 1, ' mm')} |")
    grasp = report.get('grasping')
    if grasp:
        source = report['settings'].get('grasp_source', 'planner')
        title = ('planner top-1 per scene' if source == 'planner'
                 else 'ORACLE ground-truth top-down grasp per scene: checks the simulated hand, not the planner')
        levels = list(grasp['by_clutter'])
        lines += ['', f'## Closed-loop grasping ({title}, executed in MuJoCo)', '',
                  f"Executed grasps: {_pct(grasp['executed_rate'])}", '',
                  f"Planner yield (scenes with a grasp / scenes): {_pct(grasp['planner_yield'])}", '',
                  f"Per scene (no grasp found counts as a failure): {_pct(grasp['per_scene_rate'])}", '',
                  *([f"Any of the top-{report['settings']['top_k']} grasps (each executed from the same state): "
                     f"{_pct(grasp['top_k_any_rate'])}", ''] if 'top_k_any_rate' in grasp else []),
                  '| clutter | success of executed grasps | planner yield | per scene |', '|---|---|---|---|']
        for c, rate in grasp['by_clutter'].items():
            lines.append(f"| {c} | {_pct(rate)} | {_pct(grasp['by_clutter_yield'][c])} | "
                         f"{_pct(grasp['by_clutter_per_scene'][c])} |")
        lines += ['', '| object kind | ' + ' | '.join(levels) + ' | all |', '|---' * (len(levels) + 2) + '|']
        for k, rate in grasp['by_kind'].items():
            lines.append(f'| {k} | ' + ' | '.join(_pct(grasp['by_clutter_kind'][c][k]) for c in levels)
                         + f' | {_pct(rate)} |')
        lines += ['', 'Outcomes: ' + ', '.join(f'{k}: {v}' for k, v in sorted(grasp['reasons'].items()))]
    tracking = report.get('tracking')
    if tracking:
        lines += ['', f"## Tracking ({tracking['n_sequences']} sequences x {tracking['frames_per_sequence']} frames "
                  f"at {tracking['rate_hz']:g} Hz, moving objects, match threshold {tracking['threshold_m']} m)", '',
                  f"MOTA {tracking['mota']:.3f}, MOTP {1000 * tracking['motp']:.1f} mm, ID switches "
                  f"{tracking['num_switches']}, misses {tracking['num_misses']} of {tracking['num_gt']}, "
                  f"false positives {tracking['num_false_positives']}, "
                  f"velocity RMSE {tracking['velocity_rmse']:.3f} m/s, "
                  f"{tracking['pipeline_fps']:.1f} frames/s (render + segment + track), "
                  f"wall time {tracking['wall_time_s']:.1f} s"]
    t = report['timing_s']
    lines += ['', '## Time (s)', '',
              ', '.join(f'{k} {v:.1f}' for k, v in t.items()) + f", total {report['wall_time_s']:.1f} s"
              + (f" (+ tracking {tracking['wall_time_s']:.1f} s)" if tracking else '')]
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    from robot_vision.sim.cli import main
    sys.exit(main())
