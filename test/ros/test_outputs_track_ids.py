"""Track ids become the published ids: add_tracks sets them, the outputs carry them, untracked objects have none."""

import numpy as np
import pytest

from robot_vision.errors import InputError
from robot_vision.pipeline import FrameResult, Pipeline, PipelineSettings
from robot_vision.ros import conversions as cv
from robot_vision.ros.outputs import LABEL_IDS, instance_label_image, label_values, object_ids, overlay_image, \
    result_messages
from robot_vision.tracking.ids import NO_ID, detection_rows, with_track_ids
from robot_vision.types import CameraIntrinsics, Detections, Objects3D, RGBDFrame

INTRINSICS = CameraIntrinsics(64, 48, 50.0, 50.0, 32.0, 24.0)


def _objects(xs):
    """Class-agnostic objects of the depth backend (detection_index -1) at x = ``xs``, 1 m ahead."""
    poses = np.tile(np.eye(4), (len(xs), 1, 1))
    poses[:, 0, 3], poses[:, 2, 3] = xs, 1.0
    return Objects3D(pose=poses, size=np.full((len(xs), 3), 0.1), centroid=poses[:, :3, 3],
                     confidence=np.ones(len(xs), np.float32), class_id=np.full(len(xs), -1),
                     detection_index=np.full(len(xs), -1))


def _detections(n, tracker_id=None):
    xyxy = np.array([[2 + 12 * i, 2, 10 + 12 * i, 10] for i in range(n)], np.float32)
    return Detections(xyxy=xyxy, confidence=np.ones(n, np.float32), class_id=np.full(n, -1), tracker_id=tracker_id)


def _result(stamp, xs, tracker_id=None):
    result = FrameResult.empty(stamp, 'cam', 'odom', INTRINSICS)
    result.objects, result.detections = _objects(xs), _detections(len(xs), tracker_id)
    return result


def _depth_frame(stamp, camera_to_fixed=np.eye(4)):
    return RGBDFrame(INTRINSICS, depth=np.ones((48, 64), np.float32), stamp=stamp, camera_to_fixed=camera_to_fixed)


def test_add_tracks_gives_each_detection_its_objects_track_id():
    """Objects listed in another order in the next frame keep their ids; the 2D and 3D ids are one."""
    pipeline = Pipeline(PipelineSettings())
    first = _result(1.0, [0.0, 1.0, 2.0])
    pipeline.add_tracks(first, _depth_frame(1.0))
    ids = first.detections.tracker_id.tolist()
    assert len(set(ids)) == 3 and min(ids) >= 1 and object_ids(first) == ids
    second = _result(1.1, [2.0, 0.0, 1.0])  # the same objects, listed in another order
    pipeline.add_tracks(second, _depth_frame(1.1))
    assert second.detections.tracker_id.tolist() == [ids[2], ids[0], ids[1]] == object_ids(second)
    # a frame that is not tracked (no camera pose) publishes no ids rather than numbers another object may own
    skipped = _result(1.2, [0.0, 1.0])
    pipeline.add_tracks(skipped, _depth_frame(1.2), track=False)
    assert skipped.detections.tracker_id.tolist() == [NO_ID, NO_ID] and object_ids(skipped) == [NO_ID, NO_ID]
    # tracking off: the ids are the rows of the frame
    off = _result(1.3, [0.0, 1.0])
    Pipeline(PipelineSettings(enable_tracking=False)).add_tracks(off, _depth_frame(1.3))
    assert off.detections.tracker_id is None and object_ids(off) == [1, 2]


def test_add_tracks_without_depth_takes_the_2d_track_ids():
    pipeline = Pipeline(PipelineSettings())
    ids = []
    for stamp, order in ((1.0, [0, 1]), (1.1, [1, 0])):
        result = FrameResult.empty(stamp, 'cam', 'odom', INTRINSICS)
        result.detections = _detections(2)[np.array(order)]
        pipeline.add_tracks(result, RGBDFrame(INTRINSICS, color=np.zeros((48, 64, 3), np.uint8), stamp=stamp))
        ids.append(dict(zip(order, result.detections.tracker_id.tolist())))
    assert ids[0] == ids[1] and len(set(ids[0].values())) == 2


def test_with_track_ids_and_detection_rows():
    objects = _objects([0.0, 1.0, 2.0])
    assert detection_rows(objects, 3).tolist() == [0, 1, 2]  # the depth backend: row for row
    linked = Objects3D(**{**objects.__dict__, 'detection_index': np.array([3, -1, 0])})
    assert detection_rows(linked, 4).tolist() == [3, -1, 0] and detection_rows(linked, 2).tolist() == [-1, -1, 0]
    detections = with_track_ids(_detections(4), np.array([12, 40, -1]), detection_rows(linked, 4))
    assert detections.tracker_id.tolist() == [NO_ID, NO_ID, NO_ID, 12]  # detection 0's observation started none
    with pytest.raises(InputError, match='one detection row per observation'):
        with_track_ids(_detections(2), np.array([1, 2, 3]))


def test_objects_without_an_id_are_published_empty_grey_and_apart():
    result = _result(2.0, [0.0, 1.0, 2.0], tracker_id=np.array([5, NO_ID, 70001]))
    msgs = dict(result_messages(result, None, topics=['detections', 'objects', 'object_markers']))
    assert [d.id for d in msgs['detections'].detections] == ['5', '', '70001']
    assert [d.id for d in msgs['objects'].detections] == ['5', '', '70001']
    cubes = [m for m in msgs['object_markers'].markers if m.type == m.CUBE]
    assert [(m.ns, m.id) for m in cubes] == [('objects', 5), ('objects_untracked', 1), ('objects', 70001)]
    assert (cubes[1].color.r, cubes[1].color.g, cubes[1].color.b) == pytest.approx(cv.NO_ID_GREY)
    assert [m.text for m in msgs['object_markers'].markers if m.type == m.TEXT_VIEW_FACING] == \
        ['5 obj', '- obj', '70001 obj']
    labels = instance_label_image(result.detections, INTRINSICS.shape)
    assert labels[5, 5] == 5 and labels[5, 17] == LABEL_IDS + 1 and labels[5, 29] == 70001 - LABEL_IDS
    assert overlay_image(np.zeros((48, 64, 3), np.uint8), result).shape == (48, 64, 3)


def test_label_values_wrap_large_ids_and_keep_ids_apart_from_rows_without_one():
    assert label_values([1, 60000, 60001, 125000, -1, -1]).tolist() == [1, 60000, 1, 5000, 60001, 60002]
    with pytest.raises(InputError, match='without an id'):
        label_values([-1] * (65536 - LABEL_IDS))
