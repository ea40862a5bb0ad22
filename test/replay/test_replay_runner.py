"""Bag replay on real Kinect frames: same results as the core, deterministic, readable output bag."""

import json

import numpy as np
import pytest
from bagtools import COLOR, DEPTH, INFO, ODOM_FROM_OPTICAL, stamped_frames, write_bag

from robot_vision.cli import main as cli_main
from robot_vision.datasets import load_pcl_sequence
from robot_vision.pipeline import Pipeline, PipelineSettings
from robot_vision.replay import ReplaySettings, compare_runs, replay
from robot_vision.replay.bag import BagSource
from robot_vision.ros.bag_codec import MessageCodec
from robot_vision.replay.runner import frame_record
from robot_vision.ros.topics import OUTPUT_TOPICS, resolve


@pytest.fixture(scope='module')
def frames(shared_data):
    return stamped_frames(load_pcl_sequence(shared_data / 'pcl_kinect' / 'sequence'))


@pytest.fixture(scope='module')
def direct_records(frames):
    """The core pipeline run directly on the frames, recorded the way replay records them."""
    pipeline = Pipeline(PipelineSettings())
    records = [frame_record(i, pipeline.process(f)) for i, f in enumerate(frames)]
    return json.loads(json.dumps(records, sort_keys=True))


@pytest.fixture(scope='module')
def mcap_run(frames, tmp_path_factory):
    root = tmp_path_factory.mktemp('mcap_run')
    bag = write_bag(root / 'input', frames, 'mcap')
    return bag, replay(bag, root / 'out', settings=ReplaySettings(gallery_size=2, overlays=True, clouds=True),
                       progress=None)


def test_replay_mcap_gives_the_core_results(mcap_run, direct_records):
    _, run = mcap_run
    results = json.loads((run.out_dir / 'results.json').read_text())
    assert run.exit_code == 0 and len(results['frames']) == 3
    assert results['topics'] == {'color': COLOR, 'depth': DEPTH, 'camera_info': INFO, 'tf_static': '/tf_static'}
    assert sum(len(f['objects']) for f in results['frames']) > 0
    assert results['frames'] == direct_records
    assert not [d for d in run.diagnostics if d['kind'] in ('input', 'tf', 'dropped', 'stamps', 'bag')]


def test_replay_sqlite3_gives_the_core_results(frames, direct_records, tmp_path):
    bag = write_bag(tmp_path / 'input', frames, 'sqlite3')
    assert list(bag.glob('*.db3'))
    run = replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0, write_bag=False), progress=None)
    assert json.loads((run.out_dir / 'results.json').read_text())['frames'] == direct_records


def test_compressed_colour_topic(frames, direct_records, tmp_path):
    import cv2
    from sensor_msgs.msg import CompressedImage

    from robot_vision.ros.conversions import make_header

    def png(frame, stamp):
        ok, data = cv2.imencode('.png', frame.color[:, :, ::-1])
        return CompressedImage(header=make_header(frame.frame_id, stamp), format='png', data=data.tobytes())

    bag = write_bag(tmp_path / 'input', frames, color_msg=png, color_type='sensor_msgs/msg/CompressedImage')
    run = replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0, write_bag=False), progress=None)
    assert run.summary['run']['topics']['color'] == COLOR
    assert json.loads((run.out_dir / 'results.json').read_text())['frames'] == direct_records


def test_two_replays_write_byte_identical_results(mcap_run, tmp_path):
    bag, first = mcap_run
    second = replay(bag, tmp_path / 'again', settings=ReplaySettings(gallery_size=0, write_bag=False),
                    progress=None)
    assert (first.out_dir / 'results.json').read_bytes() == (second.out_dir / 'results.json').read_bytes()
    comparison = compare_runs(first.out_dir, second.out_dir, tmp_path / 'cmp')
    assert comparison['detections']['only_a'] == comparison['detections']['only_b'] == 0
    assert comparison['objects']['position_delta_max_m'] == 0.0
    assert (tmp_path / 'cmp' / 'compare.html').read_text().startswith('<!DOCTYPE html>')


