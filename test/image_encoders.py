"""The tests' image_transport encoders: CompressedImage data as ROS publishers write it, with the real cv2 codecs.

Written from the formats of compressed_image_transport and compressed_depth_image_transport (Jazzy),
independently of robot_vision's decoder, so that the tests check the decoder against the format:

- ``compressed``: the image converted to BGR and written as a JPEG/PNG file; format
  ``'<encoding>; <jpeg|png> compressed bgr8'``.
- ``compressedDepth``: a 12-byte header (int32 0 = inverse depth, float32 depthQuantA, depthQuantB)
  and a PNG. 16UC1: the millimetres, values above ``depth_max`` (m) set to 0. 32FC1: the inverse
  depth ``A / z + B`` truncated to uint16 (C's float to unsigned short), 0 where z >= depth_max
  or invalid, with A = q (q + 1) and B = 1 - A / depth_max for the publisher's
  ``depth_quantization`` q (defaults: depth_max 10 m, q 100).
"""

import struct

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage

from robot_vision.ros.conversions import make_header


def compressed_color(rgb: np.ndarray, codec: str = 'jpeg', frame_id: str = '', stamp=0.0) -> CompressedImage:
    """An rgb8 image as compressed_image_transport publishes it (JPEG quality 95 or PNG)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if codec == 'jpeg' else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode('.jpg' if codec == 'jpeg' else '.png', np.ascontiguousarray(rgb[:, :, ::-1]), params)
    assert ok
    return CompressedImage(header=make_header(frame_id, stamp), format=f'rgb8; {codec} compressed bgr8',
                           data=data.tobytes())


def compressed_depth(depth_m: np.ndarray, encoding: str, frame_id: str = '', stamp=0.0,
                     depth_max: float = 10.0, quantization: float = 100.0) -> CompressedImage:
    """Depth in metres (NaN invalid) as compressed_depth_image_transport publishes it as 16UC1 or 32FC1."""
    depth = np.asarray(depth_m, np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if encoding == '16UC1':
        millimetres = np.where(valid, np.round(np.nan_to_num(depth) * 1000.0), 0).astype(np.uint16)
        millimetres[millimetres > np.uint16(depth_max * 1000.0)] = 0
        image, quant_a, quant_b = millimetres, 0.0, 0.0
    else:
        quant_a = np.float32(quantization) * (np.float32(quantization) + np.float32(1.0))
        quant_b = np.float32(1.0) - quant_a / np.float32(depth_max)
        keep = valid & (depth < np.float32(depth_max))
        with np.errstate(divide='ignore', invalid='ignore'):
            inverse = quant_a / depth + quant_b
        image = np.where(keep, np.trunc(inverse), 0).astype(np.uint16)
    ok, png = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    header = struct.pack('<iff', 0, float(quant_a), float(quant_b))
    return CompressedImage(header=make_header(frame_id, stamp), format=f'{encoding}; compressedDepth png',
                           data=header + png.tobytes())
