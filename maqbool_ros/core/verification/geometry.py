"""Two-view geometry for verification: essential matrix (monocular, scale unknown) and PnP
(with depth, metric), both with OpenCV's USAC MAGSAC++, and the 6x6 pose covariances.

Pose convention everywhere: T_a_b (R, t) maps points from frame b to frame a, X_a = R X_b + t;
equivalently it is the pose of frame b expressed in frame a. Covariances are of the 6-vector
[dx, dy, dz, drx, dry, drz] (ROS PoseWithCovariance order) of a perturbation in frame a:
t = t_hat + d_t, R = exp([d_r]x) R_hat.
"""
from __future__ import annotations

import cv2
import numpy as np

SIGMA_FLOOR_PX = 0.1  # residual sigma never taken below this, so the information matrix stays finite


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.ravel(t)
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return make_T(R.T, -R.T @ t)


def check_transform(T, name: str) -> np.ndarray:
    """T as a float64 4x4 rigid transform; ValueError naming `name` otherwise."""
    A = np.asarray(T, dtype=np.float64)
    if A.shape != (4, 4) or not np.all(np.isfinite(A)):
        raise ValueError(f"{name} must be a finite 4x4 transform, got shape {A.shape}")
    R = A[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0 or not np.allclose(A[3], [0, 0, 0, 1]):
        raise ValueError(f"{name} is not a rigid transform (rotation block not orthonormal, or last row not 0 0 0 1)")
    return A


def transform_from_xyz_quat(xyz, quat_xyzw) -> np.ndarray:
    """4x4 transform from a translation and a unit quaternion (x, y, z, w), as in tf2."""
    q = np.asarray(quat_xyzw, dtype=np.float64).ravel()
    if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
        raise ValueError(f"quaternion (x, y, z, w) must be 4 finite numbers, not all zero, got {quat_xyzw}")
    x, y, z, w = q / np.linalg.norm(q)
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return make_T(R, np.asarray(xyz, dtype=np.float64))


def transform_from_pose(pose) -> np.ndarray:
    """4x4 transform of a geometry_msgs/Pose (rclpy or rosbags object: position, orientation xyzw)."""
    p, o = pose.position, pose.orientation
    return transform_from_xyz_quat([p.x, p.y, p.z], [o.x, o.y, o.z, o.w])


def inverse_covariance(T: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Covariance of T^-1 given T's (first-order, same parametrisation)."""
    R, t = T[:3, :3], T[:3, 3]
    J = np.zeros((6, 6))
    J[:3, :3] = -R.T
    J[:3, 3:] = -R.T @ skew(t)
    J[3:, 3:] = -R.T
    return J @ cov @ J.T


def rebase(A: np.ndarray, T: np.ndarray, B: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T' = A T B and its covariance (same perturbation convention, now in A's frame).

    With A = T_base_camera of the query and B = (T_base_camera of the candidate)^-1, a
    camera-to-camera pose becomes base-to-base. First order: dr' = R_A dr,
    dt' = R_A dt - R_A [R t_B]x dr."""
    Tp = A @ T @ B
    RA = A[:3, :3]
    J = np.zeros((6, 6))
    J[:3, :3] = RA
    J[:3, 3:] = -RA @ skew(T[:3, :3] @ B[:3, 3])
    J[3:, 3:] = RA
    return Tp, J @ cov @ J.T


def conjugate(A: np.ndarray, T: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T' = A T A^-1 and its covariance: one camera_to_base A for both cameras (see rebase)."""
    return rebase(A, T, invert_T(A), cov)


def _gn_covariance(J: np.ndarray, r: np.ndarray, n_params: int) -> tuple[np.ndarray, float]:
    """sigma^2 (J^T J)^-1 with sigma^2 = max(r.r / (m - p), floor^2)."""
    dof = max(len(r) - n_params, 1)
    sigma2 = max(float(r @ r) / dof, SIGMA_FLOOR_PX ** 2)
    H = J.T @ J
    H += np.eye(n_params) * (1e-12 * max(np.trace(H), 1e-30))  # an unobservable direction -> huge, not inf
    return sigma2 * np.linalg.inv(H), sigma2


def pnp_covariance(R: np.ndarray, t: np.ndarray, X: np.ndarray, uv: np.ndarray, K: np.ndarray,
                   depth_noise: float = 0.0) -> tuple[np.ndarray, float]:
    """Covariance of T (X_img = R X + t) from the reprojection residuals of (N, 3) points X
    (frame b, back-projected from depth) observed at (N, 2) undistorted pixels uv.

    Each residual's covariance is sigma^2 I (sigma^2 from the residuals, as Gauss-Newton) plus
    the depth noise seen through the projection: a point slides along its ray by
    sigma_z = depth_noise * z^2 (Khoshelham & Elberink 2012 for structured light), which moves
    its projection by g sigma_z, g = d(proj)/dz. The covariance is (sum J_i^T C_i^-1 J_i)^-1;
    depth_noise 0 gives the plain sigma^2 (J^T J)^-1."""
    fx, fy = K[0, 0], K[1, 1]
    RX = X @ R.T
    p = RX + t
    z = p[:, 2]
    proj = np.stack([fx * p[:, 0] / z + K[0, 2] + K[0, 1] * p[:, 1] / z, fy * p[:, 1] / z + K[1, 2]], axis=1)
    r = (proj - uv).ravel()
    Jp = np.zeros((len(X), 2, 3))
    Jp[:, 0, 0] = fx / z
    Jp[:, 0, 1] = K[0, 1] / z
    Jp[:, 0, 2] = -(fx * p[:, 0] + K[0, 1] * p[:, 1]) / z ** 2
    Jp[:, 1, 1] = fy / z
    Jp[:, 1, 2] = -fy * p[:, 1] / z ** 2
    dp = np.zeros((len(X), 3, 6))
    dp[:, :, :3] = np.eye(3)
    dp[:, :, 3:] = -np.stack([skew(v) for v in RX])  # d(exp(w)RX)/dw = -[RX]x
    J = np.einsum("nij,njk->nik", Jp, dp)
    if depth_noise <= 0:
        return _gn_covariance(J.reshape(-1, 6), r, 6)
    sigma2 = max(float(r @ r) / max(len(r) - 6, 1), SIGMA_FLOOR_PX ** 2)
    z_b = X[:, 2]
    g = np.einsum("nij,nj->ni", Jp, RX / z_b[:, None])  # projection motion per metre of depth
    C = sigma2 * np.eye(2) + (depth_noise * z_b ** 2)[:, None, None] ** 2 * np.einsum("ni,nj->nij", g, g)
    H = np.einsum("nki,nkl,nlj->ij", J, np.linalg.inv(C), J)
    H += np.eye(6) * (1e-12 * max(np.trace(H), 1e-30))
    return np.linalg.inv(H), sigma2


def sampson_residuals(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray,
                      K: np.ndarray) -> np.ndarray:
    """Sampson distances (pixels) of correspondences x_b <-> x_a (undistorted pixels) to the
    epipolar geometry of T_a_b = (R, t)."""
    Kinv = np.linalg.inv(K)
    F = Kinv.T @ skew(t) @ R @ Kinv
    hb = np.column_stack([x_b, np.ones(len(x_b))])
    ha = np.column_stack([x_a, np.ones(len(x_a))])
    Fb = hb @ F.T
    Fta = ha @ F
    num = np.sum(ha * Fb, axis=1)
    den = np.sqrt(Fb[:, 0] ** 2 + Fb[:, 1] ** 2 + Fta[:, 0] ** 2 + Fta[:, 1] ** 2)
    return num / np.maximum(den, 1e-12)


def essential_covariance(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray,
                         K: np.ndarray) -> tuple[np.ndarray, float]:
    """6x6 covariance of (unit t, R) from Sampson residuals; the translation block is the
    direction's (rank 2, tangent to the unit sphere): the scale is unknown, not represented."""
    t = t / np.linalg.norm(t)
    # orthonormal basis of the plane perpendicular to t: the 2 observable translation directions
    B = np.linalg.svd(t.reshape(1, 3))[2][1:].T

    def residuals(q: np.ndarray) -> np.ndarray:
        Rq = cv2.Rodrigues(q[:3])[0] @ R
        tq = t + B @ q[3:]
        return sampson_residuals(Rq, tq / np.linalg.norm(tq), x_b, x_a, K)

    h = 1e-6
    J = np.stack([(residuals(h * e) - residuals(-h * e)) / (2 * h) for e in np.eye(5)], axis=1)
    c5, sigma2 = _gn_covariance(J, residuals(np.zeros(5)), 5)
    M = np.zeros((6, 5))  # [d_t; d_r] = M [d_r; d_phi]
    M[:3, 3:] = B
    M[3:, :3] = np.eye(3)
    return M @ c5 @ M.T, sigma2


def estimate_essential(x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray, threshold: float, confidence: float,
                       max_iters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """T_a_b (R, unit t) from undistorted pixel correspondences, and the MAGSAC++ inlier mask
    (None when no model was found)."""
    E, mask = cv2.findEssentialMat(x_b, x_a, K, method=cv2.USAC_MAGSAC, prob=confidence,
                                   threshold=threshold, maxIters=max_iters)
    if E is None or mask is None or E.shape[0] < 3:
        return None
    E = E[:3]  # several solutions may be stacked; USAC already picked the best first
    inl = mask.ravel().astype(bool)
    if inl.sum() < 5:
        return None
    # recoverPose's cheirality test chooses among the 4 (R, t) decompositions; it does not change the
    # inlier set (its distance threshold drops far points, i.e. most points when the baseline is small)
    _, R, t, _ = cv2.recoverPose(E, x_b[inl], x_a[inl], K)
    t = t.ravel()
    return R, t / np.linalg.norm(t), inl


def estimate_pnp(X_b: np.ndarray, uv_a: np.ndarray, K: np.ndarray, threshold: float, confidence: float,
                 max_iters: int, refine: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Metric T_a_b (R, t) from points X_b (frame b, metres) seen at undistorted pixels uv_a of
    camera a: USAC MAGSAC++ PnP, then Levenberg-Marquardt on the inliers."""
    X = np.ascontiguousarray(X_b, np.float64)
    uv = np.ascontiguousarray(uv_a, np.float64)
    try:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(X, uv, K, None, flags=cv2.USAC_MAGSAC,
                                                     reprojectionError=threshold, confidence=confidence,
                                                     iterationsCount=max_iters)
    except cv2.error:  # OpenCV without USAC PnP: classic RANSAC with the same threshold
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(X, uv, K, None, reprojectionError=threshold,
                                                     confidence=confidence, iterationsCount=max_iters)
    if not ok or inliers is None or len(inliers) < 4:
        return None
    idx = inliers.ravel()
    if refine:
        rvec, tvec = cv2.solvePnPRefineLM(X[idx], uv[idx], K, None, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    t = tvec.ravel()
    # inliers of the refined pose, by the same threshold (points behind the camera are outliers)
    p = X @ R.T + t
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = (p @ K.T)[:, :2] / p[:, 2:3]
        err = np.linalg.norm(proj - uv, axis=1)
    inl = (p[:, 2] > 0) & (err <= threshold)
    return R, t, inl
