"""YOLO post-processing, mask assembly, and end-to-end CPU detection (ONNX Runtime vs torch eager)."""

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import measure, row
from robot_vision.detection import DetectorSettings, create_detector, yolo
from robot_vision.detection.testing_models import YoloNano, export_onnx, parameter_count, ultralytics_metadata


def _detect_head_output(rng, objects=40, per_object=12, nc=80, n=8400):
    """A [4+nc, N] detect-head output: low background scores plus clusters of candidates on objects."""
    pred = np.empty((4 + nc, n), np.float32)
    pred[0:2] = rng.uniform(0, 640, (2, n))
    pred[2:4] = rng.uniform(8, 200, (2, n))
    pred[4:] = rng.uniform(0, 0.05, (nc, n))
    centres = rng.uniform(50, 590, (objects, 2))
    sizes = rng.uniform(30, 250, (objects, 2))
    for i in range(objects):
        cols = rng.choice(n, per_object, replace=False)
        pred[0:2, cols] = centres[i][:, None] + rng.normal(0, 3, (2, per_object))
        pred[2:4, cols] = sizes[i][:, None] * rng.uniform(0.9, 1.1, (2, per_object))
        pred[4 + rng.integers(nc), cols] = rng.uniform(0.3, 0.95, per_object)
    return pred


def run(quick: bool):
    repeat = 10 if quick else 100
    rng = np.random.default_rng(0)
    rows = []
    box = yolo.Letterbox(np.zeros((640, 640, 3), np.uint8), 1.0, (0, 80), (480, 640))

    decoder = yolo.YoloDecoder(yolo.LAYOUT_DETECT, 80, 0)
    pred = _detect_head_output(rng)
    kept = len(decoder(pred, None, box, (640, 640)))
    rows.append(measure('postprocess 8400 cand x 80 cls (threshold+NMS+rescale)',
                        lambda: decoder(pred, None, box, (640, 640)), repeat * 3, target_ms=2.0,
                        candidates=int((pred[4:].max(0) > 0.25).sum()), detections=kept))
    dense = pred.copy()
    dense[4:] = rng.uniform(0, 0.3, dense[4:].shape)      # almost every candidate passes 0.25
    rows.append(measure('postprocess worst case (~8400 candidates pass the threshold)',
                        lambda: decoder(dense, None, box, (640, 640)), repeat,
                        candidates=int((dense[4:].max(0) > 0.25).sum())))

    protos = rng.normal(0, 3, (32, 160, 160)).astype(np.float32)
    coefficients = rng.normal(0, 1, (20, 32)).astype(np.float32)
    xy = rng.uniform(0, 500, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(40, 200, (20, 2))], 1).clip(0, [640, 480, 640, 480])
    rows.append(measure('mask assembly 20 dets 640x480 (protos 32x160x160)',
                        lambda: yolo.assemble_masks(protos, coefficients, boxes.astype(np.float32),
                                                    (640, 640), 1.0, (0, 80), (480, 640)),
                        repeat * 3, target_ms=10.0))

    torch.manual_seed(0)
    net = YoloNano().eval()
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    decode = yolo.YoloDecoder(yolo.LAYOUT_DETECT, 80, 0)

    def eager():
        lb = yolo.letterbox(image, (640, 640))
        with torch.inference_mode():
            out = net(torch.from_numpy(yolo.to_blob([lb.image]))).numpy()
        return decode(out[0], None, lb, (640, 640))

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(net, Path(tmp) / 'yolo_nano.onnx', (1, 3, 640, 640),
                           ultralytics_metadata([f'c{i}' for i in range(80)], (640, 640)))
        default_threads = torch.get_num_threads()
        for threads in (0, 1):  # 0: each library's default thread count; 1: one thread each
            torch.set_num_threads(threads or default_threads)
            detector = create_detector('onnx', DetectorSettings(model_path=str(path), num_threads=threads))
            rows += _compare(detector, eager, image, max(10, repeat // 2), parameter_count(net),
                             'default threads' if threads == 0 else '1 thread')
            detector.close()
        torch.set_num_threads(default_threads)
    return rows


def _compare(detector, eager, image, repeat, params, label):
    """Time ONNX Runtime and torch eager in alternating blocks, so that both see the same machine load.

    The first call of each block is not timed: ONNX Runtime's worker threads spin for a while
    after a run and would otherwise slow down the torch call that follows.
    """
    times = {'ort': [], 'eager': []}
    calls = {'ort': lambda: detector.detect_image(image), 'eager': eager}
    for _ in range(2):
        calls['ort']()
        calls['eager']()
    block = 5
    for _ in range(max(1, repeat // block)):
        for key, fn in calls.items():
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[key].append((time.perf_counter() - start) * 1e3)
    ort_ms, eager_ms = (float(np.median(times[k])) for k in ('ort', 'eager'))
    n = len(times['ort'])
    return [
        row(f'end-to-end ONNX Runtime CPU, {label} (letterbox+infer+post) 640x480 -> 640x640', ort_ms, 'ms',
            p95_ms=float(np.percentile(times['ort'], 95)), n=n, params=params),
        row(f'end-to-end torch eager CPU, {label} (same net, same pre/post)', eager_ms, 'ms',
            p95_ms=float(np.percentile(times['eager'], 95)), n=n, threads=torch.get_num_threads()),
        row(f'speed-up ONNX Runtime vs torch eager, {label} (ratio of medians)', eager_ms / ort_ms, 'x'),
    ]
