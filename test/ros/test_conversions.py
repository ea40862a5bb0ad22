"""Round trips and malformed-message errors of robot_vision.ros.conversions (no running graph)."""

import importlib.util

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import Pose
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
from visualization_msgs.msg import Marker

from robot_vision.datasets import YCB_DEPTH_SCALE, load_ycb_frame
from robot_vision.errors import InputError
from robot_vision.ros import conversions as cv
from robot_vision.types import CameraIntrinsics, Detections, Grasps, Objects3D, Tracks

RNG = np.random.default_rng(7)

ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}


def _random_image(encoding, height=5, width=7):
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype is np.float32:
        return RNG.uniform(0.1, 5.0, shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_image_round_trip(encoding):
    array = _random_image(encoding)
    msg = cv.numpy_to_image(array, encoding, 'cam', 12.5)
    assert msg.step == array.shape[1] * array.itemsize * (1 if array.ndim == 2 else array.shape[2])
    out = cv.image_to_numpy(msg)
    assert out.dtype == array.dtype and np.array_equal(out, array)
    assert msg.header.frame_id == 'cam' and cv.stamp_to_seconds(msg.header.stamp) == pytest.approx(12.5)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_image_row_padding_via_step(encoding):
    array = _random_image(encoding)
    packed = cv.numpy_to_image(array, encoding)
    pad = 13
    rows = np.frombuffer(bytes(packed.data), np.uint8).reshape(packed.height, packed.step)
    padded = np.hstack([rows, np.full((packed.height, pad), 0xAB, np.uint8)])
    msg = Image(height=packed.height, width=packed.width, encoding=encoding, step=packed.step + pad,
                data=padded.tobytes())
    assert np.array_equal(cv.image_to_numpy(msg), array)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', '32FC1'])
def test_big_endian_images(encoding):
    array = _random_image(encoding)
    big = array.astype(array.dtype.newbyteorder('>'))
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=1,
                step=array.shape[1] * array.itemsize, data=big.tobytes())
    out = cv.image_to_numpy(msg)
    assert out.dtype.isnative and np.array_equal(out, array)


@pytest.mark.parametrize('encoding,order', [('rgb8', [0, 1, 2]), ('bgr8', [2, 1, 0]),
                                            ('rgba8', [0, 1, 2]), ('bgra8', [2, 1, 0])])
def test_image_to_rgb_channel_order(encoding, order):
    array = _random_image(encoding)
    rgb = cv.image_to_rgb(cv.numpy_to_image(array, encoding))
    assert rgb.shape == array.shape[:2] + (3,)
    assert np.array_equal(rgb, array[:, :, order])


def test_mono8_to_rgb_replicates_channels():
    array = _random_image('mono8')
    rgb = cv.image_to_rgb(cv.numpy_to_image(array, 'mono8'))
    assert np.array_equal(rgb[:, :, 1], array) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2])


def test_depth_images_decode_to_metres_with_nan_for_invalid():
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    depth = cv.image_to_depth(cv.numpy_to_image(mm, '16UC1'))
    assert np.isnan(depth[0, 0]) and depth[0, 1] == pytest.approx(1.0) and depth[1, 0] == pytest.approx(2.5)
    metres = np.array([[np.nan, 0.0], [1.25, np.inf]], np.float32)
    depth = cv.image_to_depth(cv.numpy_to_image(metres, '32FC1'))
    assert np.isnan(depth[0, 0]) and np.isnan(depth[0, 1]) and depth[1, 0] == 1.25 and np.isnan(depth[1, 1])


def test_real_ycb_depth_with_custom_scale(shared_data):
    frame = load_ycb_frame(1, shared_data / 'ycb_posecnn')
    raw = cv2.imread(str(shared_data / 'ycb_posecnn/000001-depth.png'), cv2.IMREAD_UNCHANGED)
    msg = cv.numpy_to_image(raw, '16UC1')
    depth = cv.image_to_depth(msg, scale=YCB_DEPTH_SCALE)
    assert np.array_equal(np.isnan(depth), np.isnan(frame.depth))
    assert np.allclose(depth[np.isfinite(depth)], frame.depth[np.isfinite(frame.depth)])


def _good_image():
    return cv.numpy_to_image(_random_image('rgb8'), 'rgb8')


MALFORMED_IMAGES = [
    ('unknown encoding', dict(encoding='yuv422'), 'Image.encoding'),
    ('step too small', dict(step=3), 'Image.step'),
    ('data too short', dict(data=b'\x00' * 10), 'Image.data'),
    ('zero width', dict(width=0), 'Image.height/width'),
]


@pytest.mark.parametrize('case,changes,field', MALFORMED_IMAGES, ids=[c[0] for c in MALFORMED_IMAGES])
def test_malformed_image_gives_clear_error(case, changes, field):
    msg = _good_image()
    for key, value in changes.items():
        setattr(msg, key, value)
    with pytest.raises(InputError, match=field):
        cv.image_to_numpy(msg)


