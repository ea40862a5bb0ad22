"""Shared tracker machinery: stamp checks, Kalman prediction, gated Hungarian assignment and lifecycle.

Both :class:`~robot_vision.tracking.Tracker` (3D, fixed frame) and
:class:`~robot_vision.tracking.Tracker2D` (image space) derive from :class:`TrackerBase`; they only
supply the measurement model, the association cost and the per-track attributes they keep.

Tracks are stored as a struct of arrays (one row per live track) so every step is vectorised
across tracks; rows are removed with boolean masks and appended with concatenation.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from robot_vision.errors import InputError
from robot_vision.tracking import kalman
from robot_vision.tracking.settings import LifecycleSettings
from robot_vision.types import TrackState

logger = logging.getLogger('robot_vision.tracking')

_INVALID_COST = 1e9


def assign(cost: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Optimal assignment of rows (tracks) to columns (observations) among the ``valid`` pairs.

    ``cost`` and ``valid`` are (T, N); gated-out pairs never match. Maximises the number of valid
    matches first, then minimises the summed cost (scipy's Hungarian solver). Returns the matched
    row and column indices, (M,) int64 each.
    """
    empty = np.zeros(0, np.int64)
    if cost.size == 0 or not valid.any():
        return empty, empty
    rows = np.flatnonzero(valid.any(axis=1))
    cols = np.flatnonzero(valid.any(axis=0))
    sub_valid = valid[np.ix_(rows, cols)]
    sub = np.where(sub_valid, cost[np.ix_(rows, cols)], _INVALID_COST)
    r, c = linear_sum_assignment(sub)
    ok = sub_valid[r, c]
    return rows[r[ok]].astype(np.int64), cols[c[ok]].astype(np.int64)


