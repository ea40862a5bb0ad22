"""Decoding of image_transport's compressed formats against images written by the real cv2 encoders."""

import struct

import cv2
import numpy as np
import pytest
from image_encoders import compressed_color, compressed_depth

from robot_vision.compressed_images import CompressedFormat, decode_color, decode_depth, is_depth, parse_format
from robot_vision.errors import InputError


@pytest.fixture(scope='module')
def scene():
    """A colour gradient and a depth ramp 0.4-9.5 m with invalid pixels (NaN) and a beyond-range strip."""
    rng = np.random.default_rng(3)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, 64)[None, :]
    rgb[..., 1] = np.linspace(0, 255, 48)[:, None]
    rgb[..., 2] = 90
    depth = np.linspace(0.4, 9.5, 48 * 64, dtype=np.float32).reshape(48, 64)
    depth[rng.random(depth.shape) < 0.05] = np.nan
    depth[:, :2] = 12.0  # beyond the publisher's depth_max (10 m): sent as invalid
    return rgb, depth


@pytest.mark.parametrize('text, expected', [
    ('rgb8; jpeg compressed bgr8', CompressedFormat('rgb8', 'compressed', 'jpeg')),
    ('bgr8; png compressed rgb8', CompressedFormat('bgr8', 'compressed', 'png', rgb_order=True)),
    ('16UC1; png compressed ', CompressedFormat('16UC1', 'compressed', 'png')),
    ('jpeg', CompressedFormat('', 'compressed', 'jpeg')),
    ('', CompressedFormat('', 'compressed', 'unknown')),
    ('16UC1; compressedDepth png', CompressedFormat('16UC1', 'compressedDepth', 'png')),
    ('32FC1; compressedDepth', CompressedFormat('32FC1', 'compressedDepth', 'png')),
    ('32FC1; compressedDepth rvl', CompressedFormat('32FC1', 'compressedDepth', 'rvl')),
])
def test_parse_format(text, expected):
    assert parse_format(text) == expected


def test_depth_is_told_by_format_then_by_topic():
    assert is_depth('16UC1; compressedDepth png') and is_depth('mono16; png compressed ')
    assert not is_depth('rgb8; jpeg compressed bgr8', '/camera/depth/image_raw/compressed')
    assert is_depth('png', '/camera/depth/image_raw/compressed') and is_depth('', '/x/image/compressedDepth')
    assert not is_depth('jpeg', '/camera/color/image_raw/compressed')


@pytest.mark.parametrize('codec, tolerance', [('png', 0), ('jpeg', 12)])
def test_colour_round_trip(scene, codec, tolerance):
    rgb, _ = scene
    msg = compressed_color(rgb, codec)
    decoded = decode_color(msg.format, msg.data)
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - rgb).max() <= tolerance
    # An old publisher's format ('jpeg'/'png' only) means a BGR file, as a file written from an RGB one would be
    ok, data = cv2.imencode('.png', rgb[:, :, ::-1])
    assert np.array_equal(decode_color('png', data.tobytes()), rgb)
    # 'compressed rgb8': the file's channels are in RGB order
    ok, data = cv2.imencode('.png', rgb)
    assert np.array_equal(decode_color('bgr8; png compressed rgb8', data.tobytes()), rgb)


def test_compressed_depth_16uc1_is_lossless_up_to_depth_max(scene):
    _, depth = scene
    msg = compressed_depth(depth, '16UC1')
    raw, encoding = decode_depth(msg.format, msg.data)
    assert encoding == '16UC1' and raw.dtype == np.uint16
    expected = np.where(np.isfinite(depth) & (depth < 10.0), np.round(np.nan_to_num(depth) * 1000), 0)
    assert np.array_equal(raw, expected.astype(np.uint16))


def test_compressed_depth_32fc1_inverse_depth_quantisation(scene):
    _, depth = scene
    msg = compressed_depth(depth, '32FC1')
    _, quant_a, quant_b = struct.unpack('<iff', bytes(msg.data[:12]))
    assert (quant_a, quant_b) == (10100.0, -1009.0)  # depth_quantization 100, depth_max 10 m
    metres, encoding = decode_depth(msg.format, msg.data)
    assert encoding == '32FC1' and metres.dtype == np.float32
    valid = np.isfinite(depth) & (depth < 10.0)
    assert np.array_equal(np.isfinite(metres), valid)
    # One quantisation step of inverse depth is z^2 / A metres; truncation errs towards the far side.
    error = metres[valid] - depth[valid]
    assert np.all(error >= -1e-5) and np.all(error <= depth[valid] ** 2 / quant_a * 1.001 + 1e-5)
    assert np.abs(error[depth[valid] < 2.0]).max() < 0.0004


@pytest.mark.parametrize('fmt, data, message', [
    ('32FC1; compressedDepth png', b'', 'expected a 12-byte header and a PNG file, got 0 bytes'),
    ('32FC1; compressedDepth png', struct.pack('<iff', 0, 1.0, 0.0) + b'not a png', 'could not decode 9 bytes'),
    ('32FC1; compressedDepth rvl', b'x' * 40, "only the png codec is supported, got 'rvl'"),
    ('rgb8; compressedDepth png', b'x' * 40, "expected encoding one of ['16UC1', 'mono16', '32FC1'], got 'rgb8'"),
    ('rgb8; jpeg compressed bgr8', b'x' * 40, 'expected a compressedDepth format or a 16-bit PNG'),
])
def test_bad_depth_data_is_an_input_error(fmt, data, message):
    with pytest.raises(InputError) as info:
        decode_depth(fmt, data)
    assert message in str(info.value)


def test_bad_colour_data_is_an_input_error(scene):
    rgb, depth = scene
    msg = compressed_color(rgb, 'jpeg')
    with pytest.raises(InputError, match='could not decode 100 bytes'):
        decode_color(msg.format, bytes(msg.data[:100]))
    with pytest.raises(InputError, match='got 0 bytes'):
        decode_color(msg.format, b'')
    with pytest.raises(InputError, match='got the depth format'):
        decode_color('16UC1; compressedDepth png', compressed_depth(depth, '16UC1').data)
    # an 8-bit PNG on a compressedDepth topic is not depth
    ok, png = cv2.imencode('.png', rgb)
    with pytest.raises(InputError, match='single-channel 16-bit PNG, got 3 channel'):
        decode_depth('16UC1; compressedDepth png', struct.pack('<iff', 0, 0.0, 0.0) + png.tobytes())
