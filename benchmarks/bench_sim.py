"""MuJoCo simulation: frames/s rendered at 640x480 (colour + depth + segmentation + noise) and s per executed grasp."""

import time

import numpy as np

from benchmarks.harness import measure, row
from robot_vision.sim import DepthNoise, SceneSettings, SimScene, generate_scene
from robot_vision.sim.grasp_execution import execute_grasp


def _top_down(scene):
    body = scene.object_pose_world(0)
    extent = scene.spec.objects[0].extent
    z = np.array([0.0, 0.0, -1.0])
    x = body[:3, 1] - z * (body[:3, 1] @ z)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x / np.linalg.norm(x), np.cross(z, x / np.linalg.norm(x)), z], axis=1)
    pose[:3, 3] = body[:3, 3] + [0.0, 0.0, extent[2] / 2 - 0.02]
    return pose, extent[1]


def run(quick: bool):
    repeat = 5 if quick else 30
    rows = []
    spec = generate_scene(0, SceneSettings(clutter='clutter'))
    start = time.perf_counter()
    scene = SimScene(spec, DepthNoise('none'))
    rows.append(row('scene build + 0.6 s settle (clutter, 640x480 renderer)', time.perf_counter() - start, 's',
                    objects=len(spec.objects)))
    try:
        for model in ('none', 'kinect', 'realsense_d435'):
            scene.noise = DepthNoise(model)
            result = measure(f'render 640x480 rgb+depth+seg+GT, noise={model}', scene.render, repeat, warmup=2)
            rows.append(result)
            rows.append(row(f'frames/s rendered 640x480, noise={model}', 1000.0 / result['value'], 'fps'))
        rows.append(measure('step(1/30 s) physics, clutter', lambda: scene.step(1 / 30), repeat, warmup=1))
    finally:
        scene.close()
    box = generate_scene(1, SceneSettings(clutter='isolated', kinds=('box',), randomize_appearance=False))
    with SimScene(box, render=False) as grasp_scene:
        pose, width = _top_down(grasp_scene)
        start = time.perf_counter()
        first = execute_grasp(grasp_scene, pose, width)
        rows.append(row('first executed grasp (incl. compiling scene + hand)', time.perf_counter() - start, 's',
                        success=first.success))
        result = measure('execute_grasp 3.3 s simulated (approach, close, lift, shake)',
                         lambda: execute_grasp(grasp_scene, pose, width), max(3, repeat // 2), warmup=1)
        rows.append(result)
        rows.append(row('seconds per executed grasp', result['value'] / 1000.0, 's', target='<= 1 s',
                        ok=result['value'] <= 1000.0))
    return rows
