"""Metric relative pose from depth: the PnP observation model, a weighted refinement and the
pose covariance (geometry.py has the conventions: X_a = R X_b + t, perturbation [d_t; d_r]).

Observation model (first order, per inlier i): the query pixel u_i is seen with localisation
sigma s_q,i; the 3-D point X_i = z_i K^-1 [v_i; 1] is back-projected from the candidate pixel v_i
(sigma s_c,i) and depth z_i (sigma_z = depth_noise * z^2, Khoshelham & Elberink 2012). Both
image errors and the depth error move the predicted projection, so the residual
r_i = proj(R X_i + t) - u_i has the a-priori covariance
    Q_i = s_q,i^2 I + M_i diag(s_c,i^2, s_c,i^2, sigma_z,i^2) M_i^T,   M_i = d proj / d(v_i, z_i).
The sigmas are ORB-SLAM's: 1 px at the keypoint's pyramid level (features.LocalFeatures.sigmas).
The pose is the weighted least-squares estimate sum r^T Q^-1 r (Gauss-Newton from the RANSAC +
LM pose), its covariance k (J^T Q^-1 J)^-1 with k the a-posteriori variance factor (photogrammetry's
variance of unit weight; Foerstner & Wrobel, "Photogrammetric Computer Vision", 2016):
k = sum r^T Q^-1 r / (2n - 6), floored at 1 so the result is never more confident than the model.
"""
from __future__ import annotations

import cv2
import numpy as np

from maqbool_ros.core.verification.geometry import skew
from maqbool_ros.core.verification.variance import MIN_VARIANCE_FACTOR, variance_factor

GN_ITERATIONS = 5  # the LM pose is already close; the weighted problem converges in 2-3


def _project(R: np.ndarray, t: np.ndarray, X: np.ndarray, K: np.ndarray):
    """Projections (n, 2), d proj / d p (n, 2, 3) at p = R X + t, and the rotated points R X."""
    fx, fy, s = K[0, 0], K[1, 1], K[0, 1]
    RX = X @ R.T
    p = RX + t
    z = p[:, 2]
    proj = np.stack([(fx * p[:, 0] + s * p[:, 1]) / z + K[0, 2], fy * p[:, 1] / z + K[1, 2]], axis=1)
    Jp = np.zeros((len(X), 2, 3))
    Jp[:, 0, 0] = fx / z
    Jp[:, 0, 1] = s / z
    Jp[:, 0, 2] = -(fx * p[:, 0] + s * p[:, 1]) / z ** 2
    Jp[:, 1, 1] = fy / z
    Jp[:, 1, 2] = -fy * p[:, 1] / z ** 2
    return proj, Jp, RX