def test_wrong_encoding_for_depth_and_colour():
    with pytest.raises(InputError, match='depth image encoding'):
        cv.image_to_depth(_good_image())
    with pytest.raises(InputError, match='colour image encoding'):
        cv.image_to_rgb(cv.numpy_to_image(_random_image('32FC1'), '32FC1'))
    with pytest.raises(InputError, match='expected dtype'):
        cv.numpy_to_image(np.zeros((2, 2), np.float64), '32FC1')
    with pytest.raises(InputError, match='expected shape'):
        cv.numpy_to_image(np.zeros((2, 2), np.uint8), 'rgb8')


def test_compressed_image_decodes_to_rgb_and_rejects_garbage():
    rgb = _random_image('rgb8', 16, 20)
    ok, png = cv2.imencode('.png', rgb[:, :, ::-1])
    assert ok
    msg = CompressedImage(format='png', data=png.tobytes())
    assert np.array_equal(cv.image_to_rgb(msg), rgb)
    with pytest.raises(InputError, match='could not decode'):
        cv.image_to_rgb(CompressedImage(format='jpeg', data=b'not an image'))
    with pytest.raises(InputError, match='0 bytes'):
        cv.image_to_rgb(CompressedImage(format='jpeg'))


def test_camera_info_round_trip_and_binning_roi():
    intr = CameraIntrinsics(640, 480, 525.0, 526.0, 319.5, 239.5, 'plumb_bob', (0.1, -0.2, 0.0, 0.0, 0.05))
    msg = cv.intrinsics_to_camera_info(intr, 'cam', 3.0)
    assert cv.camera_info_to_intrinsics(msg) == intr
    msg.binning_x = msg.binning_y = 2
    binned = cv.camera_info_to_intrinsics(msg)
    assert (binned.width, binned.height, binned.fx, binned.cx) == (320, 240, 262.5, 159.75)
    msg.binning_x = msg.binning_y = 0
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 50, 200, 100
    roi = cv.camera_info_to_intrinsics(msg)
    assert (roi.width, roi.height, roi.cx, roi.cy) == (200, 100, 219.5, 189.5)


def test_uncalibrated_camera_info_is_an_error():
    with pytest.raises(InputError, match='positive focal lengths'):
        cv.camera_info_to_intrinsics(CameraInfo(width=640, height=480))


def test_point_cloud_round_trip_xyz_and_rgb():
    points = RNG.normal(size=(50, 3)).astype(np.float32)
    colors = RNG.integers(0, 255, (50, 3), dtype=np.uint8)
    out, out_colors = cv.cloud_to_points(cv.points_to_cloud(points, 'cam', 1.0), with_colors=True)
    assert np.array_equal(out, points) and out_colors is None
    out, out_colors = cv.cloud_to_points(cv.points_to_cloud(points, 'cam', 1.0, colors), with_colors=True)
    assert np.array_equal(out, points) and np.array_equal(out_colors, colors)


def test_point_cloud_skips_nans_and_reads_padded_big_endian():
    points = np.array([[1, 2, 3], [np.nan, 0, 0], [4, 5, 6]], np.float32)
    assert len(cv.cloud_to_points(cv.points_to_cloud(points))[0]) == 2
    # A big-endian cloud with a 16-byte point step (x, y, z + 4 bytes padding).
    records = np.zeros(3, dtype=[('x', '>f4'), ('y', '>f4'), ('z', '>f4'), ('pad', '>u4')])
    records['x'], records['y'], records['z'] = points.T
    msg = PointCloud2(height=1, width=3, is_bigendian=True, point_step=16, row_step=48,
                      data=records.tobytes(),
                      fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                              for i, n in enumerate('xyz')])
    out, _ = cv.cloud_to_points(msg, skip_nans=False)
    assert np.array_equal(out, points, equal_nan=True)


def test_malformed_point_clouds():
    msg = cv.points_to_cloud(np.zeros((4, 3), np.float32))
    msg.data = bytes(msg.data)[:10]
    with pytest.raises(InputError, match='PointCloud2.data'):
        cv.cloud_to_points(msg)
    msg = cv.points_to_cloud(np.zeros((4, 3), np.float32))
    msg.fields = msg.fields[:2]
    with pytest.raises(InputError, match="field 'z'"):
        cv.cloud_to_points(msg)


