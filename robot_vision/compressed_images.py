"""Decode compressed camera images as ROS image_transport carries them (pure numpy/cv2, no message types).

A ``sensor_msgs/CompressedImage`` holds a ``format`` string and encoded bytes. Two transports:

- ``compressed`` (compressed_image_transport): the data is a whole JPEG or PNG file. ``format`` is
  ``'<encoding>; <jpeg|png> compressed <target>'``, e.g. ``'rgb8; jpeg compressed bgr8'``
  (the original encoding, then the channel order the file was written in), or only
  ``'jpeg'`` / ``'png'`` from older publishers (then the file is BGR or mono). A 16-bit depth image
  can travel this way too: ``'16UC1; png compressed '``.
- ``compressedDepth`` (compressed_depth_image_transport): ``format`` is
  ``'<encoding>; compressedDepth <png|rvl>'`` (older: ``'<encoding>; compressedDepth'``, PNG).
  The data starts with a 12-byte configuration header, as the C++ publisher ``memcpy``s its
  ``ConfigHeader`` struct: an int32 compression format (0 = inverse depth) and two float32
  quantisation parameters ``depthQuantA``, ``depthQuantB`` (little-endian on every platform ROS
  runs on), followed by the PNG file. For ``16UC1`` the PNG holds the raw 16-bit depth
  (millimetres; values beyond the publisher's ``depth_max`` are written as 0). For ``32FC1`` it
  holds the 16-bit quantised inverse depth ``q = A / z + B`` (0: invalid), decoded as
  ``z = A / (q - B)`` metres. ``rvl`` coded depth is not supported (a clear InputError says so).

Every malformed input raises :class:`~robot_vision.errors.InputError` naming the format and size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from robot_vision.errors import InputError

#: Size of compressed_depth_image_transport's ConfigHeader: int32 format + 2 x float32.
DEPTH_HEADER_SIZE = 12
#: Encodings that mean "this image is depth" (also in a CompressedImage format string).
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')
#: image_transport names of the transports an image input may use.
TRANSPORTS = ('raw', 'compressed', 'compressedDepth')


@dataclass(frozen=True)
class CompressedFormat:
    """A parsed ``CompressedImage.format``.

    ``encoding``: the original image encoding ('' when the publisher did not say);
    ``transport``: 'compressed' or 'compressedDepth'; ``codec``: 'jpeg', 'png', 'rvl' or the raw
    text of an unknown one; ``rgb_order``: the file's channels are RGB (``compressed rgb8``), not
    OpenCV's BGR.
    """

    encoding: str
    transport: str
    codec: str
    rgb_order: bool = False

    @property
    def is_depth(self) -> bool:
        """Whether the image is depth (compressedDepth, or a depth encoding)."""
        return self.transport == 'compressedDepth' or self.encoding in DEPTH_ENCODINGS


def parse_format(text: str) -> CompressedFormat:
    """Parse a ``CompressedImage.format`` string of either transport (see the module docstring)."""
    text = (text or '').strip()
    encoding, sep, rest = text.partition(';')
    if not sep:  # an old publisher: only the file type, or nothing
        return CompressedFormat('', 'compressed', encoding.strip().lower() or 'unknown')
    encoding, words = encoding.strip(), rest.split()
    if words and words[0] == 'compressedDepth':
        return CompressedFormat(encoding, 'compressedDepth', words[1].lower() if len(words) > 1 else 'png')
    codec = words[0].lower() if words else 'unknown'
    target = words[2] if len(words) > 2 and words[1] == 'compressed' else ''
    return CompressedFormat(encoding, 'compressed', codec, rgb_order=target.startswith('rgb'))


def is_depth(format_text: str, topic: str = '') -> bool:
    """Whether a CompressedImage stream is depth: by its format, else (no encoding given) by its topic name."""
    parsed = parse_format(format_text)
    if parsed.is_depth or parsed.encoding:
        return parsed.is_depth
    name = topic.rstrip('/').lower()
    return name.endswith('compresseddepth') or 'depth' in name


def _decode_file(data: bytes, flags: int, what: str, fmt: str) -> np.ndarray:
    import cv2
    buffer = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buffer.size == 0:
        raise InputError(f'{what}: expected encoded image bytes (format {fmt!r}), got 0 bytes')
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:  # OpenCV raises for some damaged files instead of returning None
        image, detail = None, f': {str(exc).strip().splitlines()[-1]}'
    else:
        detail = ''
    if image is None or image.size == 0:
        raise InputError(f'{what}: could not decode {buffer.size} bytes of format {fmt!r} (corrupt or '
                         f'truncated data?){detail}')
    return image


def decode_color(format_text: str, data: bytes) -> np.ndarray:
    """Decode a ``compressed`` colour or mono image to (H, W, 3) uint8 RGB."""
    import cv2
    parsed = parse_format(format_text)
    if parsed.is_depth:
        raise InputError(f'colour image: expected a colour CompressedImage, got the depth format {format_text!r} '
                         f'(is the colour input set to a depth topic?)')
    image = _decode_file(data, cv2.IMREAD_COLOR, 'compressed colour image', format_text)
    return np.ascontiguousarray(image if parsed.rgb_order else image[:, :, ::-1])


def decode_depth(format_text: str, data: bytes) -> Tuple[np.ndarray, str]:
    """Decode a ``compressedDepth`` (or PNG ``compressed`` 16-bit) depth image.

    Returns (array, encoding): (H, W) uint16 with encoding '16UC1'/'mono16' (raw units), or
    (H, W) float32 metres with NaN invalid and encoding '32FC1'.
    """
    import cv2
    parsed = parse_format(format_text)
    if parsed.transport == 'compressed':
        if parsed.encoding not in ('16UC1', 'mono16'):
            raise InputError(f'depth image: expected a compressedDepth format or a 16-bit PNG ("16UC1; png '
                             f'compressed"), got format {format_text!r}')
        image = _decode_file(data, cv2.IMREAD_UNCHANGED, 'compressed depth image', format_text)
        return _check_uint16(image, format_text), parsed.encoding
    if parsed.encoding not in DEPTH_ENCODINGS:
        raise InputError(f'compressedDepth image: expected encoding one of {list(DEPTH_ENCODINGS)}, got '
                         f'{parsed.encoding!r} (format {format_text!r})')
    if parsed.codec != 'png':
        raise InputError(f'compressedDepth image: only the png codec is supported, got {parsed.codec!r} (format '
                         f'{format_text!r}); set the publisher\'s format to png, or republish to raw')
    if len(data) <= DEPTH_HEADER_SIZE:
        raise InputError(f'compressedDepth image: expected a {DEPTH_HEADER_SIZE}-byte header and a PNG file, got '
                         f'{len(data)} bytes (format {format_text!r})')
    header = bytes(memoryview(data)[:DEPTH_HEADER_SIZE])
    _, quant_a, quant_b = struct.unpack('<iff', header)
    image = _check_uint16(_decode_file(memoryview(data)[DEPTH_HEADER_SIZE:], cv2.IMREAD_UNCHANGED,
                                       'compressedDepth image', format_text), format_text)
    if parsed.encoding != '32FC1':
        return image, parsed.encoding
    if not (np.isfinite(quant_a) and np.isfinite(quant_b) and quant_a > 0):
        raise InputError(f'compressedDepth 32FC1 image: expected a positive depthQuantA and a finite depthQuantB '
                         f'in the header, got {quant_a}, {quant_b}')
    quantised = image.astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        metres = np.float32(quant_a) / (quantised - np.float32(quant_b))
    metres[image == 0] = np.nan
    return metres, '32FC1'


def _check_uint16(image: np.ndarray, fmt: str) -> np.ndarray:
    if image.ndim != 2 or image.dtype != np.uint16:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise InputError(f'compressed depth image: expected a single-channel 16-bit PNG, got {channels} '
                         f'channel(s) of {image.dtype} (format {fmt!r})')
    return image
