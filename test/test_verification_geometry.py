"""Geometric verification on seeded synthetic scenes: the pose convention T_query_candidate,
essential (scale-unknown) and PnP (metric) recovery, distortion, depth formats, covariances."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.verification import (
    POSE_METRIC,
    POSE_NONE,
    POSE_UNIT_TRANSLATION,
    Camera,
    LocalFeatures,
    VerificationParams,
    invert_T,
    make_T,
    pnp,
    transform_from_xyz_quat,
    verify,
)
from maqbool_ros.core.verification import geometry as geo

W, H = 640, 480
CAM = Camera.from_params(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=W, height=H)


def rot(axis, deg: float) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * np.deg2rad(deg))[0]


def angle_deg(R: np.ndarray) -> float:
    return float(np.rad2deg(np.linalg.norm(cv2.Rodrigues(R)[0])))


def project(X_w: np.ndarray, T_w_cam: np.ndarray, camera: Camera):
    """Raw (distorted) pixels and depths of world points in a camera at pose T_w_cam."""
    T = invert_T(T_w_cam)
    Xc = X_w @ T[:3, :3].T + T[:3, 3]
    uv = cv2.projectPoints(Xc, np.zeros(3), np.zeros(3), camera.K, camera.D if camera.has_distortion else None)[0]
    return uv.reshape(-1, 2), Xc[:, 2]


def scene(T_w_q, T_w_c, n=300, noise_px=0.5, outliers=0.3, camera=CAM, seed=0, with_depth=False):
    """Query and candidate LocalFeatures of one synthetic scene (ORB-like random descriptors; a
    fraction of the query keypoints moved to random pixels: wrong matches)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform([-4, -3, 4], [4, 3, 12], (4 * n, 3))  # world = roughly in front of both cameras
    uq, zq = project(X, T_w_q, camera)
    uc, zc = project(X, T_w_c, camera)
    ok = (zq > 0.5) & (zc > 0.5) & np.all((uq > 0) & (uq < [W - 1, H - 1]) & (uc > 0) & (uc < [W - 1, H - 1]), axis=1)
    idx = np.flatnonzero(ok)[:n]
    assert len(idx) == n
    uq, uc, zq, zc = uq[idx], uc[idx], zq[idx], zc[idx]
    uq = uq + rng.normal(0, noise_px, uq.shape)
    uc = uc + rng.normal(0, noise_px, uc.shape)
    bad = rng.random(n) < outliers
    uq[bad] = rng.uniform([0, 0], [W - 1, H - 1], (bad.sum(), 2))
    desc = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    perm = rng.permutation(n)  # candidate features in another order: matching must find them
    q = LocalFeatures(uq.astype(np.float32), desc, zq.astype(np.float32) if with_depth else None, (W, H), "orb")
    c = LocalFeatures(uc[perm].astype(np.float32), desc[perm], zc[perm].astype(np.float32) if with_depth else None,
                      (W, H), "orb")
    return q, c


# query at the origin looking down +z; the candidate camera 1 m to its right (+x), 0.2 m forward,
# turned 10 deg about the vertical (y) axis
T_W_Q = np.eye(4)
T_W_C = make_T(rot([0, 1, 0], 10.0), np.array([1.0, 0.0, 0.2]))
T_Q_C = invert_T(T_W_Q) @ T_W_C


def test_convention_metric_pose_is_candidate_in_query_frame():
    q, c = scene(T_W_Q, T_W_C, with_depth=True)
    v = verify(q, c, CAM)
    assert v.verified and v.pose_type == POSE_METRIC
    # the candidate camera centre, in query coordinates, is 1 m to the right and 0.2 m forward
    np.testing.assert_allclose(v.t, [1.0, 0.0, 0.2], atol=0.03)
    assert angle_deg(v.R.T @ T_Q_C[:3, :3]) < 0.3
    # and X_query = R X_candidate + t: a point 5 m in front of the candidate camera
    X_c = np.array([0.0, 0.0, 5.0])
    X_q = (invert_T(T_W_Q) @ T_W_C @ np.append(X_c, 1.0))[:3]
    np.testing.assert_allclose(v.R @ X_c + v.t, X_q, atol=0.05)


