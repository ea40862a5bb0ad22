"""Grasp planning: 500 candidates for one object against a 640x480 organized scene cloud."""

import sys

import numpy as np

from benchmarks.harness import measure, row
from robot_vision import datasets
from robot_vision.camera import deproject
from robot_vision.grasping import GraspSettings, GripperModel, plan_grasps


def run(quick: bool):
    root = datasets.shared_data_dir()
    if root is None:
        print('bench_grasping: shared RGB-D data not found, skipping', file=sys.stderr)
        return []
    frame = datasets.load_organized_pcd(root / 'pcl_kinect' / 'milk_cartoon_all_small_clorox.pcd')
    scene = deproject(frame.depth, frame.intrinsics)  # (480, 640, 3), NaN where invalid
    milk = datasets.load_pcd_points(root / 'pcl_kinect' / 'milk.pcd')
    gripper = GripperModel()
    settings = GraspSettings(num_candidates=500, top_k=10)
    repeat = 15 if quick else 100
    result = plan_grasps(milk, scene, gripper, settings)
    rows = [measure('plan_grasps 500 candidates, milk carton vs 640x480 scene cloud',
                    lambda: plan_grasps(milk, scene, gripper, settings), repeat, target_ms=20.0,
                    candidates=result.candidates_evaluated, grasps=len(result.grasps))]
    stages = {}
    for _ in range(repeat):
        for key, value in plan_grasps(milk, scene, gripper, settings).timings_ms.items():
            stages.setdefault(key, []).append(value)
    for key, values in stages.items():
        if key != 'total':
            rows.append(row(f'  stage {key} (median)', float(np.median(values)), 'ms'))
    big = GraspSettings(num_candidates=2000, top_k=10)
    rows.append(measure('plan_grasps 2000 candidates, milk carton vs 640x480 scene cloud',
                        lambda: plan_grasps(milk, scene, gripper, big), max(5, repeat // 5)))
    return rows