def test_output_bag_holds_inputs_and_every_result_topic_with_types_and_stamps(mcap_run, frames):
    _, run = mcap_run
    source = BagSource(run.bag_path)
    codec = MessageCodec()
    for topic in (COLOR, DEPTH, INFO, '/tf_static'):
        assert source.topics[topic].count == (1 if topic == '/tf_static' else 3)
    stamps = {f.stamp for f in frames}
    n_best = sum(1 for f in json.loads((run.out_dir / 'results.json').read_text())['frames']
                 if f['grasps']['count'])
    for spec in OUTPUT_TOPICS:
        name = resolve('/robot_vision', spec.name)
        info = source.topics[name]
        assert info.msgtype == spec.msg_type
        expected = {'label_info': 1, 'best_grasp': n_best}.get(spec.name, 3)
        assert info.count == expected, name
        for raw in source.messages([name]):
            msg = codec.decode(raw.msgtype, raw.data)
            assert codec.type_name(msg) == spec.msg_type
            if spec.name == 'label_info':
                continue
            header = msg.markers[0].header if spec.name.endswith('markers') else msg.header
            assert header.stamp.sec + header.stamp.nanosec * 1e-9 in stamps
            assert header.frame_id == ('odom' if spec.frame == 'fixed' else frames[0].frame_id)
    source.close()


