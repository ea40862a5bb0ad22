"""The 'registered_sparse' depth noise: registration gaps, surface-dependent dropouts, seeds, real APC statistics."""

import json

import numpy as np
import pytest

from robot_vision.errors import ConfigError, InputError
from robot_vision.sim import DepthNoise, apply_depth_noise
from robot_vision.sim.depth_stats import depth_validity_stats, gap_periods, real_apc_stats, sim_stats
from robot_vision.sim.noise import NOISE_MODELS
from robot_vision.types import CameraIntrinsics

K = CameraIntrinsics(fx=520.0, fy=520.0, cx=319.5, cy=239.5, width=640, height=480)
BRIGHT = np.full((480, 640, 3), 200, np.uint8)


def _plane(z=0.8):
    return np.full((480, 640), z, np.float32)


def _bumpy():
    v, u = np.mgrid[0:480, 0:640]
    depth = 0.6 + 0.2 * u / 640 + 0.02 * np.sin(v / 15.0)
    depth[100:200, 300:420] -= 0.15    # a box in front
    return depth.astype(np.float32)


def test_registered_sparse_is_a_noise_model_with_measured_defaults():
    assert 'registered_sparse' in NOISE_MODELS
    noise = DepthNoise('registered_sparse')
    assert noise.ratio == pytest.approx(477.584259 / 615.195190)
    assert 0.0 < noise.valid < 1.0 and noise.ranges == (0.2, 2.0)
    for model in ('none', 'kinect', 'realsense_d435'):   # the options are off for the other models
        assert (DepthNoise(model).ratio, DepthNoise(model).valid) == (1.0, 1.0)


@pytest.mark.parametrize('model', ['none', 'kinect', 'realsense_d435'])
def test_options_at_one_leave_the_other_models_unchanged(model):
    depth = _bumpy()
    default = apply_depth_noise(depth, K, DepthNoise(model, seed=5), 2, BRIGHT)
    explicit = apply_depth_noise(depth, K, DepthNoise(model, seed=5, registration_ratio=1.0, valid_fraction=1.0), 2)
    np.testing.assert_array_equal(default, explicit)


def test_deterministic_per_seed_and_frame():
    depth = _bumpy()
    draw = [apply_depth_noise(depth, K, DepthNoise('registered_sparse', seed=s), f, BRIGHT)
            for s, f in ((1, 0), (1, 0), (2, 0), (1, 1))]
    np.testing.assert_array_equal(draw[0], draw[1])
    assert not np.array_equal(np.isnan(draw[0]), np.isnan(draw[2]))
    assert not np.array_equal(np.isnan(draw[0]), np.isnan(draw[3]))


def test_sparse_is_d435_errors_plus_dropouts():
    """Where registered_sparse keeps a pixel, it holds realsense_d435's value of the same draw."""
    depth = _bumpy()
    d435 = apply_depth_noise(depth, K, DepthNoise('realsense_d435', seed=3), 0)
    sparse = apply_depth_noise(depth, K, DepthNoise('registered_sparse', seed=3), 0, BRIGHT)
    kept = np.isfinite(sparse)
    assert 0.2 < kept.mean() < 0.6
    np.testing.assert_array_equal(sparse[kept], d435[kept])


def test_registration_gaps_are_whole_rows_and_columns_at_the_set_period():
    ratio = 0.75                                    # every 4th row and column is empty
    noise = DepthNoise('none', registration_ratio=ratio, registration_baseline=0.0)
    out = apply_depth_noise(_plane(), K, noise)
    valid = np.isfinite(out)
    empty_rows, empty_cols = ~valid.any(1), ~valid.any(0)
    assert np.array_equal(valid, ~empty_rows[:, None] & ~empty_cols[None, :])    # gaps are whole lines
    assert empty_rows.mean() == pytest.approx(1 - ratio, abs=0.01)
    assert empty_cols.mean() == pytest.approx(1 - ratio, abs=0.01)
    assert set(np.diff(np.flatnonzero(empty_rows))) == {4}
    assert gap_periods(valid).mean() == pytest.approx(4.0) and gap_periods(valid.T).mean() == pytest.approx(4.0)
    np.testing.assert_array_equal(out[valid], np.float32(0.8))   # what stays is the input depth


def test_parallax_makes_the_column_period_follow_the_slant():
    """Depth rising to the right stretches the column spacing (as on the real APC book covers); falling shrinks it."""
    u = np.arange(640, dtype=np.float32)[None, :].repeat(480, 0)
    periods = {}
    for name, depth in (('flat', _plane(0.5)), ('rising', 0.4 + 0.4 * u / 640), ('falling', 0.8 - 0.4 * u / 640)):
        noise = DepthNoise('none', registration_ratio=0.776)
        periods[name] = gap_periods(np.isfinite(apply_depth_noise(depth.astype(np.float32), K, noise))).mean()
    assert periods['flat'] == pytest.approx(1 / (1 - 0.776), abs=0.15)
    assert periods['rising'] > periods['flat'] + 0.2 and periods['falling'] < periods['flat'] - 0.2


