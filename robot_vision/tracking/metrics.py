"""CLEAR-MOT tracking metrics (MOTA, MOTP, ID switches, misses, false positives) plus velocity RMSE.

Per frame, ground-truth objects (ids and positions) are matched to hypotheses (track ids and
positions) within a distance ``threshold`` following Bernardin & Stiefelhagen (2008):

1. a ground-truth object keeps the hypothesis it was last matched to when that hypothesis is
   present and still within the threshold;
2. the remaining objects and hypotheses are matched by the Hungarian method on distance;
3. a match whose hypothesis differs from the one the object was last matched to (in any earlier
   frame) is an ID switch; unmatched objects are misses, unmatched hypotheses false positives.

``MOTA = 1 - (misses + false_positives + switches) / num_gt``; ``MOTP`` is the mean distance of
the matches. The velocity RMSE is ``sqrt(mean |v_hyp - v_gt|^2)`` over the matches for which both
velocities were given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from robot_vision.errors import InputError


@dataclass(frozen=True)
class MotMetrics:
    """CLEAR-MOT totals over a sequence (distances in the units of the positions given).

    ``mota`` and ``motp`` are NaN when there was no ground truth / no match; ``velocity_rmse``
    is NaN when no match had velocities on both sides.
    """

    mota: float
    motp: float
    num_frames: int
    num_gt: int
    num_matches: int
    num_misses: int
    num_false_positives: int
    num_switches: int
    velocity_rmse: float

    def summary(self) -> str:
        """One line of text for logs and test output."""
        return (f'MOTA {self.mota:.3f}  MOTP {self.motp:.3f}  IDsw {self.num_switches}  '
                f'FP {self.num_false_positives}  miss {self.num_misses}  GT {self.num_gt}  '
                f'vel RMSE {self.velocity_rmse:.3f}')


def _as_points(name: str, value: np.ndarray, n: int) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if n == 0 and array.size == 0:
        return array.reshape(0, array.shape[-1] if array.ndim == 2 else 3)
    if array.ndim != 2 or array.shape[0] != n:
        raise InputError(f'{name}: expected shape ({n}, D) parallel to the ids, got {array.shape}')
    return array


class MotAccumulator:
    """Accumulate CLEAR-MOT counts frame by frame; call :meth:`result` at the end."""

    def __init__(self, threshold: float) -> None:
        if not (np.isfinite(threshold) and threshold > 0):
            raise InputError(f'threshold: expected a distance > 0, got {threshold!r}')
        self.threshold = float(threshold)
        self._last: Dict[int, int] = {}
        self._frames = self._gt = self._matches = self._misses = self._fp = self._switches = 0
        self._dist_sum = 0.0
        self._vel_sq_sum = 0.0
        self._vel_n = 0

    def update(self, gt_ids: Sequence[int], gt_positions: np.ndarray, hyp_ids: Sequence[int],
               hyp_positions: np.ndarray, gt_velocities: Optional[np.ndarray] = None,
               hyp_velocities: Optional[np.ndarray] = None) -> Dict[int, int]:
        """Score one frame; returns this frame's matches as {gt id: hypothesis id}.

        ``gt_ids`` (G,) and ``hyp_ids`` (H,) are integer ids (unique within the frame);
        ``gt_positions`` (G, D) and ``hyp_positions`` (H, D) positions in the same frame and units;
        optional ``gt_velocities`` (G, D) and ``hyp_velocities`` (H, D) feed the velocity RMSE.
        """
        gt_ids = [int(i) for i in np.asarray(gt_ids).reshape(-1)]
        hyp_ids = [int(i) for i in np.asarray(hyp_ids).reshape(-1)]
        if len(set(gt_ids)) != len(gt_ids) or len(set(hyp_ids)) != len(hyp_ids):
            raise InputError(f'ids must be unique within a frame, got gt {gt_ids} and hyp {hyp_ids}')
        gt_pos = _as_points('gt_positions', gt_positions, len(gt_ids))
        hyp_pos = _as_points('hyp_positions', hyp_positions, len(hyp_ids))
        dist = (np.linalg.norm(gt_pos[:, None, :] - hyp_pos[None, :, :], axis=2)
                if len(gt_ids) and len(hyp_ids) else np.zeros((len(gt_ids), len(hyp_ids))))
        hyp_index = {h: j for j, h in enumerate(hyp_ids)}
        matches: Dict[int, int] = {}   # gt row -> hyp row
        used_hyp = set()
        for i, g in enumerate(gt_ids):  # 1. keep last frame's correspondences still within range
            j = hyp_index.get(self._last.get(g, -1))
            if j is not None and j not in used_hyp and dist[i, j] <= self.threshold:
                matches[i] = j
                used_hyp.add(j)
        free_gt = [i for i in range(len(gt_ids)) if i not in matches]
        free_hyp = [j for j in range(len(hyp_ids)) if j not in used_hyp]
        if free_gt and free_hyp:  # 2. Hungarian on the rest
            sub = dist[np.ix_(free_gt, free_hyp)]
            cost = np.where(sub <= self.threshold, sub, 1e9)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if sub[r, c] <= self.threshold:
                    i, j = free_gt[r], free_hyp[c]
                    g, h = gt_ids[i], hyp_ids[j]
                    if g in self._last and self._last[g] != h:  # 3. ID switch
                        self._switches += 1
                    matches[i] = j
        for i, j in matches.items():
            self._last[gt_ids[i]] = hyp_ids[j]
            self._dist_sum += float(dist[i, j])
        if gt_velocities is not None and hyp_velocities is not None and matches:
            gv = _as_points('gt_velocities', gt_velocities, len(gt_ids))
            hv = _as_points('hyp_velocities', hyp_velocities, len(hyp_ids))
            for i, j in matches.items():
                self._vel_sq_sum += float(np.sum((hv[j] - gv[i]) ** 2))
                self._vel_n += 1
        self._frames += 1
        self._gt += len(gt_ids)
        self._matches += len(matches)
        self._misses += len(gt_ids) - len(matches)
        self._fp += len(hyp_ids) - len(matches)
        return {gt_ids[i]: hyp_ids[j] for i, j in matches.items()}

    def result(self) -> MotMetrics:
        """The metrics over every frame so far."""
        errors = self._misses + self._fp + self._switches
        return MotMetrics(
            mota=1.0 - errors / self._gt if self._gt else float('nan'),
            motp=self._dist_sum / self._matches if self._matches else float('nan'),
            num_frames=self._frames, num_gt=self._gt, num_matches=self._matches,
            num_misses=self._misses, num_false_positives=self._fp, num_switches=self._switches,
            velocity_rmse=float(np.sqrt(self._vel_sq_sum / self._vel_n)) if self._vel_n else float('nan'))


def clear_mot(gt_ids: Sequence[Sequence[int]], gt_positions: Sequence[np.ndarray],
              hyp_ids: Sequence[Sequence[int]], hyp_positions: Sequence[np.ndarray], threshold: float,
              gt_velocities: Optional[Sequence[np.ndarray]] = None,
              hyp_velocities: Optional[Sequence[np.ndarray]] = None) -> MotMetrics:
    """CLEAR-MOT metrics of a whole sequence given per-frame lists (one entry per frame).

    Each ``gt_ids[k]`` (G_k,) / ``gt_positions[k]`` (G_k, D) and ``hyp_ids[k]`` (H_k,) /
    ``hyp_positions[k]`` (H_k, D) describe frame ``k``; ``threshold`` is the largest distance of a
    match (same units as the positions). Velocities, when given, are per-frame (G_k, D) / (H_k, D).
    """
    n = len(gt_ids)
    lengths = [len(gt_positions), len(hyp_ids), len(hyp_positions)]
    if gt_velocities is not None:
        lengths.append(len(gt_velocities))
    if hyp_velocities is not None:
        lengths.append(len(hyp_velocities))
    if any(length != n for length in lengths):
        raise InputError(f'clear_mot: expected every per-frame list to have {n} frames, got {lengths}')
    acc = MotAccumulator(threshold)
    for k in range(n):
        acc.update(gt_ids[k], gt_positions[k], hyp_ids[k], hyp_positions[k],
                   None if gt_velocities is None else gt_velocities[k],
                   None if hyp_velocities is None else hyp_velocities[k])
    return acc.result()