def test_essential_path_recovers_rotation_and_translation_direction():
    q, c = scene(T_W_Q, T_W_C, noise_px=0.5, outliers=0.3)
    v = verify(q, c, CAM)
    assert v.verified and v.pose_type == POSE_UNIT_TRANSLATION
    assert abs(np.linalg.norm(v.t) - 1.0) < 1e-9
    assert angle_deg(v.R.T @ T_Q_C[:3, :3]) < 0.5
    t_true = T_Q_C[:3, 3] / np.linalg.norm(T_Q_C[:3, 3])
    assert np.rad2deg(np.arccos(np.clip(v.t @ t_true, -1, 1))) < 3.0
    # the outliers (~30 %) are rejected, the true matches kept
    assert 0.55 < v.inlier_ratio < 0.8 and v.num_inliers >= 150


def test_pnp_uses_query_depth_when_candidate_has_none():
    q, c = scene(T_W_Q, T_W_C, with_depth=True, outliers=0.2, seed=3)
    c.depths = None
    v = verify(q, c, CAM)
    assert v.verified and v.pose_type == POSE_METRIC
    np.testing.assert_allclose(v.T, T_Q_C, atol=0.03)


def test_depth_images_16uc1_and_32fc1_give_the_same_pose_and_invalid_depth_is_skipped():
    q, c = scene(T_W_Q, T_W_C, with_depth=True, outliers=0.1, seed=4)
    # a depth image with the candidate's keypoint depths (nearest pixel), everything else invalid
    xy = np.clip(np.rint(c.keypoints).astype(int), 0, [W - 1, H - 1])
    d32 = np.zeros((H, W), np.float32)
    d32[xy[:, 1], xy[:, 0]] = c.depths
    d32[xy[:20, 1], xy[:20, 0]] = np.nan  # invalid readings: those keypoints are left out
    d16 = np.nan_to_num(d32 * 1000.0).round().astype(np.uint16)
    c.depths = None
    q.depths = None
    a = verify(q, c, CAM, depth_c=d32)
    b = verify(q, c, CAM, depth_c=d16)
    assert a.pose_type == b.pose_type == POSE_METRIC
    np.testing.assert_allclose(a.T, T_Q_C, atol=0.05)
    np.testing.assert_allclose(a.T, b.T, atol=0.01)
    assert a.num_matches <= len(c) - 20


def test_distorted_pixels_are_undistorted_before_estimation():
    cam = Camera.from_params(500.0, 500.0, 319.5, 239.5, W, H, D=[-0.3, 0.1, 0.001, -0.001, 0.0])
    q, c = scene(T_W_Q, T_W_C, camera=cam, with_depth=True, seed=5)
    good = verify(q, c, cam)
    assert good.verified
    np.testing.assert_allclose(good.T, T_Q_C, atol=0.03)
    ignored = verify(q, c, CAM)  # same pixels, distortion ignored: worse pose
    assert np.linalg.norm(ignored.t - T_Q_C[:3, 3]) > 2 * np.linalg.norm(good.t - T_Q_C[:3, 3])


def test_undistort_pixels_inverts_projection():
    cam = Camera(K=CAM.K, D=[0.1, -0.05, 0.0, 0.0, 0.0, 0.02, 0.0, 0.0], width=W, height=H,
                 distortion_model="rational_polynomial")
    X = np.random.default_rng(0).uniform([-1, -1, 2], [1, 1, 4], (50, 3))
    raw = cv2.projectPoints(X, np.zeros(3), np.zeros(3), cam.K, cam.D)[0].reshape(-1, 2)
    ideal = cv2.projectPoints(X, np.zeros(3), np.zeros(3), cam.K, None)[0].reshape(-1, 2)
    np.testing.assert_allclose(cam.undistort_pixels(raw), ideal, atol=1e-3)


