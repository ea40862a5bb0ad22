"""Instance segmentation on simulated scenes, 'clutter' against 'planar', beside the real-data numbers.

The same generated scenes for both methods (``robot_vision.sim.evaluate.run_evaluation``, perception
only), in these mixes:

- tabletop: the old mix (isolated + clutter, 45-75 deg from 0.5-1 m, Kinect noise), 100 scenes;
- hard: clutter + dense piles, top-down to steep views from 0.4-2 m, RealSense D435 noise, 60 scenes;
- shelf / bin: objects in a shelf cubby / a tote, clutter + dense, RealSense D435 noise, 30 scenes each;
- bin top-down: the tote seen by a wrist camera 0.4-0.55 m above it, 75-90 deg down (it fills most
  of the view), 20 scenes;
- shelf sparse: the shelf with depth registered to a larger colour image and sparse (``registered_sparse``,
  measured on the real APC bin), the stand-in for ``apc_shelf_bin_b``;
- cups: the hard views with open cups (mugs without handle) as two in seven of the objects, whose near
  rim hides their inside, 30 scenes;
- bowls: the same with open bowls (12-20 cm across, a scalloped rim) instead of the cups, 30 scenes.

Prints recall / precision at mask IoU 0.5 (every prediction scored) and the mean IoU of the matched
objects, and the real-data recall / precision of ``artifacts/segmentation_real.json`` when that file
exists (``python -m benchmarks --only segmentation_real`` writes it), so sim and real sit side by side.
``--quick`` runs a sixth of the scenes.

Run: ``python -m benchmarks --only segmentation_sim``; writes ``artifacts/segmentation_sim.json``.
"""

import dataclasses
import json
import os
from pathlib import Path

from benchmarks.harness import row
from robot_vision.perception3d.segmentation import SegmentationSettings

OUT = Path('artifacts') / 'segmentation_sim.json'
REAL = Path('artifacts') / 'segmentation_real.json'
METHODS = {'new (clutter)': SegmentationSettings(), 'old (planar)': SegmentationSettings.planar()}
#: name -> (scenes, seed, EvaluationSettings overrides)
MIXES = {
    'tabletop': (100, 0, dict(clutter_levels=('isolated', 'clutter'), noise='kinect')),
    'hard': (60, 1, dict(clutter_levels=('clutter', 'dense'), views='hard', noise='realsense_d435')),
    'shelf': (30, 0, dict(clutter_levels=('clutter', 'dense'), container='shelf', noise='realsense_d435')),
    'bin': (30, 0, dict(clutter_levels=('clutter', 'dense'), container='bin', noise='realsense_d435')),
    'bin top-down': (20, 0, dict(clutter_levels=('clutter', 'dense'), container='bin', views='hard',
                                 noise='realsense_d435')),
    'shelf sparse': (30, 0, dict(clutter_levels=('clutter', 'dense'), container='shelf', noise='registered_sparse')),
    'cups': (30, 3, dict(clutter_levels=('clutter', 'dense'), views='hard', noise='realsense_d435',
                         kinds=('cup', 'cup', 'box', 'cylinder', 'sphere', 'ellipsoid', 'mesh'))),
    'bowls': (30, 5, dict(clutter_levels=('clutter', 'dense'), views='hard', noise='realsense_d435',
                          kinds=('bowl', 'bowl', 'box', 'cylinder', 'sphere', 'ellipsoid', 'mesh'))),
}


def _real_lines():
    if not REAL.is_file():
        return ['(real data: run python -m benchmarks --only segmentation_real for the numbers beside these)']
    report = json.loads(REAL.read_text())
    lines = ['real data (artifacts/segmentation_real.json, with the gravity prior where the data has one):']
    for method, result in next(iter(report['accuracy'].values())).items():
        for set_name, summary in result['sets'].items():
            lines.append(f'  {set_name:<20} {method:<14} recall {summary["recall"]:.3f}  '
                         f'precision {summary["precision"]:.3f}')
    return lines


def run(quick: bool):
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from robot_vision.sim.evaluate import EvaluationSettings, run_evaluation
    results = {}
    for mix, (scenes, seed, overrides) in MIXES.items():
        settings = dataclasses.replace(EvaluationSettings(), grasping=False, **overrides)
        count = max(2, scenes // 6) if quick else scenes
        for method, segmentation in METHODS.items():
            report = run_evaluation(count, seed, out_dir=None, settings=settings, segmentation_settings=segmentation)
            summary = report['perception']['all']
            results.setdefault(mix, {})[method] = {
                'scenes': count, 'gt_objects': summary['gt_objects'], 'recall': summary['recall_at_iou'],
                'precision': summary['precision_at_iou'], 'mean_iou': summary['mean_iou_matched']}
    lines = [f'{"mix":<13} {"method":<14} {"scenes":>6} {"objects":>7} {"recall":>7} {"precision":>9} {"mean IoU":>8}']
    for mix, by_method in results.items():
        for method, r in by_method.items():
            lines.append(f'{mix:<13} {method:<14} {r["scenes"]:>6} {r["gt_objects"]:>7} {r["recall"]:>7.3f} '
                         f'{r["precision"]:>9.3f} {r["mean_iou"]:>8.3f}')
    print('\n'.join(lines + _real_lines()), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1, default=float))
    return [row(f'sim {mix} {method} recall@0.5', r['recall'], 'ratio', precision=r['precision'])
            for mix, by_method in results.items() for method, r in by_method.items()]