def _pose(angle, t):
    c, s = np.cos(angle), np.sin(angle)
    pose = np.eye(4)
    pose[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    pose[:3, 3] = t
    return pose


def test_pose_round_trip_and_zero_quaternion_error():
    pose = _pose(0.7, [1, 2, 3])
    assert np.allclose(cv.pose_to_matrix(cv.matrix_to_pose(pose)), pose)
    zero = Pose()
    zero.orientation.w = 0.0
    with pytest.raises(InputError, match='quaternion'):
        cv.pose_to_matrix(zero)


def test_detections_round_trip():
    dets = Detections(xyxy=[[10, 20, 50, 80], [0, 0, 5, 5]], confidence=[0.9, 0.4], class_id=[3, 0])
    msg = cv.detections_to_msg(dets, 'cam', 2.0)
    assert [d.id for d in msg.detections] == ['1', '2']  # the pixel values of the instance-label image
    back = cv.msg_to_detections(msg)
    assert np.allclose(back.xyxy, dets.xyxy) and np.array_equal(back.class_id, dets.class_id)
    assert np.allclose(back.confidence, dets.confidence)


def test_foreign_detections_with_class_names_and_no_results():
    msg = Detection2DArray()
    det = Detection2D()
    det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y = 50, 40, 20, 10
    for name, score in (('cup', 0.3), ('bottle', 0.8)):
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = name, score
        det.results.append(hyp)
    msg.detections = [det, Detection2D()]
    dets = cv.msg_to_detections(msg, names={0: 'cup', 1: 'bottle'})
    assert dets.class_id.tolist() == [1, -1] and dets.confidence.tolist() == pytest.approx([0.8, 1.0])
    assert dets.xyxy[0].tolist() == [40, 35, 60, 45]
    det.bbox.size_x = float('nan')
    with pytest.raises(InputError, match=r'detections\[0\].bbox'):
        cv.msg_to_detections(msg)


def _objects():
    poses = np.stack([_pose(0.3, [0.1, 0.2, 0.9]), _pose(-1.2, [-0.3, 0.0, 1.4])])
    return Objects3D(pose=poses, size=[[0.1, 0.05, 0.2], [0.3, 0.2, 0.1]], centroid=poses[:, :3, 3],
                     confidence=[0.9, 0.6], class_id=[2, -1], detection_index=[0, 1])


def test_objects_round_trip():
    objects = _objects()
    msg = cv.objects_to_msg(objects, 'cam', 1.5, ids=['a', 'b'])
    assert [d.id for d in msg.detections] == ['a', 'b']
    result_pose = cv.pose_to_matrix(msg.detections[0].results[0].pose.pose)
    assert np.allclose(result_pose, objects.pose[0])
    back = cv.msg_to_objects(msg)
    assert np.allclose(back.pose, objects.pose) and np.allclose(back.size, objects.size)
    assert back.class_id.tolist() == [2, -1]


def test_tracks_to_msg_uses_track_ids_and_position_covariance():
    cov = np.tile(np.eye(6) * 0.01, (2, 1, 1))
    tracks = Tracks(track_id=[7, 12], position=[[1, 2, 0], [3, 4, 0]], velocity=[[0.5, 0, 0], [0, 0, 0]],
                    covariance=cov, size=[[0.2] * 3] * 2, yaw=[0.0, 1.0], class_id=[1, 1], confidence=[1, 1],
                    state=[1, 1], moving=[True, False], hits=[5, 5], last_seen=[1.0, 1.0])
    msg = cv.tracks_to_msg(tracks, 'odom', 1.0)
    assert [d.id for d in msg.detections] == ['7', '12']
    assert msg.detections[0].results[0].pose.covariance[0] == pytest.approx(0.01)
    markers = cv.track_markers(tracks, 'odom', 1.0)
    assert markers.markers[0].action == Marker.DELETEALL
    keys = [(m.ns, m.id) for m in markers.markers[1:]]
    assert len(keys) == len(set(keys)) == 6


def test_label_info_round_trip_and_range():
    msg = cv.label_info_msg(['person', 'cup'], threshold=0.25)
    assert cv.label_info_to_names(msg) == {0: 'person', 1: 'cup'}
    with pytest.raises(InputError, match='uint16'):
        cv.label_info_msg({70000: 'x'})


def test_grasps_to_pose_array_and_markers():
    poses = np.stack([_pose(0.1, [0, 0, 1]), _pose(0.2, [0, 0, 1.1])])
    grasps = Grasps(pose=poses, width=[0.05, 0.06], score=[0.9, 0.5], object_index=[0, 0])
    array = cv.grasps_to_pose_array(grasps, 'base_link', 4.0)
    assert len(array.poses) == 2 and array.header.frame_id == 'base_link'
    assert np.allclose(cv.pose_to_matrix(array.poses[1]), poses[1])
    segments = [np.zeros((3, 2, 3)), np.ones((3, 2, 3))]
    markers = cv.gripper_markers(segments, 'base_link', 4.0)
    assert len(markers.markers) == 3 and len(markers.markers[1].points) == 6
    object_markers = cv.object_markers(_objects(), 'cam', 1.0)
    keys = [(m.ns, m.id) for m in object_markers.markers[1:]]
    assert len(keys) == len(set(keys)) == 4


@pytest.mark.skipif(importlib.util.find_spec('cv_bridge') is None,
                    reason='cv_bridge (ROS 2) is not installed here: it is not on PyPI, and its source in '
                           '../shared/ros_src links rclcpp, which has no wheel (a robot has it from its ROS distro)')
@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_identical_to_cv_bridge(encoding):
    from cv_bridge import CvBridge
    array = _random_image(encoding)
    bridge = CvBridge()
    msg = bridge.cv2_to_imgmsg(array, encoding=encoding)
    assert np.array_equal(cv.image_to_numpy(msg), bridge.imgmsg_to_cv2(msg, 'passthrough'))
    ours = cv.numpy_to_image(array, encoding)
    assert bytes(ours.data) == bytes(msg.data) and ours.step == msg.step
