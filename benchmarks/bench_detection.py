"""YOLO post-processing, mask assembly, and end-to-end CPU detection against the onnxruntime floor.

The end-to-end part times, in paired rounds in one process (every variant once per round, in
rotating order, so that all see the same machine load), on a real 640x480 and a real 1280x720
image, for a YOLO-n-sized detector and segmenter (``YoloNano``, weights calibrated to give about
64 detections on the image):

* the floor: bare ``session.run`` of our own session on the already letterboxed blob;
* our ONNX backend end to end (letterbox + blob + run + decode + masks), static and dynamic export;
* our TorchScript backend end to end, and PyTorch eager with the same pre/post-processing.

Ratios are medians of per-round ratios; the load average is printed with them.
"""

import copy
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.harness import measure, row
from robot_vision.datasets import shared_data_dir
from robot_vision.detection import DetectorSettings, create_detector, yolo
from robot_vision.detection.testing_models import (YoloNano, calibrate_detections, export_onnx, export_torchscript,
                                                   parameter_count, ultralytics_metadata)

#: Detections per image the test models are calibrated to (a trained YOLO-n finds 54-79 in these scenes).
DETECTIONS = 64


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

    rows += end_to_end(quick)
    return rows


def real_images():
    """{'640x480': YCB frame, '1280x720': GraspNet Kinect frame} as RGB, from ../shared/data (empty if absent)."""
    root = shared_data_dir()
    if root is None:
        return {}
    paths = {'640x480': root / 'ycb_posecnn' / '000001-color.png',
             '1280x720': root / 'real_clutter' / 'graspnet_scene0000' / 'kinect' / 'rgb' / '0016.png'}
    return {key: cv2.imread(str(path))[:, :, ::-1].copy() for key, path in paths.items() if path.is_file()}


