"""The a-posteriori variance factor of a pose estimate from its RANSAC inliers' residuals
(photogrammetry's variance of unit weight; Foerstner & Wrobel, "Photogrammetric Computer
Vision", 2016), corrected for the truncation at the RANSAC threshold. Shared by the PnP
(pnp.py) and two-view (geometry.py) covariances; no other verification module is imported here."""
from __future__ import annotations

from math import erf as _erf

import numpy as np

erf = np.vectorize(_erf)
MIN_VARIANCE_FACTOR = 1.0  # k never below 1: never more confident than the a-priori keypoint sigmas


def truncated_mean(a: np.ndarray, dof: int) -> np.ndarray:
    """E[x | x <= a] for x ~ chi-square with dof 1 or 2 (a residual's normalised square, cut at a)."""
    a = np.maximum(np.asarray(a, np.float64), 1e-12)
    if dof == 2:  # chi2_2 is exponential with mean 2
        return 2.0 - a / np.expm1(np.minimum(a, 1400.0) / 2)  # beyond: 2 (and no overflow)
    s = np.sqrt(a)  # chi2_1: x = z^2, z standard normal cut at |z| <= s
    return 1.0 - 2.0 * s * np.exp(-a / 2) / np.sqrt(2 * np.pi) / np.maximum(erf(s / np.sqrt(2)), 1e-300)


def variance_factor(x: np.ndarray, bound: np.ndarray, dof: int, n_params: int) -> float:
    """A-posteriori variance factor k from normalised squared residuals x_i = r_i^T Q_i^-1 r_i of
    inliers that RANSAC kept only where x_i <= bound_i / k (its pixel threshold in Q_i's units): the
    kept residuals are a truncated sample, whose mean is below dof * k. k solves
    sum x_i = k (m - p)/m sum E[chi2_dof | <= bound_i / k] (moment matching; fixed point from the
    untruncated sum x / (m - p), which only grows). When the residuals fill the threshold as a
    uniform sample would, no k fits: the noise is then about the threshold, k = median(bound)."""
    m = len(x) * dof
    total = float(np.sum(x))
    k = total / max(m - n_params, 1)
    k_max = float(np.median(bound))
    for _ in range(100):
        if k <= 0 or k >= k_max:
            break
        k_new = total / (max(m - n_params, 1) / m * float(np.sum(truncated_mean(bound / k, dof))))
        if abs(k_new - k) <= 1e-9 * k:
            k = k_new
            break
        k = k_new
    return min(k, k_max)
