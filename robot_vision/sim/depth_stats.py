"""How sparse a depth image is: the statistics that set and check the 'registered_sparse' noise model.

``python -m robot_vision.sim.depth_stats [N]`` prints them for the real Princeton APC shelf frames
(../shared/data/real_clutter/apc_shelf_bin_b) and for N simulated shelf scenes with each noise model.
"""

from __future__ import annotations

import sys
from typing import Dict, List, Optional

import numpy as np

from robot_vision.errors import InputError


def gap_periods(valid: np.ndarray) -> np.ndarray:
    """Spacings of single-pixel gaps along each row of ``valid`` ((H, W) bool).

    A single-pixel gap is an invalid pixel between two valid ones; the spacing of two such gaps
    with only valid pixels between them is returned (registration gaps every 4-5 pixels give 4s and 5s).
    """
    valid = np.asarray(valid, bool)
    single = np.zeros(valid.shape, bool)
    single[:, 1:-1] = ~valid[:, 1:-1] & valid[:, :-2] & valid[:, 2:]
    out = []
    for row_valid, row_single in zip(valid, single):
        gaps = np.flatnonzero(row_single)
        if len(gaps) < 2:
            continue
        # only valid pixels between two consecutive single gaps: the invalid count in between is 0
        invalid_before = np.concatenate([[0], np.cumsum(~row_valid)])
        between = invalid_before[gaps[1:]] - invalid_before[gaps[:-1] + 1]
        out.append((gaps[1:] - gaps[:-1])[between == 0])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def depth_validity_stats(depth: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Fraction of valid depth overall, on labelled objects (``labels`` > 0) and on the background.

    ``depth``: (H, W) float metres, NaN invalid; ``labels``: (H, W) int, 0 = background.
    Also the mean spacing of single-pixel gaps along rows (``column_period``) and along
    columns (``row_period``) and how many such spacings were seen (``gaps_x``, ``gaps_y``).
    """
    depth, labels = np.asarray(depth), np.asarray(labels)
    if depth.ndim != 2 or labels.shape != depth.shape:
        raise InputError(f'depth_validity_stats: expected (H, W) depth and labels of one shape, got '
                         f'{depth.shape} and {labels.shape}')
    valid = np.isfinite(depth)
    objects = labels > 0
    along_x, along_y = gap_periods(valid), gap_periods(valid.T)
    return {'valid': float(valid.mean()),
            'valid_objects': float(valid[objects].mean()) if objects.any() else float('nan'),
            'valid_background': float(valid[~objects].mean()) if (~objects).any() else float('nan'),
            'column_period': float(along_x.mean()) if len(along_x) else float('nan'),
            'row_period': float(along_y.mean()) if len(along_y) else float('nan'),
            'gaps_x': int(len(along_x)), 'gaps_y': int(len(along_y))}


def mean_stats(rows: List[Dict[str, float]]) -> Dict[str, float]:
    """The per-key mean of :func:`depth_validity_stats` results (NaN entries skipped)."""
    return {key: float(np.nanmean([row[key] for row in rows])) for key in rows[0]}


def real_apc_stats(root: Optional[str] = None) -> Dict[str, float]:
    """Mean statistics of the 15 real APC shelf-bin frames (raises InputError when the data is absent)."""
    from robot_vision.real_scenes import load_apc_shelf
    return mean_stats([depth_validity_stats(lf.frame.depth, lf.labels) for lf in load_apc_shelf(root)])


def sim_stats(noise_model: str, scenes: int, container: str = 'shelf', seed: int = 0) -> Dict[str, float]:
    """Mean statistics of ``scenes`` simulated container scenes (clutter and dense alternating)."""
    from robot_vision.sim.noise import DepthNoise
    from robot_vision.sim.scene import SceneSettings, generate_scene
    from robot_vision.sim.simulator import SimScene
    rows = []
    for k in range(scenes):
        spec = generate_scene(seed + k, SceneSettings(clutter=('clutter', 'dense')[k % 2]).with_container(container))
        with SimScene(spec, DepthNoise(noise_model, seed=seed + k)) as scene:
            frame, gt = scene.render()
        labels = np.zeros(frame.depth.shape, np.int32)
        for index in np.flatnonzero(gt.visible_pixels >= 200):
            labels[gt.mask[index]] = index + 1
        rows.append(depth_validity_stats(frame.depth, labels))
    return mean_stats(rows)


def main(argv: Optional[List[str]] = None) -> int:
    """Print the real APC statistics and those of N (default 10) simulated shelf and bin scenes per noise model."""
    argv = sys.argv[1:] if argv is None else argv
    scenes = int(argv[0]) if argv else 10

    def show(name: str, stats: Dict[str, float]) -> None:
        print(f'{name:<36} valid {stats["valid"]:.3f}  objects {stats["valid_objects"]:.3f}  background '
              f'{stats["valid_background"]:.3f}  gap spacing along x {stats["column_period"]:.2f} '
              f'along y {stats["row_period"]:.2f}')
    try:
        show('real apc_shelf_bin_b (15 frames)', real_apc_stats())
    except InputError as exc:
        print(f'real APC data not available: {exc}')
    for container in ('shelf', 'bin'):
        for model in ('realsense_d435', 'registered_sparse'):
            show(f'sim {container}, {model} ({scenes} scenes)', sim_stats(model, scenes, container))
    return 0


if __name__ == '__main__':
    sys.exit(main())
