"""With tracking on, every object is published under its track id: the same object keeps one id and colour."""

from pathlib import Path

import numpy as np
import pytest

from robot_vision.pipeline import PipelineSettings
from robot_vision.replay import ReplaySettings, replay
from robot_vision.replay.bag import BagSource
from robot_vision.ros import conversions as cv
from robot_vision.ros.bag_codec import MessageCodec
from robot_vision.ros.outputs import label_values
from robot_vision.ros.topics import resolve

DEMO_BAG = Path(__file__).resolve().parents[2] / 'robot_vision' / 'data' / 'demo_rgbd.mcap'
TOPICS = ('detections', 'instance_labels', 'objects', 'object_points', 'object_markers', 'tracked_objects',
          'scored_grasps')


def _replay_topics(tmp_path, tracking=True):
    """Replay the bundled bag (3 real frames); returns {topic: [message per frame]} of its output bag."""
    settings = PipelineSettings(enable_tracking=tracking)
    run = replay(DEMO_BAG, tmp_path / 'out', settings, ReplaySettings(gallery_size=0, clouds=True), progress=None)
    assert run.processed == 3, run.diagnostics
    codec = MessageCodec()
    with BagSource(run.bag_path) as source:
        return {name: [codec.decode(r.msgtype, r.data) for r in source.messages([resolve('/robot_vision', name)])]
                for name in TOPICS}


@pytest.fixture(scope='module')
def tracked(tmp_path_factory):
    return _replay_topics(tmp_path_factory.mktemp('tracked'))


def _cubes(markers):
    return [m for m in markers.markers if m.type == m.CUBE]


def _named(detection):
    """'laptop' or 'box' by their measured sizes (as test/tracking/test_tracking_real.py names them), else None."""
    length, width, height = detection.bbox.size.x, detection.bbox.size.y, detection.bbox.size.z
    if 0.33 < length < 0.43 and 0.2 < height < 0.27:
        return 'laptop'
    if 0.22 < length < 0.29 and width > 0.13 and 0.07 < height < 0.11:
        return 'box'
    return None


def _camera_to_odom(frame_id):
    """The odom <- camera transform of the bundled bag's /tf_static."""
    from robot_vision.ros.compat import TransformBuffer
    codec, buffer = MessageCodec(), TransformBuffer()
    with BagSource(DEMO_BAG) as source:
        for raw in source.messages(['/tf_static']):
            for t in codec.decode(raw.msgtype, raw.data).transforms:
                v, q = t.transform.translation, t.transform.rotation
                buffer.set_transform(t.header.frame_id, t.child_frame_id, 0.0, [v.x, v.y, v.z], [q.x, q.y, q.z, q.w],
                                     static=True)
    return buffer.lookup('odom', frame_id, 0.0)


def test_published_ids_are_the_track_ids(tracked):
    """Each confirmed track of the third frame is nearest to the object published under its id (in odom)."""
    objects, tracks = tracked['objects'][2], tracked['tracked_objects'][2]
    camera_to_odom = _camera_to_odom(objects.header.frame_id)
    ids = [d.id for d in objects.detections]
    centres = np.array([(camera_to_odom @ cv.pose_to_matrix(d.bbox.center))[:3, 3] for d in objects.detections])
    assert len(tracks.detections) >= 5
    for track in tracks.detections:
        p = track.bbox.center.position
        distance = np.linalg.norm(centres - [p.x, p.y, p.z], axis=1)
        assert ids[int(np.argmin(distance))] == track.id, (track.id, ids, distance.round(3))
        assert distance.min() < 0.1


def test_the_laptop_and_the_box_keep_their_id_and_colour_in_every_frame(tracked):
    seen = {}
    for objects, markers in zip(tracked['objects'], tracked['object_markers']):
        for detection, cube in zip(objects.detections, _cubes(markers)):
            name = _named(detection)
            if name:
                seen.setdefault(name, set()).add((detection.id, cube.ns, cube.id, cube.color.r, cube.color.g))
    assert set(seen) == {'laptop', 'box'}
    for name, keys in seen.items():
        assert len(keys) == 1, (name, keys)
        object_id, ns, marker_id, r, g = keys.pop()
        assert ns == 'objects' and marker_id == int(object_id) and (r, g) == pytest.approx(cv.palette(marker_id)[:2])
        assert object_id in {d.id for d in tracked['tracked_objects'][2].detections}


def test_2d_3d_markers_labels_and_grasps_share_the_track_ids(tracked):
    for k in range(3):
        ids_2d = [d.id for d in tracked['detections'][k].detections]
        ids_3d = [d.id for d in tracked['objects'][k].detections]
        assert ids_3d == ids_2d and all(i.isdigit() for i in ids_3d)  # the depth backend: row for row
        assert len(set(ids_3d)) == len(ids_3d)
        assert [m.id for m in _cubes(tracked['object_markers'][k])] == [int(i) for i in ids_3d]
        labels = cv.image_to_numpy(tracked['instance_labels'][k])
        assert set(np.unique(labels)) - {0} <= set(label_values([int(i) for i in ids_2d]).tolist())
        assert {d.id for d in tracked['scored_grasps'][k].detections} <= set(ids_3d)
        points, colours = cv.cloud_to_points(tracked['object_points'][k], with_colors=True)
        expected = {tuple(int(c * 255) for c in cv.palette(int(i))) for i in ids_3d}
        assert {tuple(int(c) for c in rgb) for rgb in np.unique(colours, axis=0)} == expected


def test_without_tracking_ids_are_rows_of_the_frame(tmp_path):
    untracked = _replay_topics(tmp_path, tracking=False)
    for k in range(3):
        n = len(untracked['objects'][k].detections)
        assert [d.id for d in untracked['objects'][k].detections] == [str(i + 1) for i in range(n)]
        assert [d.id for d in untracked['detections'][k].detections] == [str(i + 1) for i in range(n)]
        assert not untracked['tracked_objects'][k].detections
