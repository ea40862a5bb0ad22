"""Depth-noise models of common RGB-D sensors, and a sparse depth registered onto a larger colour image.

Kinect v1 structured light, RealSense D435 stereo, and the registered, sparse depth of the Intel
SR300 frames of the Princeton APC shelf data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from robot_vision.errors import ConfigError, InputError
from robot_vision.types import CameraIntrinsics

NOISE_MODELS = ('none', 'kinect', 'realsense_d435', 'registered_sparse')


@dataclass(frozen=True)
class DepthNoise:
    """Which sensor's depth errors to imitate, and how strongly.

    ``model``: 'none' (exact depth), 'kinect' (Kinect v1: axial noise
    sigma = 1.2 mm + 1.9 mm * (z - 0.4 m)^2 after Nguyen et al. 2012, 1/8-pixel disparity
    quantisation with a 7.5 cm baseline, dropouts along depth edges) or 'realsense_d435'
    (stereo: RMS error z^2 * 0.08 px / (f * 5 cm) with f = 447 px, spatially correlated,
    blob-shaped holes and occlusion shadows beside foreground edges) or 'registered_sparse'
    (realsense_d435's errors, then the depth registered onto a colour image of a longer focal
    length without hole filling, and surface-dependent dropouts: the Intel SR300 frames of
    ../shared/data/real_clutter/apc_shelf_bin_b; defaults measured there, see docs/simulation.md).
    ``seed``: base seed; each frame draws from (seed, frame index), so sequences reproduce.
    ``scale``: multiplier on the noise standard deviation (1.0 = the model's nominal value).
    ``min_range``/``max_range``: metres; depth outside becomes NaN (None: the model's default,
    kinect 0.5-4.5 m, realsense_d435 0.2-6.0 m, registered_sparse 0.2-2.0 m, none 0-inf).
    ``dropouts``: apply holes/edge dropouts.

    Two options work on top of any model, 'none' included (None: the model's default, which is
    'off' for all but registered_sparse; ``dropouts`` does not switch them).
    ``registration_ratio`` = depth focal length / colour focal length in (0, 1]: each depth
    pixel lands on one colour pixel (nearest, after the ``registration_baseline`` metres of
    parallax along x), so colour rows and columns that no depth pixel reaches stay NaN, every
    1 / (1 - ratio) pixels (registered_sparse: 477.6 / 615.2 = 0.776, period 4.5; 1.0: no gaps).
    ``valid_fraction`` in (0, 1]: the chance that a bright surface facing the camera returns depth;
    it falls with the incidence angle (times cos) and on dark colour (down to 0.6x at black), and
    the dropped pixels come in blobs of a few pixels (registered_sparse: 0.9; 1.0: none).
    """

    model: str = 'none'
    seed: int = 0
    scale: float = 1.0
    min_range: Optional[float] = None
    max_range: Optional[float] = None
    dropouts: bool = True
    registration_ratio: Optional[float] = None
    registration_baseline: float = 0.0257
    valid_fraction: Optional[float] = None

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
        if not (0.0 < self.ratio <= 1.0):
            raise ConfigError(f'DepthNoise.registration_ratio: expected 0 < ratio <= 1, got {self.ratio}')
        if not (0.0 <= self.registration_baseline <= 0.5):
            raise ConfigError(f'DepthNoise.registration_baseline: expected 0 to 0.5 m, got '
                              f'{self.registration_baseline}')
        if not (0.0 < self.valid <= 1.0):
            raise ConfigError(f'DepthNoise.valid_fraction: expected 0 < fraction <= 1, got {self.valid}')

    @property
    def ranges(self):
        """The effective (min, max) valid range in metres."""
        default = {'none': (0.0, np.inf), 'kinect': (0.5, 4.5), 'realsense_d435': (0.2, 6.0),
                   'registered_sparse': (0.2, 2.0)}[self.model]
        return (default[0] if self.min_range is None else float(self.min_range),
                default[1] if self.max_range is None else float(self.max_range))

    @property
    def ratio(self) -> float:
        """The effective registration ratio (1.0: no registration gaps)."""
        if self.registration_ratio is not None:
            return float(self.registration_ratio)
        return _SR300_RATIO if self.model == 'registered_sparse' else 1.0

    @property
    def valid(self) -> float:
        """The effective valid fraction on a bright surface facing the camera (1.0: no such dropouts)."""
        if self.valid_fraction is not None:
            return float(self.valid_fraction)
        return _SR300_VALID if self.model == 'registered_sparse' else 1.0


_KINECT_BASELINE = 0.075
_D435_BASELINE = 0.05
_D435_FOCAL = 0.5 * 848 / np.tan(np.deg2rad(87.0) / 2)   # 447 px at 848x480
_D435_SUBPIXEL = 0.08
# Princeton APC shelf bin B (Intel SR300): depth fx 477.58 px registered onto colour fx 615.20 px.
_SR300_RATIO = 477.584259 / 615.195190
_SR300_VALID = 0.9
_DARK_FACTOR = 0.6      # validity on black relative to bright (APC objects: 0.31 dark vs 0.45 bright)


def apply_depth_noise(depth: np.ndarray, intrinsics: CameraIntrinsics, noise: DepthNoise,
                      frame_index: int = 0, color: Optional[np.ndarray] = None) -> np.ndarray:
    """Return a noisy copy of ``depth`` ((H, W) float32 metres, NaN invalid) as the sensor would see it.

    The draw is seeded by ``(noise.seed, frame_index)``. ``color``: the registered (H, W, 3) uint8
    image, used by ``valid_fraction`` < 1 (dark surfaces return less depth; None: all bright).
    Output: (H, W) float32 metres, NaN invalid.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise InputError(f'depth: expected (H, W) float32 metres, got {depth.shape} {depth.dtype}')
    intrinsics.check_image(depth.shape, 'depth image')
    out = depth.astype(np.float64)
    low, high = noise.ranges
    if noise.model == 'none' and noise.ratio == 1.0 and noise.valid == 1.0:
        out[(out < low) | (out > high)] = np.nan
        return out.astype(np.float32)
    rng = np.random.default_rng(np.random.SeedSequence([int(noise.seed), int(frame_index), 17]))
    valid = np.isfinite(out)
    z = np.where(valid, out, 1.0)
    drop = np.zeros(z.shape, bool)
    if noise.model == 'kinect':
        sigma = (0.0012 + 0.0019 * (z - 0.4) ** 2) * noise.scale
        z = z + sigma * rng.standard_normal(z.shape)
        fb = intrinsics.fx * _KINECT_BASELINE
        disparity = np.round(fb / np.maximum(z, 1e-3) * 8.0) / 8.0
        z = fb / np.maximum(disparity, 1e-6)
        if noise.dropouts:
            edges = _depth_edges(out, valid, 0.03)
            edges = _dilate(edges, 1)
            drop |= edges & (rng.uniform(size=z.shape) < 0.6)
            drop |= rng.uniform(size=z.shape) < 0.002
    elif noise.model != 'none':   # realsense_d435 and registered_sparse
        sigma = z ** 2 * _D435_SUBPIXEL / (_D435_FOCAL * _D435_BASELINE) * noise.scale
        white = rng.standard_normal(z.shape)
        smooth = _smooth_noise(rng, z.shape, 3.0)
        z = z + sigma * (0.5 * white + 0.866 * smooth)
        if noise.dropouts:
            drop |= _smooth_noise(rng, z.shape, 6.0) > 2.3    # ~1 % area in blobs
            drop |= _stereo_shadow(out, valid, intrinsics.fx * _D435_BASELINE)
            drop |= _dilate(_depth_edges(out, valid, 0.05), 1) & (rng.uniform(size=z.shape) < 0.3)
    if noise.valid < 1.0:
        drop |= _surface_dropouts(rng, out, valid, intrinsics, noise.valid, color)
    if noise.ratio < 1.0:
        drop |= ~_registration_hits(np.where(valid, out, np.inf), intrinsics, noise)
    z[~valid | drop] = np.nan
    z[(z < low) | (z > high)] = np.nan
    return z.astype(np.float32)


def _surface_dropouts(rng: np.random.Generator, depth: np.ndarray, valid: np.ndarray,
                      intrinsics: CameraIntrinsics, fraction: float, color: Optional[np.ndarray]) -> np.ndarray:
    """Pixels whose surface returns no depth: chance 1 - fraction * |cos incidence| * darkness factor, in blobs."""
    from scipy.special import ndtr
    from robot_vision.camera import deproject
    if color is not None and np.asarray(color).shape[:2] != depth.shape:
        raise InputError(f'color: expected ({depth.shape[0]}, {depth.shape[1]}, 3) like the depth, got '
                         f'{np.asarray(color).shape}')
    points = deproject(np.where(valid, depth, np.nan).astype(np.float32), intrinsics)
    normal = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    with np.errstate(invalid='ignore', divide='ignore'):
        cosine = np.abs(np.einsum('ijk,ijk->ij', normal, points)) / np.sqrt(
            np.einsum('ijk,ijk->ij', normal, normal) * np.einsum('ijk,ijk->ij', points, points))
    chance = fraction * np.nan_to_num(cosine, nan=1.0)      # depth edges: no normal, keep the base chance
    if color is not None:
        luma = np.asarray(color, np.float32)[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
        chance = chance * (_DARK_FACTOR + (1.0 - _DARK_FACTOR) * np.clip(luma / 0.25, 0.0, 1.0))
    # a unit Gaussian field above the chance's quantile: blobs that cover 1 - chance of the area
    return (ndtr(_smooth_noise(rng, depth.shape, 2.0)) > chance) & valid


def _registration_hits(depth: np.ndarray, intrinsics: CameraIntrinsics, noise: DepthNoise) -> np.ndarray:
    """Colour pixels that some depth pixel lands on when a coarser depth image is registered without filling.

    The depth camera (focal ``ratio`` times the colour one, ``registration_baseline`` metres along +x)
    samples column u_d = cx + ratio (u - cx) - f_d b / z and row v_d = cy + ratio (v - cy) at colour
    pixel (u, v); a pixel is hit when its rounded u_d (v_d) differs from its left (upper) neighbour's.
    Surfaces slanted along x change the column period through the parallax term, as on real data;
    colour pixels hidden from the depth camera by a nearer surface get no depth either.
    """
    h, w = depth.shape
    ratio = noise.ratio
    focal_baseline = ratio * intrinsics.fx * noise.registration_baseline
    finite = np.isfinite(depth)
    u = np.arange(w, dtype=np.float64)[None, :]
    column = np.round(intrinsics.cx + ratio * (u - intrinsics.cx) -
                      np.where(finite, focal_baseline / np.where(finite, depth, 1.0), 0.0))
    row = np.round(intrinsics.cy + ratio * (np.arange(h, dtype=np.float64) - intrinsics.cy))
    hits = np.ones(depth.shape, bool)
    hits[:, 1:] &= column[:, 1:] != column[:, :-1]
    hits[1:, :] &= (row[1:] != row[:-1])[:, None]
    if focal_baseline > 0:
        hits &= ~_stereo_shadow(np.where(finite, depth, 0.0), finite, focal_baseline)
    return hits


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
