"""Camera geometry: depth decoding, deprojection to organized clouds, projection, unit checks."""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import cv2
import numpy as np

from robot_vision.errors import InputError
from robot_vision.types import CameraIntrinsics

#: Metres per raw unit for the depth encodings that ROS camera drivers publish.
DEFAULT_DEPTH_SCALE = {'16UC1': 0.001, 'mono16': 0.001, '32FC1': 1.0}

#: Depth range (metres) that an RGB-D camera plausibly reports for a scene.
PLAUSIBLE_MEDIAN_DEPTH = (0.1, 20.0)


def decode_depth(raw: np.ndarray, scale: Optional[float] = None,
                 encoding: Optional[str] = None) -> np.ndarray:
    """Convert a raw depth image to float32 metres with NaN for invalid pixels.

    ``raw`` is (H, W) uint16 (e.g. 16UC1 millimetres) or float32/float64 (32FC1 metres).
    ``scale`` is metres per raw unit; when None it comes from ``encoding`` (16UC1/mono16:
    0.001, 32FC1: 1.0) or, failing that, from the dtype (uint16: 0.001, float: 1.0).
    Zero, negative, NaN and infinite values become NaN.
    """
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise InputError(f'depth image: expected a (H, W) array, got shape {raw.shape}')
    if raw.dtype.kind not in 'uif':
        raise InputError(f'depth image: expected an integer or float dtype, got {raw.dtype}')
    if scale is None:
        if encoding is not None:
            if encoding not in DEFAULT_DEPTH_SCALE:
                raise InputError(f'depth encoding: expected one of '
                                 f'{sorted(DEFAULT_DEPTH_SCALE)}, got {encoding!r}')
            scale = DEFAULT_DEPTH_SCALE[encoding]
        else:
            scale = 1.0 if raw.dtype.kind == 'f' else 0.001
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f'depth scale: expected a positive number of metres per unit, got {scale}')
    depth = raw.astype(np.float32, copy=True)
    if scale != 1.0:
        depth *= np.float32(scale)
    depth[~(depth > 0) | ~np.isfinite(depth)] = np.nan
    return depth


@lru_cache(maxsize=16)
def _rays(intrinsics: CameraIntrinsics) -> Tuple[np.ndarray, np.ndarray]:
    u = (np.arange(intrinsics.width, dtype=np.float32) - np.float32(intrinsics.cx)) / np.float32(
        intrinsics.fx)
    v = (np.arange(intrinsics.height, dtype=np.float32) - np.float32(intrinsics.cy)) / np.float32(
        intrinsics.fy)
    return u, v


def deproject(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Turn a depth image into an organized point cloud in the camera optical frame.

    ``depth`` is (H, W) float32 metres (NaN invalid, see :func:`decode_depth`). Returns
    (H, W, 3) float32 points (x right, y down, z forward, metres); invalid pixels are NaN.
    """
    depth = np.asarray(depth)
    intrinsics.check_image(depth.shape, 'depth image')
    if depth.dtype != np.float32:
        raise InputError(f'depth image: expected float32 metres (use decode_depth), got {depth.dtype}')
    u, v = _rays(intrinsics)
    # cv2.merge interleaves the three planes about twice as fast as writing strided channels.
    return cv2.merge([depth * u[None, :], depth * v[:, None], np.ascontiguousarray(depth)])


def deproject_pixels(u: np.ndarray, v: np.ndarray, z: np.ndarray,
                     intrinsics: CameraIntrinsics) -> np.ndarray:
    """Deproject pixel coordinates ``u, v`` (N,) at depths ``z`` (N,) metres to (N, 3) points."""
    u, v, z = (np.asarray(a, np.float64) for a in (u, v, z))
    x = (u - intrinsics.cx) / intrinsics.fx * z
    y = (v - intrinsics.cy) / intrinsics.fy * z
    return np.stack([x, y, z], axis=-1)


def project(points: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Project (N, 3) camera-frame points to (N, 2) pixel coordinates (u, v).

    Points at or behind the camera (z <= 0) or non-finite give NaN.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f'points: expected shape (N, 3), got {points.shape}')
    z = points[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = np.stack([intrinsics.fx * points[:, 0] / z + intrinsics.cx,
                       intrinsics.fy * points[:, 1] / z + intrinsics.cy], axis=-1)
    uv[~(z > 0)] = np.nan
    return uv


def valid_fraction(depth: np.ndarray) -> float:
    """Return the fraction of finite depth pixels."""
    return float(np.isfinite(depth).mean()) if depth.size else 0.0


def depth_unit_problem(depth: np.ndarray) -> Optional[str]:
    """Return a message when decoded depth (metres) looks like it used the wrong unit, else None.

    The median valid depth of a real RGB-D scene lies within ``PLAUSIBLE_MEDIAN_DEPTH``; a
    value 1000x too large means millimetres read as metres, 1000x too small the reverse.
    """
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return 'depth image has no valid pixels'
    median = float(np.median(finite[:: max(1, finite.size // 20000)]))
    low, high = PLAUSIBLE_MEDIAN_DEPTH
    if median > high:
        return (f'median depth is {median:.1f} m, implausibly far: is the depth scale right '
                f'(16UC1 is usually millimetres, scale 0.001)?')
    if median < low:
        return (f'median depth is {median:.4f} m, implausibly near: is the depth scale right '
                f'(32FC1 is metres, scale 1.0)?')
    return None