def test_camera_to_base_expresses_the_pose_between_bases():
    q, c = scene(T_W_Q, T_W_C, with_depth=True, seed=6)
    # camera 0.3 m ahead of and 0.5 m above the base, optical frame (z forward, x right, y down)
    # while the base is x forward, y left, z up
    R_bc = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    T_bc = make_T(R_bc, np.array([0.3, 0.0, 0.5]))
    v = verify(q, c, CAM, camera_to_base=T_bc)
    assert v.frame == "base" and v.pose_type == POSE_METRIC
    np.testing.assert_allclose(v.T, T_bc @ T_Q_C @ invert_T(T_bc), atol=0.03)
    # optical +x (right) is base -y: the candidate base is 1 m to the query base's right; the
    # 10 deg turn about optical y (down) is a turn about base -z (up)
    assert v.T[1, 3] < -0.9
    np.testing.assert_allclose(cv2.Rodrigues(v.R)[0].ravel() / np.deg2rad(10.0), [0, 0, -1], atol=0.05)


def test_pure_rotation_verifies_with_zero_parallax():
    """A revisit from the same spot (rotation only): verified, rotation right, and the parallax
    says the (arbitrary) translation direction must not be used."""
    T_w_c = make_T(rot([0, 1, 0], 5.0), np.zeros(3))
    q, c = scene(T_W_Q, T_w_c, seed=15)
    v = verify(q, c, CAM)
    assert v.verified and v.pose_type == POSE_UNIT_TRANSLATION
    assert angle_deg(v.R.T @ T_w_c[:3, :3]) < 0.1
    assert v.parallax_deg < 0.3  # only the pixel noise (0.5 px at f = 500 px) is left
    moved = verify(*scene(T_W_Q, T_W_C, seed=15), CAM)
    assert moved.parallax_deg > 2.0


def test_camera_to_base_and_quaternion_validation():
    q, c = scene(T_W_Q, T_W_C, seed=16)
    with pytest.raises(ValueError, match="camera_to_base must be a finite 4x4"):
        verify(q, c, CAM, camera_to_base=np.eye(3))
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match="camera_to_base is not a rigid transform"):
        verify(q, c, CAM, camera_to_base=bad)
    with pytest.raises(ValueError, match="quaternion"):
        transform_from_xyz_quat([0, 0, 0], [0, 0, 0, 0])
    T = transform_from_xyz_quat([1, 2, 3], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])  # 90 deg about z
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])


def test_unrelated_views_are_rejected():
    q, _ = scene(T_W_Q, T_W_C, seed=7)
    _, c = scene(T_W_Q, T_W_C, seed=8)  # other points, other descriptors
    v = verify(q, c, CAM)
    assert not v.verified and v.pose_type == POSE_NONE


def test_decision_rule_thresholds():
    q, c = scene(T_W_Q, T_W_C, n=120, outliers=0.5, seed=9)
    v = verify(q, c, CAM)
    assert v.verified
    assert not verify(q, c, CAM, params=VerificationParams(min_inliers=v.num_inliers + 1)).verified
    assert not verify(q, c, CAM, params=VerificationParams(min_inlier_ratio=v.inlier_ratio + 0.05)).verified


def test_uncalibrated_verification_has_no_pose():
    q, c = scene(T_W_Q, T_W_C, seed=10)
    v = verify(q, c, None)
    assert v.verified and v.pose_type == POSE_NONE and np.all(np.isinf(np.diag(v.covariance)))


def _pnp_cov(n, noise, seed):
    # pixel noise alone (the scene's depth is exact): the depth-noise term would add a floor
    q, c = scene(T_W_Q, T_W_C, n=n, noise_px=noise, outliers=0.0, seed=seed, with_depth=True)
    # a 0.05 px a-priori sigma, so the variance factor (the residuals' noise) is above its floor
    return verify(q, c, CAM, params=VerificationParams(depth_noise=0.0, keypoint_sigma_px=0.05)).covariance


