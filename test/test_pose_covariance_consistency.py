"""Monte Carlo consistency of the reported pose covariances (issue #25): seeded pixel noise of a
known sigma on synthetic PnP and two-view problems, 200 trials each. A consistent covariance puts
~95 % of the errors inside the 95 % chi-square bound (NEES, core/evaluation/relative_poses.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.evaluation.relative_poses import CHI2_95
from maqbool_ros.core.verification import geometry as geo
from maqbool_ros.core.verification import pnp, twoview
from maqbool_ros.core.verification.variance import MIN_VARIANCE_FACTOR

K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
R_TRUE = cv2.Rodrigues(np.array([0.2, 1.0, 0.1]) / np.linalg.norm([0.2, 1.0, 0.1]) * np.radians(12.0))[0]
T_TRUE = np.array([0.4, -0.05, 0.15])
THRESHOLD = 2.0  # px, the RANSAC default (verification_ransac_threshold_px)
TRIALS = 200


def _views(rng, n: int, sigma: float):
    """Points in the candidate frame, their noisy pixels in the candidate and the query image."""
    X = rng.uniform([-3, -2, 3], [3, 2, 9], (n, 3))
    p = X @ R_TRUE.T + T_TRUE
    uq = (p @ K.T)[:, :2] / p[:, 2:] + rng.normal(0, sigma, (n, 2))
    uc = (X @ K.T)[:, :2] / X[:, 2:] + rng.normal(0, sigma, (n, 2))
    return X, uq, uc


def _pnp_trial(rng, sigma: float, prior: float, threshold: float | None = THRESHOLD):
    """NEES (6-D) and variance factor of one PnP pose; exact depth, noisy pixels in both images."""
    X, uq, uc = _views(rng, 80, sigma)
    Xb = np.column_stack([(uc - K[:2, 2]) / [K[0, 0], K[1, 1]] * X[:, 2:], X[:, 2]])  # back-projected
    R, t, inl = geo.estimate_pnp(Xb, uq, K, THRESHOLD, 0.999, 1000, True)
    s = np.full(inl.sum(), prior)
    R, t = pnp.refine_weighted(R, t, Xb[inl], uq[inl], K, 0.0, s, s)
    cov, k = pnp.pnp_covariance(R, t, Xb[inl], uq[inl], K, 0.0, s, s, threshold=threshold)
    e = np.r_[T_TRUE - t, cv2.Rodrigues(R_TRUE @ R.T)[0].ravel()]
    return float(e @ np.linalg.solve(cov, e)), k


def _mono_trial(rng, sigma: float, prior: float):
    """NEES of the rotation (3-D) and of the translation direction (2-D) of one two-view pose."""
    _, uq, uc = _views(rng, 120, sigma)
    tv = twoview.estimate_two_view(uc, uq, K, THRESHOLD, 0.999, 1000)
    assert tv.model == "essential" and tv.translation_known
    inl = tv.inliers
    s = np.full(inl.sum(), prior)
    tv.R, tv.t = geo.refine_essential(tv.R, tv.t, uc[inl], uq[inl], K, s, s)
    cov, k = twoview.two_view_covariance(tv, uc[inl], uq[inl], K, s, s, MIN_VARIANCE_FACTOR, THRESHOLD)
    d = cv2.Rodrigues(R_TRUE @ tv.R.T)[0].ravel()
    B = np.linalg.svd(tv.t.reshape(1, 3))[2][1:].T
    e2 = B.T @ (T_TRUE / np.linalg.norm(T_TRUE) - tv.t)
    return float(d @ np.linalg.solve(cov[3:, 3:], d)), float(e2 @ np.linalg.solve(B.T @ cov[:3, :3] @ B, e2)), k


def test_pnp_covariance_is_consistent_under_known_pixel_noise():
    rng = np.random.default_rng(1)
    # a-priori sigma far below the injected 0.5 px: the variance factor must find the noise
    out = [_pnp_trial(rng, 0.5, 0.05) for _ in range(TRIALS)]
    coverage = np.mean([n <= CHI2_95[6] for n, _ in out])
    assert 0.85 <= coverage <= 0.99, coverage


def test_monocular_covariance_is_consistent_under_known_pixel_noise():
    rng = np.random.default_rng(1)
    out = [_mono_trial(rng, 0.5, 0.05) for _ in range(TRIALS)]
    rotation = np.mean([r <= CHI2_95[3] for r, _, _ in out])
    direction = np.mean([d <= CHI2_95[2] for _, d, _ in out])
    assert 0.85 <= rotation <= 0.99, rotation
    assert 0.85 <= direction <= 0.99, direction
    sigma = np.sqrt(np.median([k for _, _, k in out])) * 0.05
    assert sigma == pytest.approx(0.5, rel=0.1)  # the variance factor recovers the injected sigma


def test_variance_factor_undoes_the_ransac_truncation():
    """0.8 px per image: the reprojection residual (~1.1 px per axis) is cut at the 2 px threshold,
    so the kept residuals understate the noise; the truncation-corrected factor recovers it."""
    rng = np.random.default_rng(2)
    corrected = [_pnp_trial(rng, 0.8, 0.05)[1] for _ in range(60)]
    rng = np.random.default_rng(2)
    plain = [_pnp_trial(rng, 0.8, 0.05, threshold=None)[1] for _ in range(60)]
    # k is in units of the a-priori variance of one image's keypoint (0.05 px)
    assert np.sqrt(np.median(corrected)) * 0.05 == pytest.approx(0.8, rel=0.1)
    assert np.sqrt(np.median(plain)) * 0.05 < 0.7


def test_variance_factor_never_below_the_a_priori_sigma():
    rng = np.random.default_rng(3)
    out = [_pnp_trial(rng, 0.3, 1.0) for _ in range(50)]  # 0.3 px noise, 1 px assumed
    assert all(k == MIN_VARIANCE_FACTOR for _, k in out)
    assert np.mean([n <= CHI2_95[6] for n, _ in out]) == 1.0  # conservative, never overconfident
