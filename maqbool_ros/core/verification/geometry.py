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

from maqbool_ros.core.verification.variance import variance_factor

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


def _gn_covariance(J: np.ndarray, r: np.ndarray, n_params: int, floor: float) -> tuple[np.ndarray, float]:
    """sigma^2 (J^T J)^-1 with sigma^2 = max(r.r / (m - p), floor)."""
    dof = max(len(r) - n_params, 1)
    sigma2 = max(float(r @ r) / dof, floor)
    H = J.T @ J
    H += np.eye(n_params) * (1e-12 * max(np.trace(H), 1e-30))  # an unobservable direction -> huge, not inf
    return sigma2 * np.linalg.inv(H), sigma2


def _epipolar_parts(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray):
    """x_a^T F x_b of each match and the squared gradients of it in image a (la) and b (lb)."""
    Kinv = np.linalg.inv(K)
    return _epipolar_parts_of(Kinv.T @ skew(t) @ R @ Kinv, x_b, x_a)


def _epipolar_parts_of(F: np.ndarray, x_b: np.ndarray, x_a: np.ndarray):
    """_epipolar_parts for a given fundamental matrix (x_a^T F x_b = 0)."""
    Fb = np.column_stack([x_b, np.ones(len(x_b))]) @ F.T
    Fta = np.column_stack([x_a, np.ones(len(x_a))]) @ F
    num = np.sum(np.column_stack([x_a, np.ones(len(x_a))]) * Fb, axis=1)
    return num, Fb[:, 0] ** 2 + Fb[:, 1] ** 2, Fta[:, 0] ** 2 + Fta[:, 1] ** 2


def _sigma2(sigma: np.ndarray | None) -> np.ndarray | float:
    return 1.0 if sigma is None else np.asarray(sigma, np.float64) ** 2


def sampson_residuals(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray,
                      K: np.ndarray, sigma_b: np.ndarray | None = None,
                      sigma_a: np.ndarray | None = None) -> np.ndarray:
    """Sampson distances of correspondences x_b <-> x_a (undistorted pixels) to the epipolar
    geometry of T_a_b = (R, t): pixels, or with per-point pixel sigmas of each image (sigma_b,
    sigma_a) the epipolar constraint over its first-order standard deviation (unit variance)."""
    num, la, lb = _epipolar_parts(R, t, x_b, x_a, K)
    return num / np.maximum(np.sqrt(_sigma2(sigma_a) * la + _sigma2(sigma_b) * lb), 1e-12)


def sampson_distance(F: np.ndarray, x_b: np.ndarray, x_a: np.ndarray) -> np.ndarray:
    """Sampson distances (px, >= 0) of x_b <-> x_a under a fundamental matrix F (x_a^T F x_b = 0):
    the first-order geometric error OpenCV's USAC compares with the RANSAC threshold; inf where
    F gives no line."""
    num, la, lb = _epipolar_parts_of(F, x_b, x_a)
    den = np.sqrt(la + lb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.abs(num) / den, np.inf)


