"""The faster result-message builders give the same messages as the per-object ones they replaced, field for field.

The builders before issue 18's speed-up (robot_vision/ros/outputs.py and conversions.py at
``BEFORE``) are read from the git history and run beside the current ones on real 640x480 and
1280x720 frames with objects, tracks and grasps. Messages are compared by ``repr``, which lists
every field, nested ones too (floats in their exact shortest form, image and cloud bytes in full);
serialised CDR bytes are not compared because their padding is not initialised.
"""

import dataclasses
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from robot_vision.datasets import load_pcl_sequence
from robot_vision.pipeline import Pipeline
from robot_vision.real_scenes import load_graspnet, load_ycb_video
from robot_vision.replay.runner import load_config
from robot_vision.ros.outputs import result_messages
from robot_vision.ros.topics import OUTPUT_TOPICS

ROOT = Path(__file__).resolve().parent.parent.parent
#: The last commit with the per-object builders.
BEFORE = '777bd21cac38b32795b831e11bccf9dd6055aae3'


def _source(path: str) -> str:
    try:
        return subprocess.run(['git', '-C', str(ROOT), 'show', f'{BEFORE}:{path}'], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f'the builders before the speed-up (git commit {BEFORE[:7]}) are not available: {exc}')


@pytest.fixture(scope='module')
def old_result_messages():
    """result_messages as it was at BEFORE, with the conversions of then."""
    modules = {}
    for name in ('conversions', 'outputs'):
        module = types.ModuleType(f'old_{name}')
        exec(compile(_source(f'robot_vision/ros/{name}.py'), f'{BEFORE[:7]}:{name}.py', 'exec'), module.__dict__)
        modules[name] = module
    modules['outputs'].conv = modules['conversions']
    return modules['outputs'].result_messages


def _results(frames, repeats):
    """FrameResults with tracks and grasps of ``frames`` played ``repeats`` times (the camera at the fixed frame)."""
    settings, _ = load_config(str(ROOT / 'config' / 'robot_vision.yaml'))
    pipeline = Pipeline(settings)
    results = []
    try:
        for i, frame in enumerate(frames * repeats):
            frame = dataclasses.replace(frame, stamp=100.0 + i / 15, camera_to_fixed=None)
            result = pipeline.perceive(frame)
            frame.camera_to_fixed = np.eye(4)
            pipeline.add_tracks(result, frame, track=True)
            pipeline.add_grasps(result, frame)
            results.append((result, frame))
    finally:
        pipeline.close()
    return results


def _compare(old_result_messages, results):
    compared = 0
    for result, frame in results:
        for color, camera_to_fixed in ((frame.color, frame.camera_to_fixed), (None, None)):
            new = result_messages(result, color, camera_to_fixed)
            old = old_result_messages(result, color, camera_to_fixed)
            assert [topic for topic, _ in new] == [topic for topic, _ in old]
            for (topic, msg), (_, before) in zip(new, old):
                assert type(msg) is type(before)
                assert repr(msg) == repr(before), f'{topic} differs'
                compared += 1
    return compared


def test_640x480_messages_are_unchanged(shared_data, old_result_messages):
    results = _results(load_pcl_sequence(shared_data / 'pcl_kinect' / 'sequence'), 2)
    last = results[-1][0]
    assert len(last.objects) >= 5 and len(last.tracks) >= 5 and last.detections.mask is not None
    # Grasps come from the YCB-Video frames (objects on a table within the gripper's reach): the PCL
    # sequence's floor scene gave one grasp in two of its six frames, which a 15-pixel change of one
    # mask could take away.
    ycb = _results([row.frame for row in load_ycb_video(shared_data / 'real_clutter' / 'ycb_video')], 1)
    assert sum(len(r.grasps) for r, _ in ycb) >= 3
    results += ycb
    assert _compare(old_result_messages, results) >= len(results) * (2 * len(OUTPUT_TOPICS) - 3)


def test_1280x720_messages_are_unchanged(shared_data, old_result_messages):
    views = [row.frame for row in load_graspnet(shared_data / 'real_clutter' / 'graspnet_scene0000')
             if '/realsense/' in row.name]
    results = _results(views, 2)
    assert max(len(r.grasps) for r, _ in results) >= 5
    assert max(len(r.objects) for r, _ in results) >= 15 and len(results[-1][0].tracks) >= 5
    assert _compare(old_result_messages, results) > 0