def test_pnp_covariance_positive_definite_shrinks_with_inliers_grows_with_noise():
    # noise well below the 2 px RANSAC threshold, so the inlier set is not truncated
    base = _pnp_cov(100, 0.2, 11)
    assert np.all(np.linalg.eigvalsh(base) > 0)
    more = _pnp_cov(400, 0.2, 11)
    noisier = _pnp_cov(100, 0.6, 11)
    assert np.trace(more[:3, :3]) < 0.5 * np.trace(base[:3, :3])   # ~1/4 expected
    assert np.trace(noisier[:3, :3]) > 5 * np.trace(base[:3, :3])  # ~9 expected
    assert np.trace(noisier[3:, 3:]) > 5 * np.trace(base[3:, 3:])


def test_pnp_covariance_matches_the_spread_of_repeated_estimates():
    """Monte Carlo: re-estimate with fresh pixel noise; the predicted covariance should match the
    empirical one (within sampling error)."""
    rng = np.random.default_rng(12)
    X = rng.uniform([-3, -2, 4], [3, 2, 10], (80, 3))
    R, t = T_Q_C[:3, :3], T_Q_C[:3, 3]
    ideal = cv2.projectPoints(X, cv2.Rodrigues(R)[0], t, CAM.K, None)[0].reshape(-1, 2)
    deltas, covs = [], []
    for _ in range(150):
        uv = ideal + rng.normal(0, 1.0, ideal.shape)
        Re, te, _ = geo.estimate_pnp(X, uv, CAM.K, 4.0, 0.999, 1000, True)
        deltas.append(np.concatenate([te - t, cv2.Rodrigues(Re @ R.T)[0].ravel()]))
        covs.append(pnp.pnp_covariance(Re, te, X, uv, CAM.K)[0])
    emp = np.cov(np.array(deltas).T)
    pred = np.mean(covs, axis=0)
    for block in (slice(0, 3), slice(3, 6)):
        ratio = np.trace(emp[block, block]) / np.trace(pred[block, block])
        assert 0.7 < ratio < 1.4, ratio


@pytest.mark.parametrize("which", ["inverse", "conjugate"])
def test_covariance_transforms_match_sampled_perturbations(which):
    rng = np.random.default_rng(13)
    T = make_T(rot([0.3, 1, 0.2], 25.0), np.array([0.5, -0.2, 1.0]))
    A = make_T(rot([1, 0, 0], -90.0), np.array([0.2, 0.1, 0.4]))
    L = rng.normal(0, 1, (6, 6))
    cov = (L @ L.T + np.eye(6)) * 1e-6

    def apply(M):
        return invert_T(M) if which == "inverse" else A @ M @ invert_T(A)

    pred = geo.inverse_covariance(T, cov) if which == "inverse" else geo.conjugate(A, T, cov)[1]
    Tp = apply(T)
    samples = []
    for d in rng.multivariate_normal(np.zeros(6), cov, 4000):
        M = make_T(cv2.Rodrigues(d[3:])[0] @ T[:3, :3], T[:3, 3] + d[:3])
        Mp = apply(M)
        samples.append(np.concatenate([Mp[:3, 3] - Tp[:3, 3], cv2.Rodrigues(Mp[:3, :3] @ Tp[:3, :3].T)[0].ravel()]))
    emp = np.cov(np.array(samples).T)
    np.testing.assert_allclose(emp, pred, atol=0.1 * np.abs(pred).max())


