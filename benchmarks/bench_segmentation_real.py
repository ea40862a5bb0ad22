"""Instance segmentation on real cluttered frames: the 'clutter' method against the old 'planar' one.

Every frame of ``../shared/data/real_clutter/`` (GraspNet-1Billion scene 0000, YCB-Video, the APC
shelf bin) and the PCL milk scene, with the gravity prior where the data gives one and without it.
Prints, per set and overall, object recall / precision at mask IoU >= 0.5 (predictions outside the
convex hull of the labelled objects are not scored), merged / split / missed objects, the OCID/OSD
Overlap and Boundary F-measures, the support-plane error (GraspNet's true table) and the median time
per frame at 640x480 and 1280x720, old and new side by side, with the load average. Times come from
a separate loop that alternates old and new on each frame (3 rounds, 1 with --quick), so both see
the same machine state; the ratio new / old is what transfers between machines.

Run: ``python -m benchmarks --only segmentation_real``; writes ``artifacts/segmentation_real.json``.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import row
from robot_vision.datasets import shared_data_dir
from robot_vision.perception3d.segmentation import SegmentationSettings, segment_scene

OUT = Path('artifacts') / 'segmentation_real.json'
METHODS = {'old (planar)': SegmentationSettings.planar(), 'new (clutter)': SegmentationSettings()}
COLUMNS = (('recall', 'recall@0.5', '{:.2f}'), ('precision', 'precision@0.5', '{:.2f}'),
           ('overlap_f', 'Overlap F', '{:.2f}'), ('boundary_f', 'Boundary F', '{:.2f}'),
           ('merged', 'merged', '{:d}'), ('split', 'split', '{:d}'), ('missed', 'missed', '{:d}'),
           ('plane_angle_deg', 'plane deg', '{:.1f}'), ('plane_offset_m', 'plane off m', '{:.3f}'))


def _timings(frames, rounds):
    """Median ms per frame size for each method, measured alternately on the same frames."""
    samples = {name: {} for name in METHODS}
    for _ in range(rounds):
        for labelled in frames:
            size = '{}x{}'.format(*labelled.labels.shape[::-1])
            for name, settings in METHODS.items():
                start = time.perf_counter()
                segment_scene(labelled.frame, settings)
                samples[name].setdefault(size, []).append((time.perf_counter() - start) * 1e3)
    return {name: {size: float(np.median(v)) for size, v in by_size.items()} for name, by_size in samples.items()}


def _table(report):
    lines = []
    for variant, by_method in report['accuracy'].items():
        lines.append(f'## {variant}')
        header = f'{"set":<20} {"method":<14} ' + ' '.join(f'{title:>12}' for _, title, _ in COLUMNS)
        lines.append(header)
        for set_name in next(iter(by_method.values()))['sets']:
            for method, result in by_method.items():
                summary = result['sets'][set_name]
                cells = []
                for key, _, fmt in COLUMNS:
                    value = summary.get(key)
                    cells.append(f'{"-":>12}' if value is None else f'{fmt.format(value):>12}')
                lines.append(f'{set_name:<20} {method:<14} ' + ' '.join(cells))
    lines.append('## median time per frame (alternating old/new), load average '
                 + ' '.join(f'{v:.2f}' for v in report['load_average']))
    old, new = report['timing_ms']['old (planar)'], report['timing_ms']['new (clutter)']
    for size in sorted(old):
        ratio = new[size] / old[size]
        lines.append(f'{size:<10} old {old[size]:7.1f} ms   new {new[size]:7.1f} ms   new/old {ratio:.2f}')
    return '\n'.join(lines)


def run(quick: bool):
    if shared_data_dir() is None or not (shared_data_dir() / 'real_clutter').is_dir():
        return [row('segmentation_real skipped: ../shared/data/real_clutter not found', 0.0, '-')]
    from robot_vision.real_scenes import evaluate_segmentation, load_labelled_frames
    frames = load_labelled_frames()
    with_prior = [f for f in frames if f.frame.camera_to_fixed is not None]
    accuracy = {}
    for variant, chosen, use_prior in (('with the gravity prior where the data has one', frames, True),
                                       ('without a gravity prior (frames that have one)', with_prior, False)):
        accuracy[variant] = {name: evaluate_segmentation(chosen, settings, use_prior)
                             for name, settings in METHODS.items()}
    load = os.getloadavg()
    timing = _timings(frames, 1 if quick else 3)
    report = {'accuracy': accuracy, 'timing_ms': timing, 'load_average': list(load)}
    print(_table(report), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1, default=float))
    rows = []
    for variant, by_method in accuracy.items():
        tag = 'prior' if variant.startswith('with ') else 'no prior'
        for method, result in by_method.items():
            for set_name, summary in result['sets'].items():
                rows.append(row(f'{method} {set_name} ({tag}) recall@0.5', summary['recall'], 'ratio'))
    for size, new_ms in timing['new (clutter)'].items():
        old_ms = timing['old (planar)'][size]
        rows.append(row(f'segment_scene {size} new (clutter)', new_ms, 'ms', old_ms=old_ms,
                        ratio_to_old=new_ms / old_ms))
    return rows
