"""Instance-segmentation metrics against ground-truth masks (real frames and simulation).

:func:`frame_metrics` scores one frame's predicted masks against a ground-truth instance image:
- object recall / precision at mask IoU >= 0.5 (one-to-one Hungarian matches). A prediction that
  matches nothing is a false positive only when at least half of its pixels lie inside the convex
  hull of all ground-truth masks (the labelled, cluttered region); predictions elsewhere (robot
  parts, the room, unlabelled objects far away) are not scored at all;
- the unseen-object segmentation measures of the OCID/OSD literature (UOIS-Net, UCN): Overlap and
  Boundary precision / recall / F-measure after a Hungarian matching on the F-measure of every
  (ground truth, prediction) pair, boundaries one pixel wide and matched within
  ceil(0.003 x image diagonal) pixels (the DAVIS boundary measure those papers use);
- why each unmatched object was lost: merged (one prediction holds most of it and most of another
  object), split (two or more predictions hold a fifth of it each), or missed.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np

from robot_vision.errors import InputError

#: Boundary tolerance of the DAVIS / UOIS boundary measure, as a fraction of the image diagonal.
BOUNDARY_TOLERANCE = 0.003


def mask_iou_matrix(gt_masks: np.ndarray, pred_masks: np.ndarray) -> np.ndarray:
    """IoU of every ground-truth mask (G, H, W) bool with every predicted mask (P, H, W) bool: (G, P)."""
    return _iou(*_overlaps(gt_masks, pred_masks))


def _iou(inter: np.ndarray, gt_area: np.ndarray, pred_area: np.ndarray) -> np.ndarray:
    union = gt_area[:, None] + pred_area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _overlaps(gt_masks: np.ndarray, pred_masks: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G, P) intersection pixel counts, (G,) and (P,) areas."""
    gt_masks, pred_masks = np.asarray(gt_masks, bool), np.asarray(pred_masks, bool)
    if gt_masks.ndim != 3 or pred_masks.ndim != 3 or gt_masks.shape[1:] != pred_masks.shape[1:]:
        raise InputError(f'mask_iou_matrix: expected (G, H, W) and (P, H, W) masks of one image size, '
                         f'got {gt_masks.shape} and {pred_masks.shape}')
    pixels = int(np.prod(gt_masks.shape[1:]))
    gt = gt_masks.reshape(len(gt_masks), pixels).astype(np.float32)
    pred = pred_masks.reshape(len(pred_masks), pixels).astype(np.float32)
    return gt @ pred.T, gt.sum(1), pred.sum(1)


def match_instances(iou: np.ndarray, threshold: float = 0.5) -> List[Tuple[int, int, float]]:
    """One-to-one matches (gt, pred, iou) maximising total IoU, keeping pairs with IoU >= ``threshold``."""
    from scipy.optimize import linear_sum_assignment
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] >= threshold]


def label_masks(labels: np.ndarray) -> np.ndarray:
    """(K, H, W) bool masks of the positive values of an (H, W) instance image, in increasing value order."""
    labels = np.asarray(labels)
    values = np.unique(labels)
    values = values[values > 0]
    return labels[None] == values[:, None, None]


def clutter_region(gt_masks: np.ndarray) -> np.ndarray:
    """(H, W) bool: the convex hull of all ground-truth masks together."""
    shape = gt_masks.shape[1:]
    region = np.zeros(shape, np.uint8)
    ys, xs = np.nonzero(gt_masks.any(axis=0))
    if ys.size >= 3:
        hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
        cv2.fillConvexPoly(region, hull, 1)
    region[ys, xs] = 1
    return region > 0


