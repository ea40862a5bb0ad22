"""Output messages name an object by one id everywhere (2D, 3D, markers, scored grasps) and colour it by that id."""

import numpy as np

from robot_vision.pipeline import FrameResult
from robot_vision.ros import conversions as cv
from robot_vision.ros.outputs import object_ids, result_messages
from robot_vision.types import CameraIntrinsics, Detections, Grasps, Objects3D


def _result():
    """Two tracked detections (2D track ids 7 and 3) and their objects in the other order, three grasps."""
    intrinsics = CameraIntrinsics(64, 48, 50.0, 50.0, 32.0, 24.0)
    result = FrameResult.empty(2.0, 'cam', 'odom', intrinsics, {0: 'cup'})
    result.detections = Detections(xyxy=np.array([[1, 1, 10, 10], [20, 20, 30, 30]], np.float32),
                                   confidence=np.array([0.9, 0.8], np.float32), class_id=np.array([0, -1]),
                                   tracker_id=np.array([7, 3]))
    poses = np.tile(np.eye(4), (2, 1, 1))
    poses[:, 2, 3] = [1.0, 1.2]
    result.objects = Objects3D(pose=poses, size=np.full((2, 3), 0.1), centroid=poses[:, :3, 3],
                               confidence=np.array([0.8, 0.9], np.float32), class_id=np.array([-1, 0]),
                               detection_index=np.array([1, 0]))
    grasp_poses = np.tile(np.eye(4), (3, 1, 1))
    grasp_poses[:, 0, 3] = [0.1, 0.2, 0.3]
    result.grasps = Grasps(pose=grasp_poses, width=np.array([0.04, 0.05, 0.06]), score=np.array([0.9, 0.7, 0.2]),
                           object_index=np.array([1, 0, 1]))
    return result


def test_one_id_per_object_across_topics():
    result = _result()
    assert object_ids(result) == [3, 7]
    msgs = dict(result_messages(result, None, topics=['detections', 'objects', 'object_markers', 'scored_grasps',
                                                      'grasps']))
    assert [d.id for d in msgs['detections'].detections] == ['7', '3']
    assert [d.id for d in msgs['objects'].detections] == ['3', '7']
    cubes = [m for m in msgs['object_markers'].markers if m.type == m.CUBE]
    assert np.allclose([(m.color.r, m.color.g, m.color.b) for m in cubes], [cv.palette(i) for i in (3, 7)])
    texts = [m.text for m in msgs['object_markers'].markers if m.type == m.TEXT_VIEW_FACING]
    assert texts == ['3 obj', '7 cup']
    scored = msgs['scored_grasps'].detections
    assert [d.id for d in scored] == ['7', '3', '7']
    assert [d.results[0].hypothesis.class_id for d in scored] == ['0', '-1', '0']
    assert np.allclose([d.results[0].hypothesis.score for d in scored], [0.9, 0.7, 0.2])
    assert np.allclose([d.bbox.size.x for d in scored], [0.04, 0.05, 0.06])
    assert [d.results[0].pose.pose for d in scored] == list(msgs['grasps'].poses)
