"""YOLO pre- and post-processing in vectorised numpy: letterbox, output layouts, NMS, boxes and masks.

Conventions (as in the Ultralytics exports):

* the network input is (B, 3, H_in, W_in) float RGB in [0, 1], made by :func:`letterbox`
  (scale by ``gain``, then pad by ``pad = (left, top)`` pixels of grey 114);
* boxes leave the network in input pixels and are mapped back with
  ``x_orig = (x_in - pad_x) / gain`` (and the same for y), then clipped to the image;
* masks come from prototypes (nm, H_in/4, W_in/4) combined with per-box coefficients (nm,),
  passed through a sigmoid, cropped to the box and sampled at every original pixel.

::

      original (H, W)                 letterboxed input (H_in, W_in)
    +-----------------+          +-------------------------------+
    |                 |  x gain  |          pad top (114)        |
    |      image      | -------> |+-----------------------------+|
    |                 |          ||  image resized to W*g x H*g ||
    +-----------------+          |+-----------------------------+|
                                 |          pad bottom           |
                                 +-------------------------------+
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from robot_vision.errors import InputError, ModelError
from robot_vision.geometry import box_iou
from robot_vision.types import Detections

#: Output layouts understood by :func:`identify_layout`.
LAYOUT_DETECT = 'detect'             # [B, 4+nc, N]: cx, cy, w, h, class scores
LAYOUT_SEGMENT = 'segment'           # [B, 4+nc+nm, N] + protos [B, nm, H/4, W/4]
LAYOUT_END2END = 'end2end'           # [B, K, 6]: x1, y1, x2, y2, score, class
LAYOUT_END2END_SEGMENT = 'end2end-segment'  # [B, K, 6+nm] + protos


class Letterbox(NamedTuple):
    """A letterboxed image and the mapping back: ``x_orig = (x_in - pad[0]) / gain``.

    ``image`` (H_in, W_in, 3) uint8; ``gain`` the resize factor (input px per original px);
    ``pad`` (left, top) border in input pixels; ``shape`` the original (H, W).
    """

    image: np.ndarray
    gain: float
    pad: Tuple[int, int]
    shape: Tuple[int, int]


def check_rgb_image(image: np.ndarray, what: str = 'image') -> np.ndarray:
    """Return ``image`` if it is (H, W, 3) uint8 RGB; raise InputError naming what is wrong otherwise."""
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise InputError(f'{what}: expected (H, W, 3) uint8 RGB, got a single-channel (grayscale) image '
                         f'of shape {image.shape} {image.dtype}; convert it to RGB first')
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'{what}: expected (H, W, 3) uint8 RGB, got shape {image.shape}')
    if image.dtype != np.uint8:
        raise InputError(f'{what}: expected 8-bit (uint8) RGB, got dtype {image.dtype}; scale 16-bit or '
                         f'float images to 0..255 uint8 first')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f'{what}: expected a non-empty image, got shape {image.shape}')
    return image


def letterbox_shape(shape: Tuple[int, int], size: Tuple[int, int], stride: int = 32,
                    auto: bool = False) -> Tuple[int, int]:
    """The network input (H_in, W_in) that :func:`letterbox` produces for an image of ``shape`` (H, W)."""
    gain = min(size[0] / shape[0], size[1] / shape[1])
    if not auto:
        return (int(size[0]), int(size[1]))
    new_h, new_w = int(round(shape[0] * gain)), int(round(shape[1] * gain))
    return (int(math.ceil(new_h / stride) * stride), int(math.ceil(new_w / stride) * stride))


def letterbox(image: np.ndarray, size: Tuple[int, int], stride: int = 32, auto: bool = False,
              pad_value: int = 114) -> Letterbox:
    """Resize ``image`` (H, W, 3) uint8 to fit ``size`` (H_in, W_in) keeping its aspect, and pad it.

    The scale is ``gain = min(H_in / H, W_in / W)`` (up or down); the resized image is centred
    and the border filled with ``pad_value``. With ``auto`` the output is instead the smallest
    multiple of ``stride`` holding the resized image (for dynamic-shape models).
    """
    h, w = image.shape[:2]
    out_h, out_w = letterbox_shape((h, w), size, stride, auto)
    gain = min(size[0] / h, size[1] / w)
    new_h, new_w = min(int(round(h * gain)), out_h), min(int(round(w * gain)), out_w)
    if (new_h, new_w) != (h, w):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    bottom, right = out_h - new_h - top, out_w - new_w - left
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                   value=(pad_value, pad_value, pad_value))
    return Letterbox(np.ascontiguousarray(image), float(gain), (int(left), int(top)), (int(h), int(w)))


def to_blob(images: Sequence[np.ndarray], dtype=np.float32) -> np.ndarray:
    """Stack (H_in, W_in, 3) uint8 images into a (B, 3, H_in, W_in) ``dtype`` array in [0, 1]."""
    batch = np.stack(images).transpose(0, 3, 1, 2)
    blob = np.empty(batch.shape, dtype=dtype)
    np.multiply(batch, np.asarray(1.0 / 255.0, dtype=dtype), out=blob, casting='unsafe')
    return blob


def identify_layout(pred_shape: Sequence[Optional[int]], proto_shape: Optional[Sequence[Optional[int]]],
                    num_names: Optional[int] = None,
                    end2end: Optional[bool] = None) -> Tuple[str, Optional[int], int]:
    """Tell the YOLO output layout from the output shapes and the ``end2end`` metadata.

    ``pred_shape`` is the shape of the rank-3 output (None for unknown dims), ``proto_shape``
    that of the rank-4 prototype output or None, ``num_names`` the number of class names when
    known (used only to break a tie between layouts; a count mismatch is reported by the caller).
    Returns (layout, nc, nm) with ``nc`` None when the layout does not encode it (end2end).
    Classic heads are [B, 4+nc(+nm), N] with N > 4+nc+nm; end-to-end heads are [B, K, 6(+nm)].
    Raises ModelError when no known layout fits.
    """
    expected = ('expected a YOLO output [B, 4+nc, N] (detect), [B, 4+nc+nm, N] + protos [B, nm, H/4, W/4] '
                '(segment), [B, K, 6] or [B, K, 6+nm] + protos (end-to-end)')
    if len(pred_shape) != 3:
        raise ModelError(f'unknown output layout: {expected}; got an output of shape {tuple(pred_shape)}')
    nm = 0
    if proto_shape is not None:
        if len(proto_shape) != 4 or not isinstance(proto_shape[1], int):
            raise ModelError(f'unknown output layout: {expected}; '
                             f'got prototypes of shape {tuple(proto_shape)}')
        nm = int(proto_shape[1])
    channels, count = pred_shape[1], pred_shape[2]
    e2e_fits = count == 6 + nm
    classic_fits = isinstance(channels, int) and channels > 4 + nm
    if end2end is True:
        classic_fits = False
    elif end2end is False:
        e2e_fits = False
    if e2e_fits and classic_fits:
        if num_names is not None and channels == 4 + num_names + nm:
            e2e_fits = False
        else:  # [1, 84, 8400] vs [1, 300, 6]: candidates outnumber channels in classic heads
            e2e_fits = not (count is None or channels < count)
        classic_fits = not e2e_fits
    if e2e_fits:
        return (LAYOUT_END2END_SEGMENT if nm else LAYOUT_END2END), None, nm
    if classic_fits:
        return (LAYOUT_SEGMENT if nm else LAYOUT_DETECT), int(channels) - 4 - nm, nm
    extra = f' and {num_names} class names' if num_names is not None else ''
    extra += f', end2end metadata {end2end}' if end2end is not None else ''
    protos = f' and prototypes {tuple(proto_shape)}' if proto_shape is not None else ''
    raise ModelError(f'unknown output layout: {expected}; got an output of shape {tuple(pred_shape)}'
                     f'{protos}{extra}')


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, class_id: Optional[np.ndarray] = None,
        max_output: Optional[int] = None, block: int = 256) -> np.ndarray:
    """Greedy non-maximum suppression; returns the kept row indices, best score first.

    ``boxes`` (M, 4) xyxy, ``scores`` (M,), ``class_id`` (M,) ints or None (class-agnostic).
    A box is dropped when its IoU with a kept, higher-scored box exceeds ``iou_threshold``;
    the result is exactly that of the textbook one-box-at-a-time loop. Class-wise NMS uses the
    batched-offset trick: each class's boxes are shifted by ``class * (max coordinate + 1)`` so
    boxes of different classes never overlap and one pass handles every class.

    Vectorised in blocks of ``block`` boxes (best first): a block is first pruned against the
    boxes kept so far (one IoU matrix), then resolved internally by iterating
    ``keep[i] = not any(keep[j] and IoU(j, i) > t for j < i)`` on its IoU matrix to the fixed
    point, which is unique and equals the greedy result. It stops once ``max_output`` are kept.
    """
    count = len(scores)
    limit = count if max_output is None else int(max_output)
    if count == 0 or limit <= 0:
        return np.zeros((0,), np.int64)
    work = np.asarray(boxes, np.float64)
    if class_id is not None:
        span = float(np.abs(work).max()) + 1.0
        work = work + (np.asarray(class_id, np.float64) * span)[:, None]
    order = np.argsort(-np.asarray(scores), kind='stable')
    kept: list = []
    kept_boxes = np.zeros((0, 4))
    for start in range(0, count, block):
        index = order[start:start + block]
        cand = work[index]
        if len(kept_boxes):
            alive = box_iou(cand, kept_boxes).max(axis=1) <= iou_threshold
            index, cand = index[alive], cand[alive]
            if not len(index):
                continue
        suppresses = np.triu(box_iou(cand, cand) > iou_threshold, 1)   # [j, i]: j (better) suppresses i
        keep = np.ones(len(index), bool)
        if suppresses.any():
            while True:
                new = ~(suppresses & keep[:, None]).any(axis=0)
                if np.array_equal(new, keep):
                    break
                keep = new
        kept.append(index[keep])
        kept_boxes = np.concatenate([kept_boxes, cand[keep]])
        if len(kept_boxes) >= limit:
            break
    return np.concatenate(kept)[:limit].astype(np.int64)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(M, 4) centre-size boxes (cx, cy, w, h) to corners (x1, y1, x2, y2)."""
    half = boxes[:, 2:4] * 0.5
    return np.concatenate([boxes[:, 0:2] - half, boxes[:, 0:2] + half], axis=1)