def _boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a bool mask (the DAVIS ``seg2bmap`` convention).

    Pixels that differ from their right, lower or lower-right neighbour: the outline offset by half
    a pixel towards the origin.
    """
    edge = np.zeros(mask.shape, bool)
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:-1, :] |= mask[:-1, :] != mask[1:, :]
    edge[:-1, :-1] |= mask[:-1, :-1] != mask[1:, 1:]
    return edge


def _boundaries(masks: np.ndarray) -> np.ndarray:
    return np.stack([_boundary(m) for m in masks]) if len(masks) else np.zeros_like(masks)


def overlap_boundary_measures(gt_masks: np.ndarray, pred_masks: np.ndarray,
                              overlaps: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
                              ) -> Dict[str, float]:
    """Overlap and Boundary precision / recall / F-measure of one frame (OCID/OSD definitions).

    Predictions and ground truth are matched one-to-one by the Hungarian algorithm on the pairwise
    F-measure; overlap precision = matched true-positive pixels / all predicted pixels, recall =
    the same / all ground-truth pixels; boundary precision and recall count matched boundary pixels
    within the tolerance of the other mask's boundary. ``overlaps``: the masks' ``_overlaps`` when
    the caller has them already.
    """
    from scipy.optimize import linear_sum_assignment
    g, p = len(gt_masks), len(pred_masks)
    if g == 0 or p == 0:
        value = 1.0 if g == p else 0.0
        return {f'{kind}_{m}': value if not (m == 'recall' and g == 0) else 1.0
                for kind in ('overlap', 'boundary') for m in ('precision', 'recall', 'f')}
    inter, gt_area, pred_area = _overlaps(gt_masks, pred_masks) if overlaps is None else overlaps
    with np.errstate(invalid='ignore', divide='ignore'):
        prec = inter / pred_area[None, :]
        rec = inter / gt_area[:, None]
        f = np.nan_to_num(2 * prec * rec / (prec + rec))
    rows, cols = linear_sum_assignment(-f)
    tp = inter[rows, cols].sum()
    overlap_p = tp / max(np.count_nonzero(pred_masks.any(axis=0)), 1)
    overlap_r = tp / max(np.count_nonzero(gt_masks.any(axis=0)), 1)
    radius = int(math.ceil(BOUNDARY_TOLERANCE * math.hypot(*gt_masks.shape[1:])))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    gt_b, pred_b = _boundaries(gt_masks), _boundaries(pred_masks)
    hit_p = hit_r = 0
    for r, c in zip(rows, cols):
        gt_near = cv2.dilate(gt_b[r].view(np.uint8), disk) > 0
        pred_near = cv2.dilate(pred_b[c].view(np.uint8), disk) > 0
        hit_p += np.count_nonzero(pred_b[c] & gt_near)
        hit_r += np.count_nonzero(gt_b[r] & pred_near)
    boundary_p = hit_p / max(int(pred_b.sum()), 1)
    boundary_r = hit_r / max(int(gt_b.sum()), 1)
    return {'overlap_precision': float(overlap_p), 'overlap_recall': float(overlap_r),
            'overlap_f': _f(overlap_p, overlap_r), 'boundary_precision': float(boundary_p),
            'boundary_recall': float(boundary_r), 'boundary_f': _f(boundary_p, boundary_r)}


def _f(precision: float, recall: float) -> float:
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def frame_metrics(pred_masks: np.ndarray, gt_labels: np.ndarray, iou_threshold: float = 0.5) -> Dict[str, Any]:
    """Score one frame's predicted (P, H, W) bool masks against an (H, W) ground-truth instance image.

    Returns counts (``gt``, ``matched``, ``scored_predictions``, ``false_positives``, ``merged``,
    ``split``, ``missed``), the per-object best IoU (``best_iou``, in ground-truth value order) and
    the Overlap / Boundary measures over the scored predictions.
    """
    gt_masks = label_masks(gt_labels)
    pred_masks = np.asarray(pred_masks, bool).reshape((-1,) + gt_masks.shape[1:])
    region = clutter_region(gt_masks)
    pixels = int(np.prod(gt_masks.shape[1:]))
    pred_area = pred_masks.reshape(len(pred_masks), pixels).sum(1)
    inside = (pred_masks & region).reshape(len(pred_masks), pixels).sum(1)
    scored = pred_masks[inside * 2 >= np.maximum(pred_area, 1)]
    overlaps = _overlaps(gt_masks, scored)
    inter, gt_area, _ = overlaps
    iou = _iou(*overlaps)
    matches = match_instances(iou, iou_threshold)
    matched_gt = {m[0] for m in matches}
    merged = split = missed = 0
    for g in range(len(gt_masks)):
        if g in matched_gt:
            continue
        share = inter[g] / max(gt_area[g], 1)  # fraction of object g in each prediction
        holder = int(np.argmax(share)) if share.size else -1
        others = np.delete(inter[:, holder] / np.maximum(gt_area, 1), g) if holder >= 0 else np.zeros(0)
        if holder >= 0 and share[holder] >= 0.5 and others.size and others.max() >= 0.5:
            merged += 1
        elif np.count_nonzero(share >= 0.2) >= 2:
            split += 1
        else:
            missed += 1
    result = {'gt': len(gt_masks), 'matched': len(matches), 'scored_predictions': len(scored),
              'false_positives': len(scored) - len(matches), 'merged': merged, 'split': split,
              'missed': missed, 'best_iou': [float(v) for v in (iou.max(axis=1) if iou.shape[1] else
                                                               np.zeros(len(gt_masks)))]}
    result.update(overlap_boundary_measures(gt_masks, scored, overlaps))
    return result