def reprojection_errors(R: np.ndarray, t: np.ndarray, X: np.ndarray, uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """|projection of R X + t - uv| (px) per point; inf behind the camera."""
    with np.errstate(divide="ignore", invalid="ignore"):
        proj, _, RX = _project(R, t, X, K)
        d = np.linalg.norm(proj - uv, axis=1)
    return np.where(((RX + t)[:, 2] > 0) & np.isfinite(d), d, np.inf)


def pose_jacobian(Jp: np.ndarray, RX: np.ndarray) -> np.ndarray:
    """(n, 2, 6) d proj / d [d_t, d_r]: d(exp(w) R X)/dw = -[R X]x."""
    dp = np.zeros((len(RX), 3, 6))
    dp[:, :, :3] = np.eye(3)
    dp[:, :, 3:] = -np.stack([skew(v) for v in RX])
    return np.einsum("nij,njk->nik", Jp, dp)


def observation_covariance(R: np.ndarray, X: np.ndarray, Jp: np.ndarray, K: np.ndarray, depth_noise: float,
                           sigma_obs: np.ndarray, sigma_src: np.ndarray | None) -> np.ndarray:
    """(n, 2, 2) a-priori residual covariances Q_i (module doc). sigma_src None: the 3-D points'
    pixels are exact (only the depth term, if any, moves them)."""
    z = X[:, 2]
    Q = (sigma_obs ** 2)[:, None, None] * np.eye(2)
    if sigma_src is not None:
        dX_dv = z[:, None, None] * np.linalg.inv(K)[None, :, :2]        # (n, 3, 2): lateral, per pixel
        A = np.einsum("nij,jk,nkl->nil", Jp, R, dX_dv)
        Q = Q + (sigma_src ** 2)[:, None, None] * np.einsum("nik,njk->nij", A, A)
    if depth_noise > 0:
        g = np.einsum("nij,nj->ni", Jp, (X / z[:, None]) @ R.T)         # projection motion per metre of depth
        Q = Q + ((depth_noise * z ** 2) ** 2)[:, None, None] * np.einsum("ni,nj->nij", g, g)
    return Q


def _normal_equations(R, t, X, uv, K, Q_inv):
    proj, Jp, RX = _project(R, t, X, K)
    r = proj - uv
    J = pose_jacobian(Jp, RX)
    H = np.einsum("nki,nkl,nlj->ij", J, Q_inv, J)
    H += np.eye(6) * (1e-12 * max(np.trace(H), 1e-30))  # an unobservable direction -> huge, not inf
    return H, np.einsum("nki,nkl,nl->i", J, Q_inv, r), float(np.einsum("ni,nij,nj->", r, Q_inv, r))


def refine_weighted(R: np.ndarray, t: np.ndarray, X: np.ndarray, uv: np.ndarray, K: np.ndarray,
                    depth_noise: float, sigma_obs: np.ndarray,
                    sigma_src: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton on sum r_i^T Q_i^-1 r_i (Q_i at the starting pose), from (R, t)."""
    _, Jp, _ = _project(R, t, X, K)
    Q_inv = np.linalg.inv(observation_covariance(R, X, Jp, K, depth_noise, sigma_obs, sigma_src))
    cost = _normal_equations(R, t, X, uv, K, Q_inv)[2]
    for _ in range(GN_ITERATIONS):
        H, b, _ = _normal_equations(R, t, X, uv, K, Q_inv)
        d = -np.linalg.solve(H, b)
        R_new, t_new = cv2.Rodrigues(d[3:])[0] @ R, t + d[:3]  # the module's perturbation convention
        new_cost = _normal_equations(R_new, t_new, X, uv, K, Q_inv)[2]
        if not new_cost < cost:
            break
        R, t, cost = R_new, t_new, new_cost
        if np.abs(d).max() < 1e-10:
            break
    return R, t


def pnp_covariance(R: np.ndarray, t: np.ndarray, X: np.ndarray, uv: np.ndarray, K: np.ndarray,
                   depth_noise: float = 0.0, sigma_obs: np.ndarray | None = None,
                   sigma_src: np.ndarray | None = None, min_factor: float = MIN_VARIANCE_FACTOR,
                   threshold: float | None = None) -> tuple[np.ndarray, float]:
    """Covariance of T (X_img = R X + t) from (N, 3) points X and (N, 2) undistorted pixels uv, and
    the a-posteriori variance factor k (module doc; k >= min_factor). sigma_obs: a-priori pixel
    sigma of each observation (None: 1 px). threshold: the RANSAC inlier bound (px) that selected
    these points; k then undoes the truncation (variance_factor); None: plain sum / (2n - 6)."""
    sig = np.ones(len(X)) if sigma_obs is None else np.asarray(sigma_obs, np.float64)
    proj, Jp, _ = _project(R, t, X, K)
    Q = observation_covariance(R, X, Jp, K, depth_noise, sig, sigma_src)
    Q_inv = np.linalg.inv(Q)
    H, _, _ = _normal_equations(R, t, X, uv, K, Q_inv)
    r = proj - uv
    x = np.einsum("ni,nij,nj->n", r, Q_inv, r)
    if threshold is None:
        k = float(np.sum(x)) / max(2 * len(X) - 6, 1)
    else:  # RANSAC kept |r| <= threshold px: in Q's units about threshold^2 / (tr Q / 2)
        k = variance_factor(x, threshold ** 2 / (np.trace(Q, axis1=1, axis2=2) / 2), 2, 6)
    k = max(k, min_factor)
    return k * np.linalg.inv(H), k