def test_essential_covariance_positive_semidefinite_and_grows_with_noise():
    free = VerificationParams(keypoint_sigma_px=0.05)  # the variance factor above its floor: it sets the size
    q, c = scene(T_W_Q, T_W_C, noise_px=0.2, outliers=0.0, seed=14)
    low = verify(q, c, CAM, params=free).covariance
    q, c = scene(T_W_Q, T_W_C, noise_px=0.6, outliers=0.0, seed=14)
    high = verify(q, c, CAM, params=free).covariance
    assert np.all(np.linalg.eigvalsh(low[3:, 3:]) > 0)          # rotation: full rank
    assert np.all(np.linalg.eigvalsh(low) > -1e-12)             # translation: direction only (rank 2)
    assert np.trace(high[3:, 3:]) > 5 * np.trace(low[3:, 3:])  # ~9 expected


def _near_field_bias_scene(seed: int):
    """80 matches at 6-30 m plus 6 near-field ones (2 m, large flow, high leverage) that share a
    1.8 px error across their epipolar lines: every match stays inside a 2 px RANSAC threshold."""
    rng = np.random.default_rng(seed)
    K = CAM.K
    R = rot([0.2, 1.0, 0.1], np.linalg.norm([0.2, 1.0, 0.1]))
    t = np.array([0.05, 0.0, 1.0]) / np.linalg.norm([0.05, 0.0, 1.0])  # forward motion, X_a = R X_b + t
    far = np.column_stack([rng.uniform(-30, 30, 80), rng.uniform(-15, 5, 80), rng.uniform(6, 30, 80)])
    near = np.column_stack([rng.choice([-1, 1], 6) * rng.uniform(1.5, 2.5, 6), rng.uniform(0.8, 1.2, 6),
                            rng.uniform(1.8, 2.2, 6)])
    X = np.vstack([far, near])

    def proj(P):
        p = P @ K.T
        return p[:, :2] / p[:, 2:]
    x_b = proj(X) + rng.normal(0, 0.3, (len(X), 2))
    x_a = proj(X @ R.T + t) + rng.normal(0, 0.3, (len(X), 2))
    u = x_a[80:] - proj(t[None])  # the epipolar lines of forward motion radiate from the epipole
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x_a[80:] += 1.8 * np.column_stack([-u[:, 1], u[:, 0]])
    return R, t, x_b, x_a, K


def test_bounded_influence_refinement_resists_a_shared_error_on_a_few_high_leverage_inliers():
    """Plain least squares lets the 6 near-field matches pull the pose; capping each inlier's
    leverage at 2p/n (geometry.bounded_influence_sigmas, then refining again) resists them."""
    plain, bounded = [], []
    for seed in range(6):
        R, t, x_b, x_a, K = _near_field_bias_scene(seed)
        s = np.ones(len(x_b))
        R0, t0 = geo.refine_essential(R, t, x_b, x_a, K, s, s, iterations=20)
        assert np.abs(geo.sampson_residuals(R0, t0, x_b, x_a, K)).max() < 2.0  # all inliers of the pose
        s_b, s_a = geo.bounded_influence_sigmas(R0, t0, x_b, x_a, K, s, s)
        assert np.all(s_b >= 1.0) and np.all(s_a >= 1.0) and s_b[80:].min() > 1.0  # near field down-weighted
        R1, t1 = geo.refine_essential(R0, t0, x_b, x_a, K, s_b, s_a, iterations=20)
        for out, (Re, te) in ((plain, (R0, t0)), (bounded, (R1, t1))):
            out.append((angle_deg(Re @ R.T), np.degrees(np.arccos(np.clip(te @ t, -1.0, 1.0)))))
    plain, bounded = np.array(plain), np.array(bounded)
    assert plain[:, 1].min() > 1.0  # the shared error drives plain least squares > 1 deg off in direction
    assert np.all(bounded[:, 1] < plain[:, 1])
    assert bounded.mean(axis=0)[0] < 0.9 * plain.mean(axis=0)[0]  # rotation and direction both >= 10 % better
    assert bounded.mean(axis=0)[1] < 0.9 * plain.mean(axis=0)[1]