def _essential_problem(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                       sigma_b: np.ndarray | None, sigma_a: np.ndarray | None):
    """(residuals(q), Jacobian(), B): Sampson residuals at the 5-parameter perturbation
    q = [d_r; d_phi] of (R, unit t), d_phi along B (the 2 directions perpendicular to t)."""
    t = t / np.linalg.norm(t)
    B = np.linalg.svd(t.reshape(1, 3))[2][1:].T

    def pose(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tq = t + B @ q[3:]
        return cv2.Rodrigues(q[:3])[0] @ R, tq / np.linalg.norm(tq)

    def residuals(q: np.ndarray) -> np.ndarray:
        return sampson_residuals(*pose(q), x_b, x_a, K, sigma_b, sigma_a)

    def jacobian() -> np.ndarray:
        h = 1e-6
        return np.stack([(residuals(h * e) - residuals(-h * e)) / (2 * h) for e in np.eye(5)], axis=1)

    return residuals, jacobian, B, pose


def refine_essential(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                     sigma_b: np.ndarray | None = None, sigma_a: np.ndarray | None = None,
                     iterations: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(R, unit t) minimising the (weighted) Sampson residuals of the inliers: Gauss-Newton from
    the RANSAC pose, a step kept only when it lowers the cost (the ML pose the covariance assumes)."""
    for _ in range(iterations):
        residuals, jacobian, _, pose = _essential_problem(R, t, x_b, x_a, K, sigma_b, sigma_a)
        r, J = residuals(np.zeros(5)), jacobian()
        q = -np.linalg.lstsq(J, r, rcond=None)[0]
        if not float(residuals(q) @ residuals(q)) < float(r @ r):
            break
        R, t = pose(q)
        if np.abs(q).max() < 1e-10:
            break
    return R, t


# Bounded influence (Mallows-type GM estimate; Hampel, Ronchetti, Rousseeuw & Stahel, "Robust
# Statistics: The Approach Based on Influence Functions", 1986, Sec. 6.3): a residual's share of
# the information about the p parameters is its leverage h_i = [J (J^T J)^-1 J^T]_ii (sum p);
# Hoaglin & Welsch ("The hat matrix in regression and ANOVA", Am. Stat. 32(1), 1978) call a
# point high-leverage above 2 p / n. Its weight is capped so that no inlier holds more than that.
LEVERAGE_BOUND = 2.0


def bounded_influence_sigmas(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                             sigma_b: np.ndarray | None, sigma_a: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Both keypoints' sigmas divided by sqrt(w), w_i = min(1, (2 p / n) / h_i) with h_i the
    leverage of match i at (R, t) (p = 5): the few inliers that alone fix the pose (near-field,
    large flow) count at most as a high-leverage point, so a shared sub-threshold error on them
    cannot drive it. Refining with these sigmas is the weighted problem whose minimum the
    covariance (weights in J) and the other-minima search (ambiguity.py) then describe."""
    ones = np.ones(len(x_b))
    s_b = ones if sigma_b is None else np.asarray(sigma_b, np.float64)
    s_a = ones if sigma_a is None else np.asarray(sigma_a, np.float64)
    J = _essential_problem(R, t, x_b, x_a, K, s_b, s_a)[1]()
    H = J.T @ J
    H += np.eye(5) * (1e-12 * max(np.trace(H), 1e-30))
    h = np.einsum("ij,jk,ik->i", J, np.linalg.inv(H), J)
    w = np.minimum(1.0, LEVERAGE_BOUND * 5 / len(J) / np.maximum(h, 1e-300))
    return s_b / np.sqrt(w), s_a / np.sqrt(w)


def essential_covariance(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                         sigma_b: np.ndarray | None = None, sigma_a: np.ndarray | None = None,
                         min_factor: float | None = None, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """6x6 covariance of (unit t, R) from Sampson residuals; the translation block is the
    direction's (rank 2, tangent to the unit sphere): the scale is unknown, not represented.
    With keypoint sigmas (px) the residuals are normalised by them and the second value is the
    a-posteriori variance factor k >= min_factor (variance.py); without, the pixel variance.
    threshold: the RANSAC bound (px) on the Sampson distance that chose these inliers (see
    variance.variance_factor)."""
    residuals, jacobian, B, pose = _essential_problem(R, t, x_b, x_a, K, sigma_b, sigma_a)
    floor = SIGMA_FLOOR_PX ** 2 if min_factor is None else min_factor
    r = residuals(np.zeros(5))
    c5, sigma2 = _gn_covariance(jacobian(), r, 5, floor)
    if threshold is not None:  # RANSAC kept |Sampson distance| <= threshold px: undo that truncation
        _, la, lb = _epipolar_parts(*pose(np.zeros(5)), x_b, x_a, K)
        scale2 = (la + lb) / np.maximum(_sigma2(sigma_a) * la + _sigma2(sigma_b) * lb, 1e-300)  # px -> r units
        k = max(variance_factor(r ** 2, threshold ** 2 * scale2, 1, 5), floor)
        c5, sigma2 = c5 * k / sigma2, k
    return embed_essential_covariance(c5, B), sigma2


def embed_essential_covariance(c5: np.ndarray, B: np.ndarray) -> np.ndarray:
    """6x6 covariance of [d_t; d_r] from the 5x5 one of [d_r; d_phi] (d_phi along B, the two
    directions perpendicular to the unit t): the radial (scale) direction stays at zero."""
    M = np.zeros((6, 5))
    M[:3, 3:] = B
    M[3:, :3] = np.eye(3)
    return M @ c5 @ M.T


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