class TrackerBase:
    """Lifecycle, stamps, prediction and assignment shared by the 3D and 2D trackers.

    Subclasses set ``_DIM`` (measured position dimensions) and ``_ORDER`` (1: constant velocity,
    2: constant acceleration) and implement the hooks below.
    """

    _DIM = 3
    _ORDER = 1

    def __init__(self, settings: LifecycleSettings) -> None:
        self._settings = settings
        self._next_id = 1
        self.reset()

    # ------------------------------------------------------------------ public API
    @property
    def settings(self) -> LifecycleSettings:
        """The settings this tracker was built with."""
        return self._settings

    @property
    def stamp(self) -> Optional[float]:
        """Stamp (s) of the last accepted update, or None before the first one."""
        return self._stamp

    def __len__(self) -> int:
        """Number of live tracks, tentative ones included."""
        return len(self._cols['id'])

    def reset(self) -> None:
        """Drop every track and the stamp history; ids already handed out are never reused."""
        self._cols: Dict[str, np.ndarray] = self._empty_columns()
        self._stamp: Optional[float] = None
        #: Why the last ``update``/``predict`` call was rejected, or None when it was accepted.
        self.rejected_reason: Optional[str] = None
        #: Ids of the tracks deleted (timed out) by the last accepted ``update``, (K,) int64.
        self.deleted_ids = np.zeros(0, np.int64)
        #: Per observation of the last ``update``, the id of the track it updated or started,
        #: (N,) int64; -1 where it did neither (or the update was rejected).
        self.assigned_ids = np.zeros(0, np.int64)

    def tracks(self, include_tentative: bool = False):
        """The live tracks at the last accepted stamp: confirmed and coasting (and tentative if asked)."""
        mask = np.ones(len(self), bool) if include_tentative else self._cols['state'] != TrackState.TENTATIVE
        return self._output(mask, self._cols['x'], self._cols['P'])

    def predict(self, stamp: float, include_tentative: bool = False):
        """The live tracks extrapolated to ``stamp`` (s); the tracker's state is NOT changed.

        Tracks whose timeout would have passed by ``stamp`` are left out. A ``stamp`` earlier than
        the last accepted update is rejected: a warning is logged, ``rejected_reason`` is set and
        the tracks at the last stamp are returned.
        """
        stamp = self._check_stamp_value(stamp)
        if self._stamp is not None and stamp < self._stamp:
            self._reject(f'predict: stamp {stamp:.6f} is earlier than the last update '
                         f'{self._stamp:.6f}; returning the tracks at the last update')
            return self.tracks(include_tentative)
        self.rejected_reason = None
        dt = 0.0 if self._stamp is None else stamp - self._stamp
        x, P = self._predicted(dt)
        mask = ~self._expired(stamp)
        if not include_tentative:
            mask &= self._cols['state'] != TrackState.TENTATIVE
        return self._output(mask, x, P)

    # ------------------------------------------------------------------ the update step
    def _update(self, obs: Any, stamp: float):
        stamp = self._check_stamp_value(stamp)
        obs = self._coerce(obs)
        if self._stamp is not None and stamp <= self._stamp:
            kind = 'duplicate' if stamp == self._stamp else 'out-of-order'
            self._reject(f'update: {kind} stamp {stamp:.6f} (last accepted {self._stamp:.6f}); '
                         f'observations ignored, tracker state unchanged')
            self.assigned_ids = np.full(len(obs), -1, np.int64)
            return self.tracks()
        self.rejected_reason = None
        s = self._settings
        dt = 0.0 if self._stamp is None else stamp - self._stamp
        self._cols['x'], self._cols['P'] = self._predicted(dt)

        n_tracks, n_obs = len(self), len(obs)
        z = self._measurements(obs)
        obs_class = obs.class_id
        rows = cols = np.zeros(0, np.int64)
        if n_tracks and n_obs:
            cost, valid = self._association(obs, z)
            if s.class_consistent:
                track_class = self._cols['class_id']
                valid &= ((track_class[:, None] == obs_class[None, :]) | (track_class[:, None] < 0)
                          | (obs_class[None, :] < 0))
            rows, cols = assign(cost, valid)

        c = self._cols
        if len(rows):
            c['x'][rows], c['P'][rows] = kalman.update(c['x'][rows], c['P'][rows], z[cols], self._R)
            self._update_attributes(rows, obs, cols)
            unknown = c['class_id'][rows] < 0
            c['class_id'][rows[unknown]] = obs_class[cols[unknown]]
            a = s.confidence_smoothing
            c['confidence'][rows] = (1 - a) * c['confidence'][rows] + a * obs.confidence[cols]
            c['hits'][rows] += 1
            c['last_seen'][rows] = stamp
        matched = np.zeros(n_tracks, bool)
        matched[rows] = True
        confirmed = c['hits'] >= s.confirm_hits
        c['state'][matched & confirmed] = TrackState.CONFIRMED
        c['state'][~matched & (c['state'] == TrackState.CONFIRMED)] = TrackState.COASTING

        self.assigned_ids = np.full(n_obs, -1, np.int64)
        self.assigned_ids[cols] = c['id'][rows]
        spawned, spawned_ids = self._spawn(obs, z, cols, stamp)
        self.assigned_ids[spawned] = spawned_ids
        # Expire after association, so that a slow frame rate never deletes a track that this very
        # update observed again (matched and new tracks have last_seen == stamp).
        expired = self._expired(stamp)
        self.deleted_ids = self._cols['id'][expired].copy()
        if expired.any():
            self._keep(~expired)
        self._after_update()
        self._stamp = stamp
        return self.tracks()

    def _spawn(self, obs: Any, z: np.ndarray, matched_cols: np.ndarray,
               stamp: float) -> Tuple[np.ndarray, np.ndarray]:
        """Start tentative tracks from unmatched observations; returns their indices and new ids."""
        s = self._settings
        free = np.ones(len(obs), bool)
        free[matched_cols] = False
        free &= obs.confidence >= s.spawn_min_confidence
        idx = np.flatnonzero(free)
        room = s.max_tracks - len(self)
        if len(idx) > room:
            logger.debug('max_tracks=%d reached: %d observations start no track', s.max_tracks,
                         len(idx) - max(room, 0))
            idx = idx[np.argsort(-obs.confidence[idx], kind='stable')[:max(room, 0)]]
            idx.sort()
        if len(idx) == 0:
            return idx, np.zeros(0, np.int64)
        n = len(idx)
        new = self._new_columns(obs, z, idx)
        new['id'] = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        new['state'] = np.full(n, TrackState.CONFIRMED if s.confirm_hits <= 1 else TrackState.TENTATIVE,
                               np.int8)
        new['hits'] = np.ones(n, np.int32)
        new['first_seen'] = np.full(n, stamp)
        new['last_seen'] = np.full(n, stamp)
        new['class_id'] = obs.class_id[idx].astype(np.int32)
        new['confidence'] = obs.confidence[idx].astype(np.float32)
        self._cols = {k: np.concatenate([v, new[k]], axis=0) for k, v in self._cols.items()}
        return idx, new['id']

    # ------------------------------------------------------------------ helpers
    def _check_stamp_value(self, stamp: float) -> float:
        try:
            stamp = float(stamp)
        except (TypeError, ValueError) as exc:
            raise InputError(f'stamp: expected seconds as a float, got {stamp!r}') from exc
        if not np.isfinite(stamp):
            raise InputError(f'stamp: expected finite seconds, got {stamp}')
        return stamp

    def _reject(self, reason: str) -> None:
        self.rejected_reason = reason
        logger.warning('%s: %s', type(self).__name__, reason)

    def _predicted(self, dt: float) -> Tuple[np.ndarray, np.ndarray]:
        x, P = self._cols['x'], self._cols['P']
        if dt <= 0 or len(x) == 0:
            return x.copy(), P.copy()
        F, Q = kalman.motion_model(self._DIM, self._ORDER, dt, self._settings.process_noise)
        return kalman.predict(x, P, F, Q)

    def _expired(self, stamp: float) -> np.ndarray:
        s = self._settings
        age = stamp - self._cols['last_seen']
        tentative = self._cols['state'] == TrackState.TENTATIVE
        return np.where(tentative, age > s.tentative_timeout, age > s.coast_timeout)

    def _keep(self, mask: np.ndarray) -> None:
        self._cols = {k: v[mask] for k, v in self._cols.items()}

    def _empty_columns(self) -> Dict[str, np.ndarray]:
        n_state = self._DIM * (self._ORDER + 1)
        columns = {
            'id': np.zeros(0, np.int64), 'x': np.zeros((0, n_state)), 'P': np.zeros((0, n_state, n_state)),
            'state': np.zeros(0, np.int8), 'hits': np.zeros(0, np.int32), 'first_seen': np.zeros(0),
            'last_seen': np.zeros(0), 'class_id': np.zeros(0, np.int32),
            'confidence': np.zeros(0, np.float32),
        }
        columns.update(self._empty_extra())
        return columns

    def _initial_state(self, z: np.ndarray, stds: Tuple[float, ...]) -> Tuple[np.ndarray, np.ndarray]:
        """New-track states (n, S) at the measured positions, covariance diag of ``stds`` per block."""
        n, dim = z.shape
        n_state = dim * (self._ORDER + 1)
        x = np.zeros((n, n_state))
        x[:, :dim] = z
        variances = np.repeat(np.square(np.asarray(stds[:self._ORDER + 1], np.float64)), dim)
        P = np.broadcast_to(np.diag(variances), (n, n_state, n_state)).copy()
        return x, P

    # ------------------------------------------------------------------ hooks for subclasses
    _R: np.ndarray

    def _empty_extra(self) -> Dict[str, np.ndarray]:
        """Empty arrays of the subclass's own per-track columns."""
        return {}

    def _coerce(self, obs: Any) -> Any:
        """Validate the observations of one frame (raise InputError) and return them."""
        raise NotImplementedError

    def _measurements(self, obs: Any) -> np.ndarray:
        """Measured positions (N, D) of the observations."""
        raise NotImplementedError

    def _association(self, obs: Any, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Cost (T, N) and validity mask (T, N) of every track-observation pair (before class gating)."""
        raise NotImplementedError

    def _update_attributes(self, rows: np.ndarray, obs: Any, cols: np.ndarray) -> None:
        """Blend the matched observations' attributes (size, yaw, box...) into the tracks."""

    def _new_columns(self, obs: Any, z: np.ndarray, idx: np.ndarray) -> Dict[str, np.ndarray]:
        """Columns ``x``, ``P`` and the subclass's own ones for new tracks from observations ``idx``."""
        raise NotImplementedError

    def _after_update(self) -> None:
        """Anything to refresh once per accepted update (e.g. the moving flag)."""

    def _output(self, mask: np.ndarray, x: np.ndarray, P: np.ndarray):
        """Build the public result from the rows in ``mask`` with states ``x`` and covariances ``P``."""
        raise NotImplementedError


class TrackerFacade:
    """The public tracker API shared by :class:`Tracker` and :class:`Tracker2D`.

    Subclasses set ``_SETTINGS`` (the settings type) and ``_CORE`` (the TrackerBase subclass) and
    define ``update`` with their own observation type; everything else delegates to the core.
    """

    _SETTINGS: Any = None
    _CORE: Any = None

    def __init__(self, settings: Any = None) -> None:
        settings = self._SETTINGS() if settings is None else settings
        if not isinstance(settings, self._SETTINGS):
            raise InputError(f'settings: expected {self._SETTINGS.__name__}, got {type(settings).__name__}')
        self._core = self._CORE(settings)

    @property
    def settings(self) -> Any:
        """The settings this tracker was built with."""
        return self._core.settings

    @property
    def stamp(self) -> Optional[float]:
        """Stamp (s) of the last accepted update, or None before the first one."""
        return self._core.stamp

    @property
    def rejected_reason(self) -> Optional[str]:
        """Why the last ``update``/``predict`` was rejected (out-of-order/duplicate stamp), else None."""
        return self._core.rejected_reason

    @property
    def deleted_ids(self) -> np.ndarray:
        """Ids (K,) int64 of the tracks deleted by the last accepted update (timed out)."""
        return self._core.deleted_ids

    @property
    def assigned_ids(self) -> np.ndarray:
        """Per observation of the last ``update``: id of the track it updated or started, else -1; (N,) int64."""
        return self._core.assigned_ids

    def __len__(self) -> int:
        """Number of live tracks, tentative ones included."""
        return len(self._core)

    def predict(self, stamp: float, include_tentative: bool = False) -> Any:
        """The tracks extrapolated to ``stamp`` (s) without changing the tracker (e.g. for faster output)."""
        return self._core.predict(stamp, include_tentative)

    def tracks(self, include_tentative: bool = False) -> Any:
        """The live tracks at the last accepted stamp (confirmed and coasting, plus tentative if asked)."""
        return self._core.tracks(include_tentative)

    def reset(self) -> None:
        """Drop every track and the stamp history; ids already handed out are never reused."""
        self._core.reset()
