"""Batched linear Kalman filter for constant-velocity / constant-acceleration motion in D dimensions.

State layout per track (``S = D * (order + 1)`` entries): ``[p_0..p_{D-1}, v_0..v_{D-1}]`` for the
constant-velocity model (``order=1``) and ``[p, v, a]`` for constant acceleration (``order=2``).
All functions work on stacks of tracks: ``x`` is (T, S) and ``P`` is (T, S, S), float64.
The measurement is the position block: ``z = H x`` with ``H = [I_D 0 ...]``.
"""

from __future__ import annotations

from math import factorial
from typing import Tuple

import numpy as np


def motion_model(dim: int, order: int, dt: float, q: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return the transition ``F`` (S, S) and process noise ``Q`` (S, S) for a step of ``dt`` seconds.

    ``q`` is the spectral density of the white-noise driving term: acceleration for ``order=1``
    (units m^2/s^3, or px^2/s^3 in image space), jerk for ``order=2`` (m^2/s^5). ``Q`` is the
    exact discretisation of that continuous model, so it scales correctly with irregular ``dt``.
    """
    n = order + 1
    f1 = np.zeros((n, n))
    q1 = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            f1[i, j] = dt ** (j - i) / factorial(j - i)
    # Q1[i, j] = integral_0^dt  g_i(s) g_j(s) ds, with g_k(s) = s^(order-k) / (order-k)!.
    for i in range(n):
        for j in range(n):
            a, b = order - i, order - j
            q1[i, j] = dt ** (a + b + 1) / ((a + b + 1) * factorial(a) * factorial(b))
    eye = np.eye(dim)
    return np.kron(f1, eye), q * np.kron(q1, eye)


def predict(x: np.ndarray, P: np.ndarray, F: np.ndarray, Q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Propagate states (T, S) and covariances (T, S, S) through ``F`` and add ``Q``; returns new arrays."""
    if len(x) == 0:
        return x.copy(), P.copy()
    x_new = x @ F.T
    P_new = F @ P @ F.T + Q
    return x_new, P_new


def innovation_stats(x: np.ndarray, P: np.ndarray, R: np.ndarray,
                     z: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Innovation statistics of every track against every measurement.

    ``x`` (T, S), ``P`` (T, S, S), ``R`` (D, D) measurement covariance, ``z`` (N, D).
    Returns ``d2`` (T, N) squared Mahalanobis distances, ``logdet`` (T,) log-determinants of the
    innovation covariances ``S_t = H P_t H^T + R`` and ``diff`` (T, N, D) the residuals ``z - H x``.
    """
    dim = z.shape[1]
    S = P[:, :dim, :dim] + R
    S_inv = np.linalg.inv(S)
    diff = z[None, :, :] - x[:, None, :dim]
    d2 = np.einsum('tni,tij,tnj->tn', diff, S_inv, diff, optimize=False)
    _, logdet = np.linalg.slogdet(S)
    return d2, logdet, diff


def update(x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Kalman update of M tracks with one measurement each: ``x`` (M, S), ``P`` (M, S, S), ``z`` (M, D).

    ``R`` is the (D, D) measurement covariance. Uses the Joseph form so ``P`` stays symmetric
    positive semi-definite. Returns new arrays.
    """
    if len(x) == 0:
        return x.copy(), P.copy()
    dim = z.shape[1]
    n_state = x.shape[1]
    S = P[:, :dim, :dim] + R
    PHt = P[:, :, :dim]
    K = np.linalg.solve(S, np.swapaxes(PHt, 1, 2))  # (M, D, S) = S^-1 H P
    K = np.swapaxes(K, 1, 2)                        # (M, S, D) = P H^T S^-1
    x_new = x + np.einsum('msd,md->ms', K, z - x[:, :dim])
    H = np.zeros((dim, n_state))
    H[:, :dim] = np.eye(dim)
    A = np.eye(n_state) - K @ H
    P_new = A @ P @ np.swapaxes(A, 1, 2) + K @ R @ np.swapaxes(K, 1, 2)
    P_new = 0.5 * (P_new + np.swapaxes(P_new, 1, 2))
    return x_new, P_new