def scale_boxes(boxes: np.ndarray, gain: float, pad: Tuple[float, float],
                shape: Tuple[int, int]) -> np.ndarray:
    """Map (M, 4) xyxy boxes from letterboxed-input pixels to original pixels and clip to ``shape`` (H, W)."""
    offset = np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)
    out = (np.asarray(boxes, np.float32) - offset) / np.float32(gain)
    np.clip(out[:, 0::2], 0, shape[1], out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, shape[0], out=out[:, 1::2])
    return out


@dataclass(frozen=True)
class Candidates:
    """Decoded network output for one image before mapping back: boxes in input pixels.

    ``xyxy`` (M, 4) float32, ``confidence`` (M,) float32, ``class_id`` (M,) int32,
    ``coefficients`` (M, nm) float32 mask coefficients or None.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    coefficients: Optional[np.ndarray] = None


def decode_classic(pred: np.ndarray, nc: int, nm: int, confidence_threshold: float, iou_threshold: float,
                   max_detections: int, max_candidates: int = 30000, agnostic: bool = False) -> Candidates:
    """Decode one image of a [4+nc+nm, N] head (cx, cy, w, h, nc class scores, nm coefficients).

    Keeps candidates whose best class score exceeds ``confidence_threshold`` (at most
    ``max_candidates``, best first), runs class-wise (or agnostic) NMS and returns at most
    ``max_detections`` boxes, best first, in input pixels.
    """
    if pred.ndim != 2 or pred.shape[0] != 4 + nc + nm:
        raise ModelError(f'model output: expected [{4 + nc + nm}, N] per image (4 box + {nc} classes + {nm} '
                         f'mask coefficients), got {pred.shape}')
    scores = pred[4:4 + nc]
    best = scores.max(axis=0)
    index = np.flatnonzero(best > confidence_threshold)
    if index.size > max_candidates:
        index = index[np.argpartition(-best[index], max_candidates - 1)[:max_candidates]]
    confidence = best[index].astype(np.float32)
    class_id = scores[:, index].argmax(axis=0).astype(np.int32)
    xyxy = xywh_to_xyxy(pred[0:4, index].T.astype(np.float32))
    keep = nms(xyxy, confidence, iou_threshold, None if agnostic else class_id, max_detections)
    coefficients = pred[4 + nc:, index[keep]].T.astype(np.float32) if nm else None
    return Candidates(xyxy[keep], confidence[keep], class_id[keep], coefficients)


def decode_end2end(pred: np.ndarray, nm: int, confidence_threshold: float, max_detections: int) -> Candidates:
    """Decode one image of an NMS-free [K, 6+nm] head (x1, y1, x2, y2, score, class, coefficients)."""
    if pred.ndim != 2 or pred.shape[1] != 6 + nm:
        raise ModelError(f'model output: expected [K, {6 + nm}] per image (x1, y1, x2, y2, score, class'
                         f'{f", {nm} mask coefficients" if nm else ""}), got {pred.shape}')
    score = pred[:, 4]
    index = np.flatnonzero(score > confidence_threshold)
    index = index[np.argsort(-score[index], kind='stable')][:max_detections]
    rows = pred[index].astype(np.float32)
    class_id = np.rint(rows[:, 5]).astype(np.int32)
    return Candidates(rows[:, 0:4], rows[:, 4], class_id, rows[:, 6:] if nm else None)


def assemble_masks(protos: np.ndarray, coefficients: np.ndarray, xyxy: np.ndarray,
                   input_shape: Tuple[int, int],
                   gain: float, pad: Tuple[float, float], shape: Tuple[int, int],
                   threshold: float = 0.5) -> np.ndarray:
    """Instance masks in original pixels from prototypes, per-detection coefficients and boxes.

    ``protos`` (nm, Hp, Wp) float prototypes at a fraction of the input (H_in, W_in);
    ``coefficients`` (n, nm); ``xyxy`` (n, 4) boxes in *original* pixels; ``gain``/``pad`` the
    letterbox mapping; ``shape`` the original (H, W). Each mask is the prototype combination,
    bilinearly sampled at the original pixel centres (through the letterbox mapping), kept
    where sigmoid > ``threshold`` and cropped to its box (pixel centres inside the box). Only
    the prototype cells under each box are combined, so the cost grows with the box areas.
    Returns (n, H, W) bool.
    """
    n = len(coefficients)
    height, width = shape
    masks = np.zeros((n, height, width), dtype=bool)
    if n == 0:
        return masks
    nm, hp, wp = protos.shape
    protos = np.asarray(protos, np.float32)
    coefficients = np.asarray(coefficients, np.float32)
    cut = float(np.log(threshold / (1.0 - threshold)))  # sigmoid(x) > t  <=>  x > logit(t)
    sx, sy = input_shape[1] / wp, input_shape[0] / hp
    # original pixel u -> proto pixel: ((u + 0.5) * gain + pad) / s - 0.5
    ax, ay = gain / sx, gain / sy
    bx, by = (0.5 * gain + pad[0]) / sx - 0.5, (0.5 * gain + pad[1]) / sy - 0.5
    lo = np.ceil(np.asarray(xyxy[:, 0:2], np.float64) - 0.5).astype(np.int64)
    hi = np.floor(np.asarray(xyxy[:, 2:4], np.float64) - 0.5).astype(np.int64) + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width, height])
    # only the prototype cells that the box's pixels sample (bilinear: floor and floor + 1),
    # for every box at once: [px0, py0] and the exclusive [px1, py1]
    scale, offset, top = np.array([ax, ay]), np.array([bx, by]), np.array([wp - 1, hp - 1])
    cells_lo = np.clip(np.floor(scale * lo + offset), 0, top).astype(np.int64)
    cells_hi = np.clip(np.floor(scale * (hi - 1) + offset) + 1, 0, top).astype(np.int64) + 1
    for i, ((x0, y0), (x1, y1), (px0, py0), (px1, py1)) in enumerate(
            zip(lo.tolist(), hi.tolist(), cells_lo.tolist(), cells_hi.tolist())):
        if x1 <= x0 or y1 <= y0:
            continue
        window = protos[:, py0:py1, px0:px1]
        logits = (coefficients[i] @ window.reshape(nm, -1)).reshape(py1 - py0, px1 - px0)
        warp = np.array([[ax, 0.0, bx + ax * x0 - px0], [0.0, ay, by + ay * y0 - py0]], np.float64)
        sampled = cv2.warpAffine(logits, warp, (x1 - x0, y1 - y0),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE)
        np.greater(sampled, cut, out=masks[i, y0:y1, x0:x1])
    return masks


@dataclass(frozen=True)
class YoloDecoder:
    """Turns raw YOLO outputs for one image into :class:`~robot_vision.types.Detections`.

    ``layout`` one of the ``LAYOUT_*`` names; ``nc`` the class count (None for end-to-end heads
    whose names are unknown); ``nm`` the number of mask coefficients (0: no masks).
    """

    layout: str
    nc: Optional[int]
    nm: int
    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    max_candidates: int = 30000
    agnostic: bool = False
    mask_threshold: float = 0.5

    @property
    def has_masks(self) -> bool:
        """True for segmentation layouts."""
        return self.nm > 0

    def __call__(self, pred: np.ndarray, protos: Optional[np.ndarray], box: Letterbox,
                 input_shape: Tuple[int, int]) -> Detections:
        """Decode ``pred`` (one image: [C, N] or [K, 6+nm]) and ``protos`` ([nm, Hp, Wp] or None).

        ``box`` is the letterbox of this image and ``input_shape`` the network input (H_in, W_in).
        Returns detections in original-image pixels, best first.
        """
        pred = np.asarray(pred)
        if self.layout in (LAYOUT_END2END, LAYOUT_END2END_SEGMENT):
            cand = decode_end2end(pred, self.nm, self.confidence_threshold, self.max_detections)
            if self.nc is not None and len(cand.class_id) and (
                    cand.class_id.min() < 0 or cand.class_id.max() >= self.nc):
                raise ModelError(f'model output: class ids must lie in [0, {self.nc - 1}] for {self.nc} '
                                 f'class '
                                 f'names, got {sorted(set(cand.class_id.tolist()))[:10]}')
        else:
            cand = decode_classic(pred, int(self.nc), self.nm, self.confidence_threshold, self.iou_threshold,
                                  self.max_detections, self.max_candidates, self.agnostic)
        xyxy = scale_boxes(cand.xyxy, box.gain, box.pad, box.shape)
        mask = None
        if self.nm:
            if protos is None or protos.ndim != 3 or protos.shape[0] != self.nm:
                raise ModelError(f'model output: expected prototypes [{self.nm}, H/4, W/4] per image, got '
                                 f'{None if protos is None else protos.shape}')
            mask = assemble_masks(protos, cand.coefficients, xyxy, input_shape, box.gain, box.pad, box.shape,
                                  self.mask_threshold)
        return Detections(xyxy=xyxy, confidence=cand.confidence, class_id=cand.class_id, mask=mask)