def test_valid_fraction_on_a_bright_plane_and_less_on_dark_and_grazing_surfaces():
    noise = DepthNoise('none', valid_fraction=0.5, seed=0)
    facing = np.isfinite(apply_depth_noise(_plane(), K, noise, 0, BRIGHT)).mean()
    v, u = np.mgrid[0:480, 0:640]
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(u.shape)], -1)
    cosine = 1.0 / np.linalg.norm(rays, axis=-1)                       # the plane's normal is the optical axis
    assert facing == pytest.approx(0.5 * cosine.mean(), abs=0.03)
    dark = np.isfinite(apply_depth_noise(_plane(), K, noise, 0, np.zeros_like(BRIGHT))).mean()
    assert dark == pytest.approx(0.6 * facing, abs=0.03)
    # a floor seen at 15 deg (normal n, n . P = 0.2 m): the incidence is grazing
    n = np.array([0.0, np.cos(np.deg2rad(15)), np.sin(np.deg2rad(15))])
    along = rays @ n
    floor = np.where(along > 0.05, 0.2 / np.where(along > 0.05, along, 1.0), np.nan).astype(np.float32)
    hit = np.isfinite(floor)
    grazing = np.isfinite(apply_depth_noise(floor, K, noise, 0, BRIGHT))[hit].mean()
    expected = 0.5 * (along * cosine)[hit].mean()                    # |cos incidence| = n . ray / |ray|
    assert grazing == pytest.approx(expected, abs=0.04) and grazing < 0.6 * facing


def test_dropped_pixels_are_nan_and_out_of_range_too():
    depth = _bumpy()
    depth[0:20] = np.nan
    depth[20:40] = 3.0                               # beyond registered_sparse's 2 m
    out = apply_depth_noise(depth, K, DepthNoise('registered_sparse', seed=1), 0, BRIGHT)
    assert out.dtype == np.float32 and np.isnan(out[:40]).all()
    finite = np.isfinite(out)
    assert np.all((out[finite] >= 0.2) & (out[finite] <= 2.0))
    assert np.nanmax(np.abs(out - depth)) < 0.02   # kept pixels carry only the sensor's small error


@pytest.mark.parametrize('kwargs', [{'registration_ratio': 0.0}, {'registration_ratio': 1.2},
                                    {'valid_fraction': 0.0}, {'valid_fraction': 1.5},
                                    {'registration_baseline': -0.01}])
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        DepthNoise('registered_sparse', **kwargs)


def test_colour_of_another_size_is_rejected():
    with pytest.raises(InputError, match='color'):
        apply_depth_noise(_plane(), K, DepthNoise('registered_sparse'), 0, BRIGHT[:10])


def test_stats_of_a_known_pattern():
    depth = _plane()
    depth[:, 3::4] = np.nan
    labels = np.zeros(depth.shape, np.int32)
    labels[:, :320] = 1
    stats = depth_validity_stats(depth, labels)
    assert stats['valid'] == pytest.approx(0.75) and stats['valid_objects'] == pytest.approx(0.75)
    assert stats['column_period'] == pytest.approx(4.0) and stats['gaps_y'] == 0


def test_sim_shelf_is_about_as_sparse_as_the_real_apc_shelf(shared_data):
    """The defaults were set from these frames: the simulated shelf must stay near them."""
    if not (shared_data / 'real_clutter' / 'apc_shelf_bin_b').is_dir():
        pytest.skip('../shared/data/real_clutter/apc_shelf_bin_b is absent in this checkout')
    real = real_apc_stats()
    assert real['valid'] == pytest.approx(0.27, abs=0.02)
    assert real['valid_objects'] > real['valid_background'] + 0.1
    assert 3.8 < real['column_period'] < 4.4 and 3.9 < real['row_period'] < 4.5
    sim = sim_stats('registered_sparse', 4, 'shelf')
    assert sim['valid'] == pytest.approx(real['valid'], abs=0.05)
    assert sim['valid_background'] == pytest.approx(real['valid_background'], abs=0.05)
    assert sim['valid_objects'] == pytest.approx(real['valid_objects'], abs=0.12)
    assert sim['column_period'] == pytest.approx(real['column_period'], abs=0.5)
    assert sim['row_period'] == pytest.approx(real['row_period'], abs=0.5)
    dense = sim_stats('realsense_d435', 2, 'shelf')
    assert dense['valid'] > 0.8    # the old model: far denser than the real sensor


def test_sim_eval_runs_with_the_sparse_noise(tmp_path):
    from robot_vision.cli import main
    out = tmp_path / 'eval'
    assert main(['sim-eval', '--scenes', '1', '--noise', 'registered_sparse', '--container', 'shelf',
                 '--clutter', 'clutter', '--no-grasping', '--quiet', '--out', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['settings']['noise'] == 'registered_sparse' and report['frames_rendered'] == 1
    assert 'Depth noise: `registered_sparse`' in (out / 'report.md').read_text()
