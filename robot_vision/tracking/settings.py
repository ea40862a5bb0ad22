"""Settings dataclasses of the 3D and 2D trackers (frozen, validated, with units)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from robot_vision.errors import ConfigError


def _check(name: str, value: float, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f'{name}: expected {expected}, got {value!r}')


@dataclass(frozen=True)
class LifecycleSettings:
    """Track lifecycle shared by :class:`TrackerSettings` and :class:`Tracker2DSettings`.

    Attributes:
        confirm_hits: matched observations a tentative track needs to become confirmed.
        coast_timeout: seconds a confirmed track may go unseen (coasting, still matchable, so it
            is re-identified after a short occlusion) before it is deleted.
        tentative_timeout: seconds a tentative track may go unseen before it is deleted.
        class_consistent: when True an observation may only match a track of the same class
            (class_id -1 on either side matches anything).
        max_tracks: upper bound on live tracks; surplus new observations (lowest confidence
            first) start no track.
        spawn_min_confidence: observations below this confidence update tracks but start none.
        confidence_smoothing: weight in (0, 1] of a new observation's confidence in the track's
            exponential moving average.

    """

    confirm_hits: int = 3
    coast_timeout: float = 1.5
    tentative_timeout: float = 0.35
    class_consistent: bool = True
    max_tracks: int = 1000
    spawn_min_confidence: float = 0.0
    confidence_smoothing: float = 0.3

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                _check(f.name, value, isinstance(value, (bool, np.bool_)), 'a bool')
            elif isinstance(f.default, (int, float)):
                number = (isinstance(value, (int, float, np.integer, np.floating))
                          and not isinstance(value, bool))
                _check(f.name, value, number and bool(np.isfinite(value)), 'a finite number')
        _check('confirm_hits', self.confirm_hits,
               isinstance(self.confirm_hits, (int, np.integer)) and self.confirm_hits >= 1,
               'an integer >= 1')
        _check('coast_timeout', self.coast_timeout, self.coast_timeout >= 0, 'seconds >= 0')
        _check('tentative_timeout', self.tentative_timeout, self.tentative_timeout >= 0, 'seconds >= 0')
        _check('max_tracks', self.max_tracks,
               isinstance(self.max_tracks, (int, np.integer)) and self.max_tracks >= 1, 'an integer >= 1')
        _check('spawn_min_confidence', self.spawn_min_confidence, 0 <= self.spawn_min_confidence <= 1,
               'a value in [0, 1]')
        _check('confidence_smoothing', self.confidence_smoothing, 0 < self.confidence_smoothing <= 1,
               'a value in (0, 1]')


@dataclass(frozen=True)
class TrackerSettings(LifecycleSettings):
    """Settings of the 3D :class:`~robot_vision.tracking.Tracker` (fixed frame, metres, seconds).

    Attributes (plus those of :class:`LifecycleSettings`):
        process_noise: spectral density of the white-noise acceleration (m^2/s^3) of the
            constant-velocity model; of the white-noise jerk (m^2/s^5) when
            ``constant_acceleration``. Larger follows manoeuvres faster, smooths less.
        measurement_noise: standard deviation of an observed position, per axis (m).
        initial_velocity_std: standard deviation of the velocity of a new track (m/s).
        initial_acceleration_std: standard deviation of the acceleration of a new track (m/s^2),
            used only with ``constant_acceleration``.
        constant_acceleration: use a constant-acceleration model (9 states) instead of
            constant velocity (6 states).
        gate_chi2: gate on the squared Mahalanobis distance of an observation to a track's
            predicted position (3 degrees of freedom; 11.34 keeps 99 % of true matches).
        max_match_distance: hard Euclidean gate (m), so a long-coasting track with a wide
            covariance cannot grab an observation far away.
        iou_weight: weight of the 2D IoU cue in the assignment cost (used only when both the
            observation and the track carry an image box; 0 disables it).
        moving_enter_speed: speed (m/s) above which a track is flagged moving.
        moving_leave_speed: speed (m/s) below which a moving track is flagged static again
            (hysteresis; must not exceed ``moving_enter_speed``).
        moving_min_sigma: to be flagged moving the speed must also exceed this many standard
            deviations of the velocity estimate along its direction (keeps fresh, uncertain
            tracks static); 0 disables the check.
        size_smoothing: weight in (0, 1] of a new observation in the box-size average.
        yaw_smoothing: weight in (0, 1] of a new observation in the yaw average.
        yaw_period: symmetry period of the observed yaw (rad); pi for boxes whose x axis is
            only defined up to sign, 2 pi for a true heading.

    """

    process_noise: float = 0.1
    measurement_noise: float = 0.06
    initial_velocity_std: float = 1.5
    initial_acceleration_std: float = 1.0
    constant_acceleration: bool = False
    gate_chi2: float = 11.34
    max_match_distance: float = 2.0
    iou_weight: float = 0.0
    moving_enter_speed: float = 0.3
    moving_leave_speed: float = 0.15
    moving_min_sigma: float = 3.0
    size_smoothing: float = 0.3
    yaw_smoothing: float = 0.3
    yaw_period: float = float(np.pi)

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        super().__post_init__()
        for name in ('process_noise', 'measurement_noise', 'initial_velocity_std',
                     'initial_acceleration_std', 'gate_chi2', 'max_match_distance', 'yaw_period'):
            value = getattr(self, name)
            _check(name, value, value > 0, 'a value > 0')
        _check('iou_weight', self.iou_weight, self.iou_weight >= 0, 'a value >= 0')
        _check('moving_min_sigma', self.moving_min_sigma, self.moving_min_sigma >= 0, 'a value >= 0')
        _check('moving_leave_speed', self.moving_leave_speed, self.moving_leave_speed >= 0, 'm/s >= 0')
        _check('moving_enter_speed', self.moving_enter_speed,
               self.moving_enter_speed >= self.moving_leave_speed,
               f'm/s >= moving_leave_speed ({self.moving_leave_speed})')
        for name in ('size_smoothing', 'yaw_smoothing'):
            value = getattr(self, name)
            _check(name, value, 0 < value <= 1, 'a value in (0, 1]')


@dataclass(frozen=True)
class Tracker2DSettings(LifecycleSettings):
    """Settings of the image-space :class:`~robot_vision.tracking.Tracker2D` (pixels, seconds).

    Attributes (plus those of :class:`LifecycleSettings`):
        process_noise: spectral density of the white-noise acceleration of the box centre
            (px^2/s^3).
        measurement_noise: standard deviation of an observed box centre, per axis (px).
        initial_velocity_std: standard deviation of the centre velocity of a new track (px/s).
        iou_threshold: minimum IoU between a track's predicted box and a detection to match.
        size_smoothing: weight in (0, 1] of a new detection in the box width/height average.

    """

    process_noise: float = 2000.0
    measurement_noise: float = 4.0
    initial_velocity_std: float = 200.0
    iou_threshold: float = 0.1
    size_smoothing: float = 0.4

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the field, expected and actual value."""
        super().__post_init__()
        for name in ('process_noise', 'measurement_noise', 'initial_velocity_std'):
            value = getattr(self, name)
            _check(name, value, value > 0, 'a value > 0')
        _check('iou_threshold', self.iou_threshold, 0 <= self.iou_threshold < 1, 'a value in [0, 1)')
        _check('size_smoothing', self.size_smoothing, 0 < self.size_smoothing <= 1, 'a value in (0, 1]')
