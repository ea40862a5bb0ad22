"""Small torch networks with exact YOLO output layouts and Ultralytics-style exporters, for tests/benchmarks.

Nothing here is trained. :class:`ColourBoxNet` finds pure red, green and blue regions of its
input and reports their bounding boxes (and masks) in each of the YOLO output layouts, so a
decoder can be checked end to end against known boxes. :class:`YoloNano` is a YOLO-n-sized
CSP network (about 2.7 M parameters) with a detect head, for timing.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

#: Scores of the red, green and blue boxes of ColourBoxNet (class ids 0, 1, 2).
COLOUR_SCORES = (0.9, 0.8, 0.7)


class ColourBoxNet(nn.Module):
    """A conv net whose outputs encode the boxes of the pure-colour regions of its input.

    Class ``c`` (0 red, 1 green, 2 blue) is the bounding box of the input pixels whose channel
    ``c`` exceeds 0.5, in input pixels, with score ``COLOUR_SCORES[c]`` (0 when absent).
    ``head``: 'detect' -> [B, 4+nc(+nm), N] (cx, cy, w, h, scores, coefficients), with per class
    a duplicate box shifted by ``shift`` px (score - 0.05, removed by NMS) and a low-score copy
    (0.1); 'end2end' -> [B, K, 6(+nm)] (x1, y1, x2, y2, score, class, coefficients) with one row
    per class. With ``nm`` >= 3, a second output holds prototypes [B, nm, H/4, W/4] whose channel
    ``c`` is +10 where the 4x4-average of channel ``c`` exceeds 0.5 and -10 elsewhere, and the
    coefficients of class ``c`` are one-hot(c), so the decoded masks are the colour regions.
    """

    def __init__(self, head: str = 'detect', nc: int = 3, nm: int = 0, candidates: int = 64,
                 shift: float = 2.0) -> None:
        super().__init__()
        if head not in ('detect', 'end2end') or nc < 3 or nm not in (0,) and nm < 3:
            raise ValueError(f'ColourBoxNet: head detect/end2end, nc >= 3, nm 0 or >= 3; '
                             f'got {head}, {nc}, {nm}')
        self.head, self.nc, self.nm, self.candidates, self.shift = head, nc, nm, candidates, shift
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
        self.register_buffer('scores', torch.tensor(COLOUR_SCORES))
        self.register_buffer('class_onehot', torch.eye(3, nc))
        self.register_buffer('coef_onehot', torch.eye(3, max(nm, 1))[:, :nm])

    def forward(self, x: torch.Tensor):
        """(B, 3, H, W) in [0, 1] -> the head output (and prototypes when nm > 0)."""
        x = self.conv(x)
        on = x > 0.5
        ones = torch.ones_like(x)
        xs = torch.cumsum(ones, 3) - 1.0
        ys = torch.cumsum(ones, 2) - 1.0
        big = torch.full_like(x, 1e6)
        x1 = torch.where(on, xs, big).amin((2, 3))
        y1 = torch.where(on, ys, big).amin((2, 3))
        x2 = torch.where(on, xs + 1.0, -big).amax((2, 3))
        y2 = torch.where(on, ys + 1.0, -big).amax((2, 3))
        present = on.float().amax((2, 3))                                       # (B, 3)
        score = present * self.scores                                           # (B, 3)
        xyxy = torch.stack([x1, y1, x2, y2], -1) * present.unsqueeze(-1)        # (B, 3, 4)
        coef = self.coef_onehot.unsqueeze(0).expand(x.shape[0], -1, -1)         # (B, 3, nm)
        if self.head == 'end2end':
            cls = torch.arange(3, dtype=x.dtype).unsqueeze(0).expand(x.shape[0], -1)
            rows = torch.cat([xyxy, score.unsqueeze(-1), cls.unsqueeze(-1)] + ([coef] if self.nm else []), -1)
            filler = torch.zeros_like(rows[:, :1]).expand(-1, self.candidates - 3, -1)
            out = torch.cat([rows, filler], 1)
        else:
            cxcywh = torch.cat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], -1)
            moved = cxcywh + torch.tensor([self.shift, 0.0, 0.0, 0.0])
            onehot = self.class_onehot.unsqueeze(0)                              # (1, 3, nc)
            tail = [coef] if self.nm else []
            rows = [torch.cat([cxcywh, score.unsqueeze(-1) * onehot] + tail, -1),
                    torch.cat([moved, (score.unsqueeze(-1) - 0.05).clamp(min=0) * onehot] + tail, -1),
                    torch.cat([cxcywh, 0.1 * present.unsqueeze(-1) * onehot] + tail, -1)]
            rows = torch.cat(rows, 1)                                            # (B, 9, C)
            filler = torch.zeros_like(rows[:, :1]).expand(-1, self.candidates - 9, -1)
            out = torch.cat([rows, filler], 1).transpose(1, 2)                   # (B, C, N)
        if not self.nm:
            return out
        protos = (F.avg_pool2d(x, 4) > 0.5).float() * 20.0 - 10.0               # (B, 3, H/4, W/4)
        if self.nm > 3:
            protos = torch.cat([protos, torch.zeros_like(protos[:, :1]).expand(-1, self.nm - 3, -1, -1)], 1)
        return out, protos


def _conv(c1: int, c2: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.SiLU())


class _Bottleneck(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = _conv(c, c), _conv(c, c)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class _C2f(nn.Module):
    """CSP block with two convolutions and ``n`` bottlenecks, as in YOLOv8."""

    def __init__(self, c1: int, c2: int, n: int = 1) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = _conv(c1, 2 * self.c, 1)
        self.cv2 = _conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(_Bottleneck(self.c) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class _SPPF(nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = _conv(c1, c1 // 2, 1), _conv(c1 * 2, c2, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class YoloNano(nn.Module):
    """A YOLO-n-sized detector or segmenter (CSP backbone, SPPF, FPN/PAN neck, decoupled head), untrained.

    Input (B, 3, H, W) with H, W multiples of 32; output [B, 4+nc(+nm), N] with
    N = (H/8 * W/8 + H/16 * W/16 + H/32 * W/32) (8400 at 640x640): cx, cy, w, h in input
    pixels, sigmoid class scores and, with ``nm`` > 0, mask coefficients; a segmenter also
    returns prototypes [B, nm, H/4, W/4] (the YOLO-seg layout). The class bias starts at the
    Ultralytics prior, so an untrained net scores near zero, as a trained one does on empty
    scenes; :func:`calibrate_detections` raises it until an image gives a realistic count.
    """

    def __init__(self, nc: int = 80, widths: Sequence[int] = (16, 32, 64, 128, 224), nm: int = 0) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.nc, self.nm = nc, nm
        self.stem = nn.Sequential(_conv(3, w0, 3, 2), _conv(w0, w1, 3, 2), _C2f(w1, w1, 1))
        self.down3 = nn.Sequential(_conv(w1, w2, 3, 2), _C2f(w2, w2, 2))
        self.down4 = nn.Sequential(_conv(w2, w3, 3, 2), _C2f(w3, w3, 2))
        self.down5 = nn.Sequential(_conv(w3, w4, 3, 2), _C2f(w4, w4, 1), _SPPF(w4, w4))
        self.up4 = _C2f(w4 + w3, w3)
        self.up3 = _C2f(w3 + w2, w2)
        self.pan4_down, self.pan4 = _conv(w2, w2, 3, 2), _C2f(w2 + w3, w3)
        self.pan5_down, self.pan5 = _conv(w3, w3, 3, 2), _C2f(w3 + w4, w4)
        box_c, cls_c = 64, w2
        self.box = nn.ModuleList(nn.Sequential(_conv(c, box_c), _conv(box_c, box_c), nn.Conv2d(box_c, 4, 1))
                                 for c in (w2, w3, w4))
        self.cls = nn.ModuleList(nn.Sequential(_conv(c, cls_c), _conv(cls_c, cls_c), nn.Conv2d(cls_c, nc, 1))
                                 for c in (w2, w3, w4))
        if nm:
            coef_c = max(w2 // 4, nm)
            self.coef = nn.ModuleList(
                nn.Sequential(_conv(c, coef_c), _conv(coef_c, coef_c), nn.Conv2d(coef_c, nm, 1)) for c in (w2, w3, w4))
            self.proto = nn.Sequential(_conv(w2, 64), nn.ConvTranspose2d(64, 64, 2, 2), _conv(64, 64),
                                       _conv(64, nm, 1))
        self.strides = (8, 16, 32)
        with torch.no_grad():
            for head, s in zip(self.cls, self.strides):
                head[-1].bias.fill_(float(torch.log(torch.tensor(5.0 / nc / (640 / s) ** 2))))
            for head in self.box:  # objects a few strides wide, not a fraction of one
                head[-1].bias.fill_(2.0)

    def forward(self, x: torch.Tensor):
        """(B, 3, H, W) -> (B, 4+nc, N), or ((B, 4+nc+nm, N), (B, nm, H/4, W/4)) for a segmenter."""
        p2 = self.stem(x)
        p3 = self.down3(p2)
        p4 = self.down4(p3)
        p5 = self.down5(p4)
        h4 = self.up4(torch.cat([F.interpolate(p5, scale_factor=2.0, mode='nearest'), p4], 1))
        n3 = self.up3(torch.cat([F.interpolate(h4, scale_factor=2.0, mode='nearest'), p3], 1))
        n4 = self.pan4(torch.cat([self.pan4_down(n3), h4], 1))
        n5 = self.pan5(torch.cat([self.pan5_down(n4), p5], 1))
        outs = []
        for level, (feat, box, cls, stride) in enumerate(zip((n3, n4, n5), self.box, self.cls,
                                                             self.strides)):
            b, _, h, w = feat.shape
            gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype),
                                    indexing='ij')
            anchors = torch.stack([gx, gy], 0).reshape(1, 2, h * w) + 0.5
            ltrb = F.softplus(box(feat)).reshape(b, 4, h * w)
            lt, rb = ltrb[:, :2], ltrb[:, 2:]
            xy1, xy2 = anchors - lt, anchors + rb
            boxes = torch.cat([(xy1 + xy2) / 2, xy2 - xy1], 1) * stride
            parts = [boxes, cls(feat).sigmoid().reshape(b, self.nc, h * w)]
            if self.nm:
                parts.append(self.coef[level](feat).reshape(b, self.nm, h * w))
            outs.append(torch.cat(parts, 1))
        if self.nm:
            return torch.cat(outs, 2), self.proto(n3)
        return torch.cat(outs, 2)


def calibrate_detections(net: YoloNano, image, detections: int = 64, confidence_threshold: float = 0.25,
                         iou_threshold: float = 0.45) -> int:
    """Give the untrained ``net`` realistic outputs on ``image``: about ``detections`` boxes.

    ``image`` is an (H, W, 3) uint8 RGB image, letterboxed to its size rounded up to a multiple
    of 32. First the batch-norm statistics are taken from the image, so that the activations keep
    their scale through the untrained layers and the boxes and scores vary with the image; then
    one offset added to every class bias is bisected so that class-wise NMS at the given
    thresholds keeps about ``detections`` boxes (a trained YOLO-n finds tens of objects in a
    cluttered scene). Returns the count reached; ``net`` is left in eval mode.
    """
    import numpy as np

    from robot_vision.detection import yolo

    size = tuple(int(-(-s // 32) * 32) for s in image.shape[:2])
    blob = torch.from_numpy(yolo.to_blob([yolo.letterbox(image, size).image]))
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None       # cumulative average: one pass sets the statistics
    with torch.no_grad():
        net.train()(blob)
        out = net.eval()(blob)
    pred = (out[0] if isinstance(out, tuple) else out)[0].numpy().astype(np.float64)
    scores = np.clip(pred[4:4 + net.nc], 1e-30, 1 - 1e-16)
    logits = np.log(scores) - np.log1p(-scores)

    def count(offset: float) -> int:
        pred[4:4 + net.nc] = 1.0 / (1.0 + np.exp(-(logits + offset)))
        return len(yolo.decode_classic(pred, net.nc, net.nm, confidence_threshold, iou_threshold, 300).xyxy)

    low, high = -30.0, 30.0
    for _ in range(40):
        middle = (low + high) / 2
        if count(middle) < detections:
            low = middle
        else:
            high = middle
    with torch.no_grad():
        for head in net.cls:
            head[-1].bias.add_(high)
    return count(high)


def parameter_count(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def ultralytics_metadata(names: Sequence[str], imgsz: Tuple[int, int], task: str = 'detect',
                         end2end: Optional[bool] = None, stride: int = 32,
                         batch: int = 1) -> Dict[str, object]:
    """The metadata dictionary an Ultralytics export writes (as Python values)."""
    meta: Dict[str, object] = {
        'description': 'robot_vision test model', 'author': 'robot_vision', 'version': '8.3.0',
        'license': 'AGPL-3.0', 'stride': stride, 'task': task, 'batch': batch,
        'imgsz': [int(imgsz[0]), int(imgsz[1])], 'names': dict(enumerate(names)), 'channels': 3,
    }
    if end2end is not None:
        meta['end2end'] = end2end
    return meta


def export_onnx(model: nn.Module, path: Path, input_shape: Tuple[int, int, int, int],
                metadata: Optional[Mapping[str, object]] = None, dynamic: bool = False,
                opset: int = 17) -> Path:
    """Export ``model`` to ONNX at ``path`` the way Ultralytics does.

    Input ``images``, outputs ``output0`` (and ``output1`` for prototypes), metadata written as
    ``str(value)`` in metadata_props. ``dynamic`` makes batch, height and width dynamic.
    """
    import onnx

    model = model.eval()
    example = torch.zeros(input_shape)
    with torch.no_grad():
        out = model(example)
    names = ['output0', 'output1'] if isinstance(out, tuple) else ['output0']
    axes = None
    if dynamic:
        axes = {'images': {0: 'batch', 2: 'height', 3: 'width'}, 'output0': {0: 'batch', 2: 'anchors'}}
        if len(names) == 2:
            axes['output1'] = {0: 'batch', 2: 'mask_height', 3: 'mask_width'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (example,), str(path), input_names=['images'], output_names=names,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    proto = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(path))
    return Path(path)


def export_torchscript(model: nn.Module, path: Path, input_shape: Tuple[int, int, int, int],
                       metadata: Optional[Mapping[str, object]] = None) -> Path:
    """Trace ``model`` and save it as Ultralytics does, metadata JSON in the ``config.txt`` extra file."""
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(model, torch.zeros(input_shape), strict=False)
        extra = {'config.txt': json.dumps(dict(metadata or {}))}
        torch.jit.save(traced, str(path), _extra_files=extra)
    return Path(path)
