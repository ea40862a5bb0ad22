"""Depth-noise models of common RGB-D sensors (Kinect v1 structured light, RealSense D435 stereo)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.types import CameraIntrinsics

NOISE_MODELS = ('none', 'kinect', 'realsense_d435')


@dataclass(frozen=True)
class DepthNoise:
    """Which sensor's depth errors to imitate, and how strongly.

    ``model``: 'none' (exact depth), 'kinect' (Kinect v1: axial noise
    sigma = 1.2 mm + 1.9 mm * (z - 0.4 m)^2 after Nguyen et al. 2012, 1/8-pixel disparity
    quantisation with a 7.5 cm baseline, dropouts along depth edges) or 'realsense_d435'
    (stereo: RMS error z^2 * 0.08 px / (f * 5 cm) with f = 447 px, spatially correlated,
    blob-shaped holes and occlusion shadows beside foreground edges).
    ``seed``: base seed; each frame draws from (seed, frame index), so sequences reproduce.
    ``scale``: multiplier on the noise standard deviation (1.0 = the model's nominal value).
    ``min_range``/``max_range``: metres; depth outside becomes NaN (None: the model's default,
    kinect 0.5-4.5 m, realsense_d435 0.2-6.0 m, none 0-inf). ``dropouts``: apply holes/edge dropouts.
    """

    model: str = 'none'
    seed: int = 0
    scale: float = 1.0
    min_range: Optional[float] = None
    max_range: Optional[float] = None
    dropouts: bool = True

    def __post_init__(self) -> None:
        """Validate the model name and ranges."""
        if self.model not in NOISE_MODELS:
            raise ConfigError(f'DepthNoise.model: expected one of {NOISE_MODELS}, got {self.model!r}')
        if not (0.0 <= self.scale <= 10.0):
            raise ConfigError(f'DepthNoise.scale: expected 0 to 10, got {self.scale}')
        low, high = self.ranges
        if not (0.0 <= low < high):
            raise ConfigError(f'DepthNoise.min_range/max_range: expected 0 <= min < max metres, '
                              f'got {low}, {high}')

    @property
    def ranges(self):
        """The effective (min, max) valid range in metres."""
        default = {'none': (0.0, np.inf), 'kinect': (0.5, 4.5), 'realsense_d435': (0.2, 6.0)}[self.model]
        return (default[0] if self.min_range is None else float(self.min_range),
                default[1] if self.max_range is None else float(self.max_range))


_KINECT_BASELINE = 0.075
_D435_BASELINE = 0.05
_D435_FOCAL = 0.5 * 848 / np.tan(np.deg2rad(87.0) / 2)   # 447 px at 848x480
_D435_SUBPIXEL = 0.08


def apply_depth_noise(depth: np.ndarray, intrinsics: CameraIntrinsics, noise: DepthNoise,
                      frame_index: int = 0) -> np.ndarray:
    """Return a noisy copy of ``depth`` ((H, W) float32 metres, NaN invalid) as the sensor would see it.

    The draw is seeded by ``(noise.seed, frame_index)``. Output: (H, W) float32 metres, NaN invalid.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise InputError(f'depth: expected (H, W) float32 metres, got {depth.shape} {depth.dtype}')
    intrinsics.check_image(depth.shape, 'depth image')
    out = depth.astype(np.float64)
    low, high = noise.ranges
    if noise.model == 'none':
        out[(out < low) | (out > high)] = np.nan
        return out.astype(np.float32)
    rng = np.random.default_rng(np.random.SeedSequence([int(noise.seed), int(frame_index), 17]))
    valid = np.isfinite(out)
    z = np.where(valid, out, 1.0)
    if noise.model == 'kinect':
        sigma = (0.0012 + 0.0019 * (z - 0.4) ** 2) * noise.scale
        z = z + sigma * rng.standard_normal(z.shape)
        fb = intrinsics.fx * _KINECT_BASELINE
        disparity = np.round(fb / np.maximum(z, 1e-3) * 8.0) / 8.0
        z = fb / np.maximum(disparity, 1e-6)
        drop = np.zeros(z.shape, bool)
        if noise.dropouts:
            edges = _depth_edges(out, valid, 0.03)
            edges = _dilate(edges, 1)
            drop |= edges & (rng.uniform(size=z.shape) < 0.6)
            drop |= rng.uniform(size=z.shape) < 0.002
    else:
        sigma = z ** 2 * _D435_SUBPIXEL / (_D435_FOCAL * _D435_BASELINE) * noise.scale
        white = rng.standard_normal(z.shape)
        smooth = _smooth_noise(rng, z.shape, 3.0)
        z = z + sigma * (0.5 * white + 0.866 * smooth)
        drop = np.zeros(z.shape, bool)
        if noise.dropouts:
            drop |= _smooth_noise(rng, z.shape, 6.0) > 2.3    # ~1 % area in blobs
            drop |= _stereo_shadow(out, valid, intrinsics.fx * _D435_BASELINE)
            drop |= _dilate(_depth_edges(out, valid, 0.05), 1) & (rng.uniform(size=z.shape) < 0.3)
    z[~valid | drop] = np.nan
    z[(z < low) | (z > high)] = np.nan
    return z.astype(np.float32)


def range_codes(depth: np.ndarray, depth_clean: np.ndarray, noise: DepthNoise) -> np.ndarray:
    """Mark out-of-range readings as Gazebo's depth camera and REP 117 do: +inf too far, -inf too near.

    ``depth``: (H, W) float32 metres, NaN invalid (the output of :func:`apply_depth_noise`);
    ``depth_clean``: the noise-free depth it came from (NaN where nothing was hit).
    Returns a float32 copy where invalid pixels whose true depth is beyond ``noise.ranges[1]``,
    or that hit nothing, are +inf, those nearer than ``noise.ranges[0]`` are -inf, and the
    sensor model's other dropouts stay NaN.
    """
    depth = np.asarray(depth, np.float32)
    depth_clean = np.asarray(depth_clean, np.float32)
    if depth.shape != depth_clean.shape or depth.ndim != 2:
        raise InputError(f'range_codes: expected two (H, W) depth images of one shape, got {depth.shape} '
                         f'and {depth_clean.shape}')
    low, high = noise.ranges
    out = depth.copy()
    invalid = np.isnan(out)
    with np.errstate(invalid='ignore'):
        out[invalid & (np.isnan(depth_clean) | (depth_clean > high))] = np.inf
        out[invalid & (depth_clean < low)] = -np.inf
    return out


def _smooth_noise(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-pass filtered with a Gaussian of ``sigma_px`` pixels.

    Drawn at a coarser grid (step sigma/2 pixels) and upsampled bilinearly, which keeps the
    correlation length and costs a fraction of filtering the full-size image.
    """
    import cv2
    from scipy.ndimage import gaussian_filter
    step = max(1, int(sigma_px // 2))
    coarse_shape = (shape[0] // step + 2, shape[1] // step + 2)
    coarse = gaussian_filter(rng.standard_normal(coarse_shape), sigma_px / step, mode='wrap')
    field = cv2.resize(coarse.astype(np.float32), (coarse_shape[1] * step, coarse_shape[0] * step),
                       interpolation=cv2.INTER_LINEAR)[:shape[0], :shape[1]].astype(np.float64)
    std = field.std()
    return (field - field.mean()) / std if std > 0 else field


def _depth_edges(depth: np.ndarray, valid: np.ndarray, relative_jump: float) -> np.ndarray:
    """Pixels beside a depth jump larger than ``relative_jump`` times the depth."""
    filled = np.where(valid, depth, 0.0)
    edges = np.zeros(depth.shape, bool)
    for axis in (0, 1):
        diff = np.abs(np.diff(filled, axis=axis))
        ref = np.maximum(np.minimum(np.delete(filled, 0, axis), np.delete(filled, -1, axis)), 1e-3)
        jump = (diff > relative_jump * ref) & (np.delete(valid, 0, axis) | np.delete(valid, -1, axis))
        if axis == 0:
            edges[1:] |= jump
            edges[:-1] |= jump
        else:
            edges[:, 1:] |= jump
            edges[:, :-1] |= jump
    return edges


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation
    return binary_dilation(mask, iterations=radius)


def _stereo_shadow(depth: np.ndarray, valid: np.ndarray, focal_baseline: float,
                   max_shift: int = 48) -> np.ndarray:
    """Background pixels the second imager cannot see: occluded by a nearer surface to their right."""
    disparity = np.where(valid, focal_baseline / np.maximum(depth, 1e-3), 0.0)
    shadow = np.zeros(depth.shape, bool)
    width = depth.shape[1]
    if not valid.any():
        return shadow
    # a pixel can only be hidden by a surface up to (max - min disparity) pixels to its right
    reach = int(np.ceil(disparity[valid].max() - disparity[valid].min()))
    for shift in range(1, min(max_shift, reach, width - 1) + 1):
        ahead = disparity[:, shift:]
        shadow[:, :-shift] |= (ahead - disparity[:, :-shift]) > shift
    return shadow & valid


__all__ = ['DepthNoise', 'apply_depth_noise', 'range_codes', 'NOISE_MODELS']
