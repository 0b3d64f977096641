"""The jackknife widens a monocular pose's covariance only where its own inliers disagree
(verification/jackknife.py). Seeded synthetic data; the Loewner maximum is checked against a
brute force over random directions, the coverage by Monte Carlo."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.evaluation.relative_poses import nees
from maqbool_ros.core.verification import geometry as geo
from maqbool_ros.core.verification import jackknife as jk
from maqbool_ros.core.verification.verify import POSE_UNIT_TRANSLATION

K = np.array([[718.0, 0.0, 607.0], [0.0, 718.0, 185.0], [0.0, 0.0, 1.0]])  # KITTI-like, 1241 x 376
SIZE = np.array([1241, 376])
R_TRUE = cv2.Rodrigues(np.radians([0.3, 1.0, 0.1]))[0]


def _psd(rng: np.random.Generator, n: int, rank: int) -> np.ndarray:
    A = rng.normal(size=(n, rank)) * rng.uniform(0.1, 3.0, rank)
    return A @ A.T


def test_loewner_max_bounds_both_and_is_tight_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        model, emp = _psd(rng, 6, 6), _psd(rng, 6, 6)
        out = jk.loewner_max(model, emp)
        x = rng.normal(size=(2000, 6))
        q_out, q_m, q_e = (np.einsum("ij,jk,ik->i", x, C, x) for C in (out, model, emp))
        assert np.all(q_out >= np.maximum(q_m, q_e) * (1 - 1e-9))  # at least both, every direction
        # tight: whitened by the model, its eigenvalues are max(1, those of the empirical one)
        L = np.linalg.cholesky(model)
        Li = np.linalg.inv(L)
        got = np.sort(np.linalg.eigvalsh(Li @ out @ Li.T))
        want = np.sort(np.maximum(np.linalg.eigvalsh(Li @ emp @ Li.T), 1.0))
        np.testing.assert_allclose(got, want, rtol=1e-7)


def test_loewner_max_keeps_a_dominating_model_and_its_null_space():
    rng = np.random.default_rng(1)
    model = _psd(rng, 6, 6)
    np.testing.assert_allclose(jk.loewner_max(model, 0.5 * model), model, rtol=1e-9)
    np.testing.assert_allclose(jk.loewner_max(model, 3.0 * model), 3.0 * model, rtol=1e-9)
    # a unit translation's covariance has no radial part: widening must not invent one
    t = np.array([0.0, 0.0, 1.0])
    B = np.linalg.svd(t.reshape(1, 3))[2][1:].T
    M = np.zeros((6, 5))
    M[:3, 3:] = B
    M[3:, :3] = np.eye(3)
    model5, emp5 = M @ _psd(rng, 5, 5) @ M.T, M @ _psd(rng, 5, 5) @ M.T
    out = jk.loewner_max(model5, emp5)
    assert abs(t @ out[:3, :3] @ t) < 1e-12 * np.trace(out)


def _scene(seed: int, noise_px: float, n: int = 120):
    rng = np.random.default_rng(seed)
    t = np.array([0.05, 0.0, -1.5])
    X = np.column_stack([rng.uniform(-0.8, 0.8, 4 * n), rng.uniform(-0.25, 0.25, 4 * n),
                         np.ones(4 * n)]) * rng.uniform(4.0, 60.0, (4 * n, 1))
    Xa = X @ R_TRUE.T + t
    ub, ua = X @ K.T, Xa @ K.T
    ub, ua = ub[:, :2] / ub[:, 2:], ua[:, :2] / ua[:, 2:]
    ok = np.all((ub > 0) & (ub < SIZE) & (ua > 0) & (ua < SIZE), axis=1) & (Xa[:, 2] > 1)
    noise = rng.normal(0, 1.0, (2, n, 2)) * noise_px
    return ub[ok][:n] + noise[0], ua[ok][:n] + noise[1], t / np.linalg.norm(t)


def _fit(x_b, x_a, t_true):
    s = np.ones(len(x_b))
    R, t = geo.refine_essential(R_TRUE, t_true, x_b, x_a, K, s, s, iterations=20)
    return R, t, jk.essential_jackknife(R, t, x_b, x_a, K, s, s)


def _direction_var(t: np.ndarray, cov: np.ndarray) -> float:
    B = np.linalg.svd(t.reshape(1, 3))[2][1:].T
    return float(np.trace(B.T @ cov[:3, :3] @ B))


def test_jackknife_measures_the_spread_the_noise_gives():
    """Same scenes and noise pattern, 1 px vs 3 px (9 seeds): the jackknife's variance grows ~9x (it
    measures the data, not a prior), and at 1 px it is of the order of the model covariance with
    the true sigma (it estimates the same sampling variance)."""
    ratios, scale = [], []
    for seed in range(9):
        x_b, x_a, t_true = _scene(seed, 1.0)
        R, t, C1 = _fit(x_b, x_a, t_true)
        s = np.ones(len(x_b))
        model, _ = geo.essential_covariance(R, t, x_b, x_a, K, s, s, min_factor=1.0)
        ratios.append(_direction_var(t, C1) / _direction_var(t, model))
        x_b3, x_a3, _ = _scene(seed, 3.0)
        R3, t3, C3 = _fit(x_b3, x_a3, t_true)
        scale.append(_direction_var(t3, C3) / _direction_var(t, C1))
    assert 1 / 3 < np.median(ratios) < 3  # 1.02 here
    assert 4 < np.exp(np.mean(np.log(scale))) < 20  # geometric mean 7.2 here (16 groups: a noisy estimate)


def test_jackknife_needs_enough_inliers_and_is_deterministic():
    x_b, x_a, t_true = _scene(3, 1.0, n=20)
    s = np.ones(len(x_b))
    assert jk.essential_jackknife(R_TRUE, t_true, x_b, x_a, K, s, s) is None  # 20 < 2 x 16 groups
    x_b, x_a, t_true = _scene(3, 1.0)
    a = _fit(x_b, x_a, t_true)[2]
    b = _fit(x_b, x_a, t_true)[2]
    assert a is not None and np.array_equal(a, b)
    assert np.allclose(a, a.T) and np.linalg.eigvalsh(a).min() > -1e-12 * np.trace(a)


@pytest.mark.parametrize("groups", [1, 0])
def test_jackknife_refuses_fewer_than_two_groups(groups):
    x_b, x_a, t_true = _scene(4, 1.0)
    s = np.ones(len(x_b))
    assert jk.essential_jackknife(R_TRUE, t_true, x_b, x_a, K, s, s, groups=groups) is None


def _kitti_like(seed: int, near_noise_px: float, n_far: int = 100, n_near: int = 8):
    """Forward motion; n_far distant points (20-150 m, 0.7 px) and n_near near-field ones (5-9 m,
    large flow, near_noise_px): the few matches that hold most of the parallax."""
    rng = np.random.default_rng(seed)
    t = np.array([0.05, 0.0, -1.5])
    x_b, x_a = [], []
    for m, depth, noise, half_height in ((n_far, (20.0, 150.0), 0.7, 0.15), (n_near, (5.0, 9.0), near_noise_px, 0.25)):
        X = np.column_stack([rng.uniform(-0.8, 0.8, 8 * m), rng.uniform(-half_height, half_height, 8 * m),
                             np.ones(8 * m)]) * rng.uniform(*depth, (8 * m, 1))
        Xa = X @ R_TRUE.T + t
        ub, ua = X @ K.T, Xa @ K.T
        ub, ua = ub[:, :2] / ub[:, 2:], ua[:, :2] / ua[:, 2:]
        ok = np.all((ub > 0) & (ub < SIZE) & (ua > 0) & (ua < SIZE), axis=1) & (Xa[:, 2] > 1)
        x_b.append(ub[ok][:m] + rng.normal(0, noise / np.sqrt(2), (m, 2)))
        x_a.append(ua[ok][:m] + rng.normal(0, noise / np.sqrt(2), (m, 2)))
    order = rng.permutation(n_far + n_near)
    return np.vstack(x_b)[order], np.vstack(x_a)[order], t / np.linalg.norm(t)


def _direction_nees(R: np.ndarray, t: np.ndarray, cov: np.ndarray, t_true: np.ndarray) -> float:
    """The direction NEES `maqbool poses` reports (relative_poses.nees)."""
    return nees(geo.make_T(R, t), cov, geo.make_T(R_TRUE, t_true), POSE_UNIT_TRANSLATION)["direction"]


def _coverage(near_noise_px: float, trials: int = 40) -> tuple[float, float, float]:
    """Direction NEES coverage (95 %) of the model covariance (1 px sigmas, bounded influence, the
    a-posteriori factor, as verify.py) and of its Loewner max with the jackknife; and the median
    ratio of their direction variances."""
    inside_model, inside_max, widen = [], [], []
    for seed in range(trials):
        x_b, x_a, t_true = _kitti_like(seed, near_noise_px)
        s = np.ones(len(x_b))
        R, t = geo.refine_essential(R_TRUE, t_true, x_b, x_a, K, s, s, iterations=20)
        s_b, s_a = geo.bounded_influence_sigmas(R, t, x_b, x_a, K, s, s)
        R, t = geo.refine_essential(R, t, x_b, x_a, K, s_b, s_a, iterations=20)
        model, _ = geo.essential_covariance(R, t, x_b, x_a, K, s_b, s_a, min_factor=1.0, threshold=2.0)
        wide = jk.loewner_max(model, jk.essential_jackknife(R, t, x_b, x_a, K, s_b, s_a))
        inside_model.append(_direction_nees(R, t, model, t_true) <= 5.991)
        inside_max.append(_direction_nees(R, t, wide, t_true) <= 5.991)
        widen.append(_direction_var(t, wide) / _direction_var(t, model))
    return float(np.mean(inside_model)), float(np.mean(inside_max)), float(np.median(widen))


def test_jackknife_restores_coverage_when_the_parallax_holding_matches_err_more_than_modelled():
    # 4 px on the 8 near-field matches (the model says 1 px): the model covariance misses
    # (0.625 of 40 seeded trials inside its 95 % bound), the widened one covers (0.85)
    model, widened, _ = _coverage(4.0)
    assert model < 0.7 and widened >= 0.8 and widened - model >= 0.15


def test_jackknife_leaves_a_correct_model_almost_alone():
    model, widened, widen = _coverage(1.0)
    assert model >= 0.9 and widened >= model and widen < 1.5
