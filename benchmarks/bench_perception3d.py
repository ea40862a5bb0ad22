"""Depth perception core: plane + instances + poses per 640x480 frame (with stage breakdown), registration.

Besides wall-clock medians (``measure``), the segmentation rows report the median process CPU
time per call, which stays meaningful when other processes share the 2 cores.
"""

import time

import numpy as np

from benchmarks.harness import measure, row
from robot_vision.camera import deproject
from robot_vision.datasets import (load_organized_pcd, load_pcd_points, load_ycb_frame, load_ycb_model,
                                   shared_data_dir)
from robot_vision.perception3d import (RegistrationSettings, objects_from_detections, register_model,
                                       segment_scene, voxel_downsample)
from robot_vision.types import Detections

STAGES = ('prepare', 'plane', 'cluster', 'boxes')


def _frames():
    root = shared_data_dir()
    if root is None:
        return None
    milk = load_organized_pcd(root / 'pcl_kinect' / 'milk_cartoon_all_small_clorox.pcd')
    return {'milk (PCL Kinect)': milk, 'YCB frame 1': load_ycb_frame(1)}


def run(quick: bool):
    frames = _frames()
    if frames is None:
        return [row('perception3d skipped: ../shared/data not found', 0.0, '-')]
    repeat = 10 if quick else 60
    rows = []
    for name, frame in frames.items():
        stages = {k: [] for k in STAGES}
        cpu = []

        def segment(frame=frame, stages=stages, cpu=cpu):
            start = time.process_time()
            seg = segment_scene(frame)
            cpu.append((time.process_time() - start) * 1e3)
            for key in STAGES:
                stages[key].append(seg.timings_ms.get(key, 0.0))
            return seg

        seg = segment()
        result = measure(f'segment_scene {name}: plane+instances+poses', segment, repeat, target_ms=25.0,
                         instances=len(seg.objects))
        rows.append(result)
        rows.append(row(f'  process CPU time per frame ({name})', float(np.median(cpu[-repeat:])), 'ms'))
        for key in STAGES:
            rows.append(row(f'  stage {key} ({name})', float(np.median(stages[key][-repeat:])), 'ms'))
        # 2D->3D lifting of every instance's box (as if a detector had found them).
        boxes = []
        for mask in seg.objects.mask[:8]:
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min() - 10, ys.min() - 10, xs.max() + 11, ys.max() + 11])
        dets = Detections(xyxy=np.array(boxes, np.float32), confidence=np.ones(len(boxes), np.float32),
                          class_id=np.zeros(len(boxes), np.int32))
        rows.append(measure(f'objects_from_detections {name}: {len(boxes)} boxes, given plane',
                            lambda f=frame, d=dets, p=seg.plane: objects_from_detections(f, d, plane=p),
                            repeat))

    # The whole frame at 5 mm, as the pipeline builds its collision scene.
    milk_frame = frames['milk (PCL Kinect)']
    cloud = deproject(milk_frame.depth, milk_frame.intrinsics).reshape(-1, 3)
    finite = cloud[np.isfinite(cloud[:, 2])]
    rows.append(measure(f'voxel_downsample whole frame ({len(finite)} points, 5 mm)',
                        lambda: voxel_downsample(finite, 0.005), repeat, voxels=len(voxel_downsample(finite, 0.005))))

    root = shared_data_dir()
    model = load_pcd_points(root / 'pcl_kinect' / 'milk.pcd')
    seg = segment_scene(milk_frame)
    carton = seg.objects.points[int(np.argmax([len(p) for p in seg.objects.points]))]
    reg_repeat = 5 if quick else 30
    results = []
    reg_cpu = []

    def register(model=model, carton=carton):
        start = time.process_time()
        results.append(register_model(model, carton, RegistrationSettings(seed=0)))
        reg_cpu.append((time.process_time() - start) * 1e3)

    rows.append(measure('register_model milk.pcd -> carton instance (no init)', register, reg_repeat,
                        warmup=2, target_ms=50.0))
    reg_cpu_median = float(np.median(reg_cpu[-reg_repeat:]))
    rows.append(row('  process CPU time per registration (all threads)', reg_cpu_median, 'ms'))
    t_err = np.median([np.linalg.norm(r.pose[:3, 3]) for r in results]) * 1e3
    rows.append(row('  milk registration translation error (median)', t_err, 'mm', 'error <= 5 mm'))
    ycb = segment_scene(frames['YCB frame 1'])
    sizes = ycb.objects.size
    mustard = np.flatnonzero((sizes[:, 2] > 0.16) & (sizes[:, 2] < 0.21) & (sizes[:, 0] < 0.08))
    if mustard.size:
        instance = ycb.objects.points[int(mustard[0])]
        mustard_model = load_ycb_model('006_mustard_bottle')
        status = register_model(mustard_model, instance).status
        rows.append(measure(f'register_model 006_mustard_bottle.xyz -> YCB-1 instance (no init, {status})',
                            lambda m=mustard_model, s=instance: register_model(m, s),
                            reg_repeat, warmup=2, target_ms=50.0, status=status))
    return rows
