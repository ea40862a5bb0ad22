"""The pipeline's stages on a real Kinect frame: process() is perceive + add_tracks + add_grasps."""

import numpy as np
import pytest

from robot_vision.datasets import load_organized_pcd
from robot_vision.errors import ConfigError
from robot_vision.pipeline import FrameResult, Pipeline, PipelineSettings, scene_points
from robot_vision.types import Grasps

SETTINGS = PipelineSettings.from_dict({'segmentation': {'max_depth': 2.0}})


@pytest.fixture(scope='module')
def frame(request):
    shared = request.getfixturevalue('shared_data')
    return load_organized_pcd(shared / 'pcl_kinect/milk_cartoon_all_small_clorox.pcd')


def test_process_equals_its_stages(frame):
    whole = Pipeline(SETTINGS).process(frame)
    staged_pipeline = Pipeline(SETTINGS)
    staged = staged_pipeline.perceive(frame)
    assert staged.grasp_reason == 'pending' and not len(staged.grasps) and not len(staged.tracks)
    assert set(staged.timings_ms) == {'segment', 'total'}
    staged_pipeline.add_tracks(staged, frame)
    staged_pipeline.add_grasps(staged, frame)
    assert len(whole.objects) == len(staged.objects) >= 3
    assert np.allclose(whole.objects.position, staged.objects.position)
    assert len(whole.grasps) == len(staged.grasps) > 0 and np.allclose(whole.grasps.pose, staged.grasps.pose)
    assert whole.grasp_reason == staged.grasp_reason == 'ok'
    assert np.array_equal(whole.tracks.track_id, staged.tracks.track_id)
    assert {'segment', 'track', 'grasps', 'total'} <= set(whole.timings_ms)
    assert whole.timings_ms['total'] == pytest.approx(sum(v for k, v in whole.timings_ms.items() if k != 'total'))
    # The best grasp comes first over all objects, not grouped by object.
    assert np.all(np.diff(whole.grasps.score) <= 0)


def test_plan_grasps_on_explicit_scene_points(frame):
    pipeline = Pipeline(SETTINGS)
    result = pipeline.perceive(frame)
    grasps, reason = pipeline.plan_grasps(result.objects, scene_points(frame, 0.005), frame.stamp, result.plane)
    assert reason == 'ok' and len(grasps) and set(grasps.object_index) <= set(range(len(result.objects)))
    assert pipeline.plan_grasps(result.objects[:0], scene_points(frame, 0.005), frame.stamp)[1] == 'no objects'


def test_disabled_stages_and_missing_depth(frame):
    pipeline = Pipeline(PipelineSettings.from_dict({'enable_grasps': False, 'enable_tracking': False}))
    result = pipeline.process(frame)
    assert result.grasp_reason == 'disabled' and not len(result.tracks) and 'grasps' not in result.timings_ms
    colour_only = type(frame)(frame.intrinsics, color=frame.color, depth=None, stamp=0.0, frame_id='cam')
    with pytest.raises(ConfigError, match='depth detector backend needs depth'):
        pipeline.process(colour_only)


def test_best_first_and_empty_result():
    grasps = Grasps(pose=np.tile(np.eye(4), (3, 1, 1)), width=[0.01, 0.02, 0.03], score=[0.2, 0.9, 0.2],
                    object_index=[0, 1, 2])
    ranked = grasps.best_first()
    assert ranked.score.tolist() == pytest.approx([0.9, 0.2, 0.2]) and ranked.object_index.tolist() == [1, 0, 2]
    empty = FrameResult.empty(1.5, 'cam', 'odom')
    assert empty.stamp == 1.5 and not len(empty.objects) and empty.intrinsics is None
