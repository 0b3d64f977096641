"""Monocular model selection (twoview.py): a planar scene, where the essential matrix alone lands on
either of the homography's two valid decompositions, gets a rotation-only pose that says so (and
a covariance that covers the ambiguity); low parallax gives rotation only; a 3-D scene keeps the
essential matrix's full pose. Seeded synthetic scenes."""
from __future__ import annotations

import cv2
import numpy as np
from test_verification_geometry import CAM, H, W, angle_deg, project, rot, scene

from maqbool_ros.core.verification import POSE_UNIT_TRANSLATION, LocalFeatures, make_T, verify
from maqbool_ros.core.verification import twoview as tv

T_W_Q = np.eye(4)
T_W_C = make_T(rot([0.2, 1, 0.1], 6.0), np.array([0.5, 0.1, 0.3]))  # T_query_candidate (query at the origin)
CHI2_3DOF_999 = 16.27  # 99.9 % bound of a 3-dof Mahalanobis distance


def plane_scene(seed: int, n: int = 300, noise_px: float = 0.5, outliers: float = 0.1, off_plane: float = 0.0):
    """Matches on one tilted wall 5 m ahead (a fraction `off_plane` moved up to 1 m off it)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(-4, 4, 4 * n), rng.uniform(-3, 3, 4 * n), np.full(4 * n, 5.0)])
    X[:, 2] += 0.3 * X[:, 0]
    k = rng.random(4 * n) < off_plane
    X[k, 2] += rng.uniform(-1, 1, k.sum())
    uq, zq = project(X, T_W_Q, CAM)
    uc, zc = project(X, T_W_C, CAM)
    inside = np.all((uq > 0) & (uq < [W - 1, H - 1]) & (uc > 0) & (uc < [W - 1, H - 1]), axis=1)
    idx = np.flatnonzero((zq > 0.5) & (zc > 0.5) & inside)[:n]
    uq, uc = uq[idx] + rng.normal(0, noise_px, (n, 2)), uc[idx] + rng.normal(0, noise_px, (n, 2))
    bad = rng.random(n) < outliers
    uq[bad] = rng.uniform([0, 0], [W - 1, H - 1], (bad.sum(), 2))
    desc = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    return (LocalFeatures(uq.astype(np.float32), desc, None, (W, H), "orb"),
            LocalFeatures(uc.astype(np.float32), desc, None, (W, H), "orb"))


def _rotation_mahalanobis(v) -> float:
    e = cv2.Rodrigues(T_W_C[:3, :3] @ v.R.T)[0].ravel()  # R_true = exp([e]x) R_est (left perturbation)
    return float(e @ np.linalg.solve(v.covariance[3:, 3:], e))


def _direction_error_deg(t: np.ndarray) -> float:
    t_true = T_W_C[:3, 3] / np.linalg.norm(T_W_C[:3, 3])
    return float(np.degrees(np.arccos(np.clip(t @ t_true / np.linalg.norm(t), -1.0, 1.0))))


def test_a_planar_scene_never_gets_a_confident_wrong_pose():
    """The essential matrix alone picks the wrong twin on about half of these seeds (rotation off
    by ~7 deg, direction by ~72 deg, reported as a normal unit-translation pose). With model
    selection every pose is either right (rotation <= 1 deg, direction <= 5 deg) or says that t is
    unknown (t = 0, huge translation variance) with a rotation its covariance covers."""
    for seed in range(8):
        v = verify(*plane_scene(seed), CAM)
        assert v.verified and v.pose_type == POSE_UNIT_TRANSLATION, seed
        if np.linalg.norm(v.t) > 0:
            assert angle_deg(v.R.T @ T_W_C[:3, :3]) <= 1.0, seed
            assert _direction_error_deg(v.t) <= 5.0, seed
        else:
            assert not v.translation_known and v.model == "homography_ambiguous", seed
            assert np.all(np.diag(v.covariance)[:3] >= tv.UNKNOWN_TRANSLATION_VAR), seed
            assert np.allclose(v.covariance[:3, 3:], 0.0), seed
            assert angle_deg(v.R.T @ T_W_C[:3, :3]) <= 5.0, seed   # the twins' midpoint
            assert _rotation_mahalanobis(v) <= CHI2_3DOF_999, seed


def test_the_planar_scene_selects_the_homography_and_its_twins_are_both_valid():
    q, c = plane_scene(1)
    x_a = CAM.undistort_pixels(q.keypoints.astype(np.float64))
    x_b = CAM.undistort_pixels(c.keypoints.astype(np.float64))
    pose = tv.estimate_two_view(x_b, x_a, CAM.K, 2.0, 0.999, 1000)
    assert pose.ratio_h > tv.PLANE_RATIO
    Hm, mask = cv2.findHomography(x_b, x_a, cv2.USAC_MAGSAC, 2.0)
    inl = mask.ravel().astype(bool)
    sols = tv.homography_solutions(Hm, CAM.K, x_b[inl], x_a[inl], 2.0)
    assert len(sols) == 4 and sols[1][0] >= tv.TWIN_SEPARATION * sols[0][0] and sols[2][0] < 0.1 * sols[0][0]
    # one of the two valid decompositions is the true motion
    assert min(angle_deg(R.T @ T_W_C[:3, :3]) for _, R, _ in sols[:2]) < 0.5


def test_a_scene_with_depth_relief_keeps_the_essential_pose():
    v = verify(*scene(T_W_Q, T_W_C, noise_px=0.5, outliers=0.2, seed=4), CAM)
    assert v.verified and v.model == "essential" and v.translation_known
    assert angle_deg(v.R.T @ T_W_C[:3, :3]) < 0.5 and _direction_error_deg(v.t) < 3.0
    assert abs(np.linalg.norm(v.t) - 1.0) < 1e-9


def test_low_parallax_gives_rotation_only():
    """A revisit from (almost) the same spot: the rotation is right, t is reported unknown."""
    T_w_c = make_T(rot([0, 1, 0], 5.0), np.array([0.01, 0.0, 0.0]))
    v = verify(*scene(T_W_Q, T_w_c, seed=15), CAM)
    assert v.verified and v.pose_type == POSE_UNIT_TRANSLATION
    assert v.parallax_deg < tv.MIN_PARALLAX_DEG and not v.translation_known
    assert np.array_equal(v.t, np.zeros(3)) and v.covariance[0, 0] >= tv.UNKNOWN_TRANSLATION_VAR
    assert angle_deg(v.R.T @ T_w_c[:3, :3]) < 0.2
    assert np.all(np.linalg.eigvalsh(v.covariance) > 0)  # still a valid (finite) covariance


def test_orb_slam_scores_prefer_the_model_that_generated_the_matches():
    rng = np.random.default_rng(3)
    x_b = rng.uniform([0, 0], [W, H], (200, 2))
    Hm = np.array([[1.02, 0.01, 5.0], [0.0, 0.98, -3.0], [1e-5, 0.0, 1.0]])
    p = np.column_stack([x_b, np.ones(200)]) @ Hm.T
    x_a = p[:, :2] / p[:, 2:] + rng.normal(0, 0.5, (200, 2))
    s_exact = tv.score_homography(Hm, x_b, x_a)
    s_wrong = tv.score_homography(Hm @ np.array([[1, 0, 4.0], [0, 1, 0], [0, 0, 1]]), x_b, x_a)
    assert s_exact > 0.7 * 2 * 200 * tv.CHI2_2DOF and s_wrong < 0.1 * s_exact