def test_output_bag_reads_with_an_independent_mcap_decoder(mcap_run):
    """The mcap + mcap-ros2-support decoders (as in Foxglove) read every message from the embedded definitions."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    _, run = mcap_run
    source = BagSource(run.bag_path)
    counts = {name: info.count for name, info in source.topics.items() if info.count}
    source.close()
    seen = {}
    with open(next(run.bag_path.glob('*.mcap')), 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for schema, channel, _, decoded in reader.iter_decoded_messages():
            assert decoded is not None
            seen[channel.topic] = seen.get(channel.topic, 0) + 1
            assert schema.name == source.topics[channel.topic].msgtype
    assert seen == counts


def _chunk_compression(bag_path):
    from mcap.reader import make_reader
    with open(next(bag_path.glob('*.mcap')), 'rb') as stream:
        return {index.compression for index in make_reader(stream).get_summary().chunk_indexes}


def test_output_bag_is_compressed_only_when_asked(mcap_run, frames, tmp_path):
    """--compress: zstd chunks holding the very same messages; by default none (as ros2 bag record)."""
    bag, run = mcap_run
    packed = replay(bag, tmp_path / 'out', settings=ReplaySettings(gallery_size=0, overlays=True, clouds=True,
                                                                   compress=True), progress=None)
    assert _chunk_compression(run.bag_path) == {''} and _chunk_compression(packed.bag_path) == {'zstd'}

    def messages(path):  # decoded: CDR's padding bytes are not initialised by the serializer
        codec = MessageCodec()
        with BagSource(path) as source:
            return [(m.topic, m.log_ns, codec.decode(m.msgtype, m.data)) for m in source.messages()]
    assert messages(packed.bag_path) == messages(run.bag_path)
    size = {name: sum(f.stat().st_size for f in r.bag_path.iterdir()) for name, r in (('raw', run), ('zstd', packed))}
    assert size['zstd'] < 0.8 * size['raw'], size


def test_replaying_an_output_bag_gives_the_same_results(mcap_run, direct_records, tmp_path):
    _, run = mcap_run
    again = replay(run.bag_path, tmp_path / 'again', settings=ReplaySettings(gallery_size=0), progress=None)
    assert again.frames == direct_records
    assert any('already holds this result topic' in d['message'] for d in again.diagnostics)
    source = BagSource(again.bag_path)
    assert source.topics[resolve('/robot_vision', 'objects')].count == 3  # old results not duplicated
    source.close()


def test_tracks_use_the_camera_pose_from_tf(mcap_run, frames):
    _, run = mcap_run
    last = run.frames[-1]
    assert last['tracks'] and last['objects'], 'three frames of a static scene confirm tracks by the last one'
    centres = np.array([o['position'] for o in last['objects']])
    in_odom = centres @ ODOM_FROM_OPTICAL[:3, :3].T + ODOM_FROM_OPTICAL[:3, 3]
    for track in last['tracks']:
        assert np.min(np.linalg.norm(in_odom - track['position'], axis=1)) < 0.2


def test_report_sections(mcap_run):
    _, run = mcap_run
    summary = json.loads((run.out_dir / 'summary.json').read_text())
    for key in ('run', 'per_frame', 'classes', 'tracks', 'grasps', 'latency_ms', 'gallery', 'diagnostics'):
        assert key in summary
    assert summary['run']['frames_processed'] == 3 and summary['run']['throughput_fps'] > 0
    assert {'total', 'decode', 'record'} <= set(summary['latency_ms'])
    page = (run.out_dir / 'report.html').read_text()
    assert page.count('data:image/png;base64,') >= 3 and page.count('data:image/jpeg;base64,') == 2
    assert 'src="http' not in page and 'href="http' not in page  # self-contained
    assert len(summary['gallery']) == 2 and all((run.out_dir / g).is_file() for g in summary['gallery'])


def test_demo_command_replays_the_bundled_bag(tmp_path, capsys):
    code = cli_main(['demo', '--out', str(tmp_path / 'demo'), '--quiet'])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f'report: {(tmp_path / "demo" / "report.html").resolve()}' in out
    summary = json.loads((tmp_path / 'demo' / 'summary.json').read_text())
    assert summary['run']['frames_processed'] == 3
    assert sum(summary['per_frame']['instances']) > 0
    assert not [d for d in summary['diagnostics'] if d['kind'] in ('tf', 'input', 'dropped', 'units')]
    # a second demo replaces the first one's files
    assert cli_main(['demo', '--out', str(tmp_path / 'demo'), '--quiet']) == 0


def test_compare_two_configs_on_the_same_bag(mcap_run, tmp_path, capsys):
    """A shorter depth range drops the far objects: compare reports them as only in A."""
    bag, first = mcap_run
    config = tmp_path / 'near.yaml'
    config.write_text('robot_vision:\n  ros__parameters:\n    segmentation:\n      max_depth: 1.1\n')
    assert cli_main(['replay', str(bag), '--config', str(config), '--out', str(tmp_path / 'near'),
                     '--no-bag', '--gallery', '0', '--quiet']) == 0
    assert cli_main(['compare', str(first.out_dir), str(tmp_path / 'near'), '--out', str(tmp_path / 'cmp')]) == 0
    out = capsys.readouterr().out
    assert 'report:' in out and (tmp_path / 'cmp' / 'compare.html').is_file()
    result = json.loads((tmp_path / 'cmp' / 'compare.json').read_text())
    assert result['frames']['common'] == 3
    assert result['detections']['only_a'] > 0 and result['detections']['matched'] > 0
    assert result['objects']['position_delta_mean_m'] < 0.05
    assert set(result['latency_ms']) >= {'total'}


def test_ids_agree_across_topics_and_scored_grasps_carry_the_scores(mcap_run):
    """An object's 2D and 3D ids are equal; scored_grasps holds the PoseArray's grasps with their scores and objects."""
    _, run = mcap_run
    source = BagSource(run.bag_path)
    codec = MessageCodec()

    def messages(name):
        return [codec.decode(r.msgtype, r.data) for r in source.messages([resolve('/robot_vision', name)])]
    records = json.loads((run.out_dir / 'results.json').read_text())['frames']
    scored_total = 0
    for dets, objects, poses, scored, markers, record in zip(
            messages('detections'), messages('objects'), messages('grasps'), messages('scored_grasps'),
            messages('object_markers'), records):
        ids_2d = [d.id for d in dets.detections]
        ids_3d = [d.id for d in objects.detections]
        assert ids_3d and set(ids_3d) <= set(ids_2d)
        rows = [o['detection_index'] if o['detection_index'] >= 0 else k for k, o in enumerate(record['objects'])]
        assert [ids_2d[row] for row in rows] == ids_3d  # the depth backend's detections are its objects
        # the object's marker colour follows its id (the same colour in the overlay and the point cloud)
        cubes = [m for m in markers.markers if m.type == m.CUBE]
        assert [(round(m.color.r, 4), round(m.color.g, 4)) for m in cubes] == [
            tuple(round(c, 4) for c in cv_palette(int(i))[:2]) for i in ids_3d]
        assert len(scored.detections) == len(poses.poses) == record['grasps']['count']
        assert [round(d.results[0].hypothesis.score, 4) for d in scored.detections] == record['grasps']['scores']
        assert [d.id for d in scored.detections] == [ids_3d[k] for k in record['grasps']['object_index']]
        for detection, pose in zip(scored.detections, poses.poses):
            assert detection.results[0].pose.pose == pose == detection.bbox.center
            assert detection.bbox.size.x > 0
        scored_total += len(scored.detections)
    source.close()
    assert scored_total > 0


def cv_palette(index):
    from robot_vision.ros.conversions import palette
    return palette(index)
