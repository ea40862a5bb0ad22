"""Grasp planning: 500 candidates for one object against a 640x480 organized scene cloud."""

import sys
import time

import numpy as np

from benchmarks.harness import measure, row
from robot_vision import datasets
from robot_vision.camera import deproject
from robot_vision.grasping import GraspSettings, GripperModel, plan_grasps, plan_scene_grasps


def run(quick: bool):
    root = datasets.shared_data_dir()
    if root is None:
        print('bench_grasping: shared RGB-D data not found, skipping', file=sys.stderr)
        return []
    from robot_vision.perception3d.segmentation import segment_scene
    frame = datasets.load_organized_pcd(root / 'pcl_kinect' / 'milk_cartoon_all_small_clorox.pcd')
    scene = deproject(frame.depth, frame.intrinsics)  # (480, 640, 3), NaN where invalid
    milk = datasets.load_pcd_points(root / 'pcl_kinect' / 'milk.pcd')
    seg = segment_scene(frame)
    gripper = GripperModel()
    settings = GraspSettings(num_candidates=500, top_k=5)
    repeat = 15 if quick else 100
    rows = []
    # An object whose candidates go through every stage (grid, scoring, exact verification):
    # the first segmented object that gets a grasp.
    target = next((i for i in range(len(seg.objects))
                   if plan_grasps(seg.objects.points[i], scene, gripper, settings, seg.plane).ok), 0)
    cases = [(f'segmented object {target} ({len(seg.objects.points[target])} points)', seg.objects.points[target],
              seg.plane),
             ('milk carton ground truth (13704 points)', milk, None)]
    for label, points, plane in cases:
        result = plan_grasps(points, scene, gripper, settings, plane)
        rows.append(measure(f'plan_grasps 500 candidates, {label} vs 640x480 scene',
                            lambda points=points, plane=plane: plan_grasps(points, scene, gripper, settings, plane),
                            repeat, target_ms=20.0, candidates=result.candidates_evaluated,
                            grasps=len(result.grasps)))
        cpu = []
        for _ in range(max(5, repeat // 3)):
            start = time.process_time()
            plan_grasps(points, scene, gripper, settings, plane)
            cpu.append((time.process_time() - start) * 1e3)
        rows.append(row('  CPU time per call (process_time; the machine is shared)', float(np.median(cpu)), 'ms'))
        stages = {}
        for _ in range(max(5, repeat // 3)):
            for key, value in plan_grasps(points, scene, gripper, settings, plane).timings_ms.items():
                stages.setdefault(key, []).append(value)
        for key, values in stages.items():
            if key != 'total':
                rows.append(row(f'  stage {key} (median)', float(np.median(values)), 'ms'))
    scene_result = plan_scene_grasps(seg.objects, scene, gripper, settings, support_normal=seg.plane)
    scene_cpu = []

    def plan_scene():
        start = time.process_time()
        plan_scene_grasps(seg.objects, scene, gripper, settings, support_normal=seg.plane)
        scene_cpu.append((time.process_time() - start) * 1e3)

    scene_repeat = max(5, repeat // 5)
    rows.append(measure(f'plan_scene_grasps, all {len(seg.objects)} segmented objects of the milk scene', plan_scene,
                        scene_repeat, target_ms=40.0, grasps=len(scene_result.grasps)))
    rows.append(row('  CPU time per call (process_time)', float(np.median(scene_cpu[-scene_repeat:])), 'ms'))
    return rows