def build_models(folder: Path, image: np.ndarray, nm: int):
    """YoloNano (nm > 0: segmenter) calibrated on ``image``, exported three ways; returns (net, files).

    The square exports (static ONNX, TorchScript; ``net`` itself, for eager) are calibrated on the
    square letterbox, the dynamic ONNX export on the rectangular one, so that each gives about
    ``DETECTIONS`` boxes on the input it runs on (an untrained net also fires on the grey border,
    which a trained one does not).
    """
    side = -(-max(image.shape[:2]) // 32) * 32
    torch.manual_seed(0)
    net = YoloNano(nm=nm).eval()
    rect = copy.deepcopy(net)
    calibrate_detections(net, yolo.letterbox(image, (side, side)).image, DETECTIONS)
    calibrate_detections(rect, image, DETECTIONS)
    task = 'segment' if nm else 'detect'
    meta = ultralytics_metadata([f'class{i}' for i in range(net.nc)], (side, side), task)
    shape = (1, 3, side, side)
    return net, {
        'static': export_onnx(net, folder / f'{task}_static.onnx', shape, meta),
        'dynamic': export_onnx(rect, folder / f'{task}_dynamic.onnx', shape, meta, dynamic=True),
        'torchscript': export_torchscript(net, folder / f'{task}.torchscript', shape, meta),
    }


def _eager(net, decoder, size, image):
    """PyTorch eager with our letterbox, blob and decoding (square input, as the static export)."""
    def call():
        box = yolo.letterbox(image, size)
        with torch.inference_mode():
            out = net(torch.from_numpy(yolo.to_blob([box.image])))
        pred, protos = (out if isinstance(out, tuple) else (out, None))
        return decoder(pred[0].numpy(), None if protos is None else protos[0].numpy(), box, size)
    return call


def session_floor(detector, image):
    """Bare ``session.run`` of the detector's own session on its letterboxed blob of ``image``."""
    blob = yolo.to_blob([detector._letterbox(image).image])
    session, feed = detector.session, {detector.session.get_inputs()[0].name: blob}
    return lambda: session.run(None, feed), blob.shape


def paired(calls, rounds):
    """Time each of ``calls`` once per round, rotating the order; {name: [ms per round]}."""
    names = list(calls)
    for name in names:  # warm-up: allocations, torch's profiling executor
        calls[name]()
        calls[name]()
    times = {name: [] for name in names}
    for index in range(rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def end_to_end(quick: bool):
    """Rows: per image size and task, the medians and the paired ratios ours/floor, torchscript/eager.

    ``ROBOT_VISION_BENCH_THREADS=N`` runs ONNX Runtime and torch with N intra-op threads each
    (default 0: each library's default), steadier on a machine shared with other jobs.
    """
    images = real_images()
    if not images:
        return [row('end-to-end detection: skipped, ../shared/data is absent', 0.0, '-')]
    rounds = 5 if quick else 15
    threads = int(os.environ.get('ROBOT_VISION_BENCH_THREADS', '0'))
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    rows = []
    try:
        for res, image in images.items():
            for nm in (0, 32):
                rows += _case(res, image, nm, rounds, threads)
        rows += spinning_cpu(images.get('640x480'), rounds)
    finally:
        torch.set_num_threads(default_threads)
    return rows


def paired_ratio(times, a, b):
    """Median over rounds of time[a] / time[b]."""
    return float(np.median(np.asarray(times[a]) / np.asarray(times[b])))


def _case(res, image, nm, rounds, threads):
    task = 'segment' if nm else 'detect'
    with tempfile.TemporaryDirectory() as tmp:
        net, files = build_models(Path(tmp), image, nm)
        static = create_detector('onnx', DetectorSettings(model_path=str(files['static']),
                                                          intra_op_num_threads=threads))
        dynamic = create_detector('onnx', DetectorSettings(model_path=str(files['dynamic']),
                                                           intra_op_num_threads=threads))
        script = create_detector('torchscript', DetectorSettings(model_path=str(files['torchscript']),
                                                                 backend='torchscript', intra_op_num_threads=threads))
        floor_static, static_shape = session_floor(static, image)
        floor_dynamic, dynamic_shape = session_floor(dynamic, image)
        calls = {'floor static': floor_static, 'onnx static': partial(static.detect_image, image),
                 'floor dynamic': floor_dynamic, 'onnx dynamic': partial(dynamic.detect_image, image),
                 'torchscript': partial(script.detect_image, image),
                 'eager': _eager(net, static.decoder, static.input_size, image)}
        counts = {k: len(d.detect_image(image)) for k, d in
                  (('static', static), ('dynamic', dynamic), ('torchscript', script))}
        times = paired(calls, rounds)
        load = os.getloadavg()
        for detector in (static, dynamic, script):
            detector.close()
    label = f'{task} {res}' + (f' {threads} thread(s)' if threads else '')
    med = {k: float(np.median(v)) for k, v in times.items()}
    target = '<= 1.05' if not nm else '<= 1.10'
    return [
        row(f'{label}: load average (1, 5, 15 min) {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}', load[0], 'load'),
        row(f'{label}: floor session.run static {static_shape[2]}x{static_shape[3]}', med['floor static'],
            'ms', n=rounds, load=load),
        row(f'{label}: ONNX backend static, end to end ({counts["static"]} dets)', med['onnx static'], 'ms',
            n=rounds, params=parameter_count(net)),
        row(f'{label}: ratio ONNX static / floor', paired_ratio(times, 'onnx static', 'floor static'), 'x', target),
        row(f'{label}: floor session.run dynamic {dynamic_shape[2]}x{dynamic_shape[3]}',
            med['floor dynamic'], 'ms', n=rounds),
        row(f'{label}: ONNX backend dynamic (auto rect), end to end ({counts["dynamic"]} dets)',
            med['onnx dynamic'], 'ms', n=rounds),
        row(f'{label}: ratio ONNX dynamic / floor dynamic', paired_ratio(times, 'onnx dynamic', 'floor dynamic'), 'x',
            target),
        row(f'{label}: ratio ONNX dynamic / ONNX static', paired_ratio(times, 'onnx dynamic', 'onnx static'), 'x'),
        row(f'{label}: TorchScript backend, end to end ({counts["torchscript"]} dets)', med['torchscript'],
            'ms', n=rounds),
        row(f'{label}: PyTorch eager, same pre/post', med['eager'], 'ms', n=rounds,
            threads=torch.get_num_threads()),
        row(f'{label}: ratio TorchScript / eager', paired_ratio(times, 'torchscript', 'eager'), 'x', '<= 1.0'),
        row(f'{label}: ratio ONNX static / TorchScript', paired_ratio(times, 'onnx static', 'torchscript'), 'x'),
    ]


def spinning_cpu(image, rounds):
    """CPU time per frame of the process with ONNX Runtime's worker spinning on and off (detect, 640x480)."""
    if image is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        files = build_models(Path(tmp), image, 0)[1]
        rows = []
        for spin in (False, True):
            detector = create_detector('onnx', DetectorSettings(model_path=str(files['dynamic']),
                                                                allow_spinning=spin))
            detector.detect_image(image)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(rounds):
                detector.detect_image(image)
                time.sleep(0.02)  # the rest of a node's frame: other work, where spinning threads compete
            cpu, wall = (time.process_time() - cpu) / rounds, (time.perf_counter() - wall) / rounds - 0.02
            detector.close()
            load = os.getloadavg()[0]
            rows.append(row(f'detect 640x480 dynamic, allow_spinning={spin}: process CPU per frame (wall '
                            f'{wall * 1e3:.0f} ms, load {load:.2f})', cpu * 1e3, 'ms', wall_ms=wall * 1e3, n=rounds))
    return rows
