"""The monocular pose says when the data do not determine it (verification/ambiguity.py).

A KITTI-like flat configuration (distant points in a narrow cone ahead, forward motion, ~1 deg
parallax, 3 px keypoint sigmas) has a second minimum of the weighted Sampson cost, several
degrees of rotation and ~65 deg of direction away, whose cost is within the likelihood-ratio
bound of the true one: started there, the covariance linearised at it excludes the truth, and
the resolved pose must cover it. A well-conditioned scene keeps its pose and covariance. Seeded."""
from __future__ import annotations

import cv2
import numpy as np

from maqbool_ros.core.verification import ambiguity as amb
from maqbool_ros.core.verification import geometry as geo
from maqbool_ros.core.verification import twoview as tv

K = np.array([[718.0, 0.0, 607.0], [0.0, 718.0, 185.0], [0.0, 0.0, 1.0]])  # KITTI-like, 1241 x 376
SIZE = np.array([1241, 376])
R_TRUE = cv2.Rodrigues(np.radians([0.3, 1.0, 0.1]))[0]
CHI2_3DOF_95 = 7.815


def scene(seed: int, spread: tuple[float, float], depth: tuple[float, float], baseline: float, n: int = 80,
          noise_px: float = 1.0):
    """Matches x_b <-> x_a of points spread (x/z, y/z) ahead at depths in `depth`, camera a
    `baseline` m ahead of b; returns them and the true (R, unit t) of T_a_b."""
    rng = np.random.default_rng(seed)
    t = np.array([0.02, 0.0, -baseline])
    X = np.column_stack([rng.uniform(-spread[0], spread[0], 4 * n), rng.uniform(-spread[1], spread[1], 4 * n),
                         np.ones(4 * n)]) * rng.uniform(*depth, (4 * n, 1))
    Xa = X @ R_TRUE.T + t
    ub, ua = X @ K.T, Xa @ K.T
    ub, ua = ub[:, :2] / ub[:, 2:], ua[:, :2] / ua[:, 2:]
    ok = np.all((ub > 0) & (ub < SIZE) & (ua > 0) & (ua < SIZE), axis=1) & (Xa[:, 2] > 1)
    ub = ub[ok][:n] + rng.normal(0, noise_px, (n, 2))
    ua = ua[ok][:n] + rng.normal(0, noise_px, (n, 2))
    return ub, ua, t / np.linalg.norm(t)


def _pose(R: np.ndarray, t: np.ndarray, n: int) -> tv.TwoViewPose:
    return tv.TwoViewPose(R, t, np.ones(n, bool), "essential", float("nan"), True, np.zeros((3, 3)))


def _rotation_nees(R: np.ndarray, cov: np.ndarray) -> float:
    e = cv2.Rodrigues(R_TRUE @ R.T)[0].ravel()  # R_true = exp([e]x) R (left perturbation)
    return float(e @ np.linalg.solve(cov[3:, 3:], e))


def _direction_nees(t: np.ndarray, cov: np.ndarray, t_true: np.ndarray) -> float:
    B = np.linalg.svd(t.reshape(1, 3))[2][1:].T  # the tangent plane (relative_poses.nees)
    e2 = B.T @ (t_true - t)
    return float(e2 @ np.linalg.solve(B.T @ cov[:3, :3] @ B, e2))


def test_a_second_minimum_not_rejected_by_the_data_widens_the_pose_to_cover_the_truth():
    x_b, x_a, t_true = scene(2, (0.25, 0.08), (20.0, 150.0), 3.6)
    s = np.full(len(x_b), 3.0)
    R0, t0 = geo.refine_essential(R_TRUE, t_true, x_b, x_a, K, s, s, iterations=20)
    minima = amb.other_minima(R0, t0, x_b, x_a, K, s, s)
    wrong = [m for m in minima if np.degrees(np.linalg.norm(cv2.Rodrigues(m.R @ R_TRUE.T)[0])) > 3.0
             and m.cost - minima[0].cost < amb.CHI2_5DOF_95]
    assert wrong, "the flat scene must have a second minimum within the likelihood-ratio bound"
    R_w, t_w = wrong[0].R, wrong[0].t  # as if RANSAC had landed there (it does on KITTI)
    plain, _ = geo.essential_covariance(R_w, t_w, x_b, x_a, K, s, s, 1.0, 2.0)
    assert _direction_nees(t_w, plain, t_true) > amb.CHI2_2DOF_95  # linearised there: confidently wrong
    out = amb.resolve(_pose(R_w, t_w, len(x_b)), x_b, x_a, K, s, s, 1.0, 2.0)
    cov, _ = tv.two_view_covariance(out, x_b, x_a, K, s, s, 1.0, 2.0)
    assert out.num_minima >= 2
    assert _rotation_nees(out.R, cov) <= CHI2_3DOF_95
    if out.translation_known:  # directions agree: the direction's covariance must cover it too
        assert _direction_nees(out.t, cov, t_true) <= amb.CHI2_2DOF_95
    else:
        assert out.model == "essential_ambiguous" and not np.any(out.t)


def test_a_well_conditioned_pose_keeps_its_estimate_and_covariance():
    x_b, x_a, t_true = scene(0, (0.85, 0.25), (5.0, 50.0), 1.0)
    s = np.ones(len(x_b))
    R0, t0 = geo.refine_essential(R_TRUE, t_true, x_b, x_a, K, s, s, iterations=20)
    plain, _ = geo.essential_covariance(R0, t0, x_b, x_a, K, s, s, 1.0, 2.0)
    out = amb.resolve(_pose(R0, t0, len(x_b)), x_b, x_a, K, s, s, 1.0, 2.0)
    cov, _ = tv.two_view_covariance(out, x_b, x_a, K, s, s, 1.0, 2.0)
    assert out.num_minima == 1 and out.translation_known and out.model == "essential"
    assert np.allclose(out.R, R0) and np.allclose(out.t, t0)
    ratio = np.linalg.eigvals(np.linalg.pinv(plain) @ cov).real  # generalised eigenvalues: widening per axis
    assert np.sort(ratio)[-5:].max() <= 1.5 and np.sort(ratio)[-5:].min() >= 1.0 - 1e-6
