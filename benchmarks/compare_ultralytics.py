"""robot_vision's ONNX detector against Ultralytics' own predictor on the same Ultralytics-exported files.

Needs ``ultralytics``, which needs torchvision and so cannot live in the project venv (CPU torch
pinned without torchvision). Run it from the repository root in a separate venv::

    python3 -m venv /tmp/venv-ultralytics
    /tmp/venv-ultralytics/bin/pip install ultralytics onnx onnxruntime opencv-python-headless
    PYTHONPATH=. /tmp/venv-ultralytics/bin/python benchmarks/compare_ultralytics.py [--rounds 10]

Where ``ultralytics`` is not importable it prints why and exits 0. Everything is built locally,
nothing is downloaded at run time: YOLO11n and YOLO11n-seg from their bundled YAML definitions
(random weights), batch-norm statistics taken from the image and the class bias shifted until the
image gives about 64 detections (the count a trained YOLO11n finds in these cluttered scenes), then
exported to static and dynamic ONNX with Ultralytics' exporter. On the real 640x480 and 1280x720
frames of ../shared/data it times, in paired rounds (see bench_detection.paired):

* ``floor``: bare onnxruntime ``session.run`` of our session on our letterboxed blob;
* ``ours static`` / ``ours dynamic``: our ONNX backend end to end on the static / dynamic export;
* ``ultralytics onnx``: ``YOLO(static.onnx).predict`` (square input, as its ONNX backend uses);
* ``ultralytics pytorch``: ``YOLO(yaml).predict`` on the same network in PyTorch (rectangular input).

Ultralytics runs with our thresholds (conf 0.25, iou 0.45; its own default iou is 0.7) and, for
segmentation, ``retina_masks=True`` so that both return masks at image resolution.
"""

import argparse
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_detection import DETECTIONS, session_floor, paired_ratio, paired, real_images  # noqa: E402
from robot_vision.detection import DetectorSettings, create_detector, yolo  # noqa: E402

CONF, IOU = 0.25, 0.45


def _first_prediction(out):
    """The [B, C, N] tensor in an Ultralytics model's output (a tensor or nested tuples/lists)."""
    if isinstance(out, (tuple, list)):
        for item in out:
            found = _first_prediction(item)
            if found is not None:
                return found
        return None
    return out if getattr(out, 'ndim', 0) == 3 else None


def build(yaml_name, image, folder):
    """A YOLO model from ``yaml_name`` calibrated on ``image``; returns (model, static onnx, dynamic onnx)."""
    import torch
    from torch import nn
    from ultralytics import YOLO

    model = YOLO(yaml_name)
    net = model.model
    side = -(-max(image.shape[:2]) // 32) * 32
    size = tuple(-(-s // 32) * 32 for s in image.shape[:2])
    blob = torch.from_numpy(yolo.to_blob([yolo.letterbox(image, size).image]))
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        net.train()(blob)
        net.eval()
    head = net.model[-1]
    biases = [branch[-1].bias.detach().clone() for branch in head.cv3]
    nm = getattr(head, 'nm', 0)

    def count(offset):
        with torch.no_grad():
            for branch, bias in zip(head.cv3, biases):
                branch[-1].bias.copy_(bias + offset)
            pred = _first_prediction(net(blob))[0].numpy()
        return len(yolo.decode_classic(pred, head.nc, nm, CONF, IOU, 300).xyxy)

    low, high = -30.0, 30.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if count(middle) < DETECTIONS else (low, middle)
    count(high)
    files = []
    for dynamic in (False, True):
        exported = Path(model.export(format='onnx', imgsz=side, dynamic=dynamic, simplify=False, opset=17))
        target = folder / f'{Path(yaml_name).stem}_{"dynamic" if dynamic else "static"}.onnx'
        shutil.move(str(exported), target)
        files.append(target)
    return model, files[0], files[1], side


def compare(res, image, task, rounds, folder):
    from ultralytics import YOLO

    yaml_name = 'yolo11n-seg.yaml' if task == 'segment' else 'yolo11n.yaml'
    model, static_path, dynamic_path, side = build(yaml_name, image, folder)
    static = create_detector('onnx', DetectorSettings(model_path=str(static_path), iou_threshold=IOU))
    dynamic = create_detector('onnx', DetectorSettings(model_path=str(dynamic_path), iou_threshold=IOU))
    onnx_model = YOLO(str(static_path), task=task)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    extra = {'retina_masks': True} if task == 'segment' else {}
    predict = dict(imgsz=side, conf=CONF, iou=IOU, verbose=False, device='cpu', **extra)
    calls = {'floor': session_floor(static, image)[0],
             'ours static': partial(static.detect_image, image),
             'ours dynamic': partial(dynamic.detect_image, image),
             'ultralytics onnx': partial(onnx_model.predict, bgr, **predict),
             'ultralytics pytorch': partial(model.predict, bgr, **predict)}
    counts = {'ours static': len(static.detect_image(image)),
              'ultralytics onnx': len(onnx_model.predict(bgr, **predict)[0].boxes)}
    times = paired(calls, rounds)
    median = {k: float(np.median(v)) for k, v in times.items()}
    print(f'\n{task} {res} (input {side}x{side} static; detections ours {counts["ours static"]}, '
          f'ultralytics {counts["ultralytics onnx"]}; load average {os.getloadavg()})')
    for name, value in median.items():
        print(f'  {name:<22} {value:9.1f} ms')
    for a, b in (('ours static', 'floor'), ('ours dynamic', 'floor'), ('ultralytics onnx', 'ours static'),
                 ('ultralytics onnx', 'ours dynamic'), ('ultralytics pytorch', 'ours dynamic')):
        print(f'  ratio {a} / {b}: {paired_ratio(times, a, b):.3f}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=10, help='paired rounds per case')
    args = parser.parse_args(argv)
    try:
        import ultralytics
    except ImportError as exc:
        print(f'compare_ultralytics: skipped, ultralytics is not importable here ({exc}); run it in a '
              f'separate venv as described in docs/detection.md')
        return 0
    images = real_images()
    if not images:
        print('compare_ultralytics: skipped, the real frames in ../shared/data are absent')
        return 0
    print(f'ultralytics {ultralytics.__version__}, paired rounds: {args.rounds}')
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)   # Ultralytics writes its exports next to the model definition or in the cwd
        try:
            for res, image in images.items():
                for task in ('detect', 'segment'):
                    compare(res, image, task, args.rounds, Path(tmp))
        finally:
            os.chdir(cwd)
    return 0


if __name__ == '__main__':
    sys.exit(main())
