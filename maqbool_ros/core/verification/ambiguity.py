"""Other minima of the two-view cost: is the monocular pose determined by the data at all?

With distant points and a small baseline the weighted Sampson cost of an essential matrix is
flat, and often has a second minimum far from the first (typically: forward motion confused with
a sideways one plus a rotation that moves the points along the sideways motion's near-parallel
epipolar lines). A covariance linearised at one minimum cannot cover the other. This module looks
for the other minima by the **profile likelihood over the translation direction** (the weak
parameter): for each axis of a near-uniform grid on the sphere the rotation is minimised
(Gauss-Newton, batched over directions), the profile's local minima are refined in all five
parameters (Levenberg-Marquardt, batched over starts), and every minimum whose cost exceeds the
lowest by at most the likelihood-ratio bound chi2(5 dof, 95 %) * k (Wilks' theorem; k the
variance factor, costs in units of the a-priori variance) is **not rejected** by the data.
resolve() then widens the pose's covariance by their spread, or reports rotation only when their
directions disagree; profile_widen() widens the Wald covariance where the cost is flatter than
quadratic. docs/verification.md has the rules and the KITTI figures.

Cost (bounded): essential-model full poses only; one batched profile over GRID_DIRECTIONS / 2
axes and at most MAX_STARTS batched refinements of at most LM_ITERATIONS steps; ~20 ms per pose
with ~100 inliers on the 2-core reference machine (benchmarks/mono_ambiguity.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from maqbool_ros.core.verification import geometry as geo

CHI2_5DOF_95 = 11.070     # likelihood-ratio bound, 5 parameters (scipy.stats.chi2.ppf(0.95, 5))
CHI2_2DOF_95 = 5.991      # the direction's own 95 % region (2 dof)
GRID_DIRECTIONS = 100     # Fibonacci sphere: 50 axes, ~20 deg between neighbours (+-t give the same cost)
NEIGHBOURS = 6            # a profile local minimum is below its 6 nearest grid axes (a hexagonal cell)
PROFILE_ITERATIONS = 4    # rotation Gauss-Newton steps per direction
LM_ITERATIONS = 40        # Levenberg-Marquardt steps per start (stops earlier when converged)
MAX_STARTS = 8            # profile minima refined in 5-D (batched), lowest profile cost first
STEP = 1e-6               # central-difference step (rad) of the 5-D Jacobian


@dataclass
class Minimum:
    R: np.ndarray
    t: np.ndarray
    cost: float  # sum of squared weighted Sampson residuals (units of the a-priori variance)


def fibonacci_sphere(n: int) -> np.ndarray:
    """n near-uniform unit vectors (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    r = np.sqrt(1 - z * z)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """u x v over the last axis (broadcast; faster than np.cross on small stacks)."""
    u0, u1, u2 = u[..., 0], u[..., 1], u[..., 2]
    v0, v1, v2 = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0], axis=-1)


def _rodrigues_batch(w: np.ndarray) -> np.ndarray:
    """exp([w]x) for each row of w (D, 3)."""
    th = np.linalg.norm(w, axis=1)[:, None, None]
    S = np.zeros((len(w), 3, 3))
    S[:, 0, 1], S[:, 0, 2], S[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    S = S - S.transpose(0, 2, 1)
    safe = np.maximum(th, 1e-12)
    a = np.where(th > 1e-8, np.sin(safe) / safe, 1.0)
    b = np.where(th > 1e-8, (1 - np.cos(safe)) / safe ** 2, 0.5)
    return np.eye(3) + a * S + b * S @ S


def rays(x: np.ndarray, Kinv: np.ndarray) -> np.ndarray:
    """(n, 3) viewing rays K^-1 [x; 1] of undistorted pixels x (n, 2): what refine_batch takes."""
    return np.column_stack([x, np.ones(len(x))]) @ Kinv.T


def _basis(T: np.ndarray) -> np.ndarray:
    """(D, 3, 2): two unit vectors perpendicular to each t (the direction's tangent plane)."""
    helper = np.where(np.abs(T[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    u = _cross(T, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.stack([u, _cross(T, u)], axis=2)


def perturb(R: np.ndarray, T: np.ndarray, B: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exp([q_r]x) R, normalised t + B q_t) for each start; q (D, 5) or one (5,) for all."""
    q = np.broadcast_to(q, (len(R), 5))
    Tq = T + (B @ q[:, 3:, None])[..., 0]
    return _rodrigues_batch(q[:, :3]) @ R, Tq / np.linalg.norm(Tq, axis=1, keepdims=True)


def refine_batch(R: np.ndarray, T: np.ndarray, ra: np.ndarray, rb: np.ndarray, Kinv: np.ndarray, va, vb,
                 move_t: bool, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the weighted Sampson cost, batched over starts (R (D, 3, 3), unit T
    (D, 3)): the rotation only (the profile at fixed directions) or rotation and direction.
    Analytic Jacobian of the epipolar constraint e = t . (R b x a), weights frozen per step.
    va, vb: keypoint variances per match (n,), or per start and match (D, n) (jackknife.py gives
    a deleted match a huge variance). Returns (R, T, cost)."""
    K2 = Kinv[:, :2]  # K^-T v, first two components = v @ K^-1[:, :2]
    per_start = np.ndim(va) == 2 or np.ndim(vb) == 2
    if per_start:
        va, vb = (np.broadcast_to(np.asarray(v, np.float64), (len(R), len(ra))) for v in (va, vb))

    def variances(idx: np.ndarray, reps: int = 1):
        return (np.tile(va[idx], (reps, 1)), np.tile(vb[idx], (reps, 1))) if per_start else (va, vb)

    def evaluate(R, T, v):
        va, vb = v
        c = rb @ R.transpose(0, 2, 1)                            # R b
        tc = _cross(T[:, None, :], c)                            # t x R b: epipolar line of b in a (rays)
        e = np.sum(tc * ra, axis=-1)                             # a . (t x R b)
        la = tc @ K2                                             # gradient of e in image a (px)
        lb = (_cross(ra[None], T[:, None, :]) @ R) @ K2          # R^T (a x t): in image b
        s = np.maximum(np.sqrt(va * np.sum(la ** 2, -1) + vb * np.sum(lb ** 2, -1)), 1e-12)
        return e / s, c, s

    R, T = R.copy(), T.copy()
    r, c, s = evaluate(R, T, variances(np.arange(len(R))))
    cost = np.sum(r ** 2, axis=1)
    lam = np.full(len(R), 1e-3)
    act = np.arange(len(R))  # starts still moving (converged ones leave the batch)
    for _ in range(iterations):
        Ra, Ta, ra_, ca, sa = R[act], T[act], r[act], c[act], s[act]
        B = _basis(Ta)
        if move_t:  # the Sampson weights move with t: central differences of the full residual
            D, h = len(act), np.concatenate([np.eye(5), -np.eye(5)]) * STEP  # all 10 perturbations at once
            Rp, Tp = perturb(np.tile(Ra, (10, 1, 1)), np.tile(Ta, (10, 1)), np.tile(B, (10, 1, 1)), np.repeat(h, D, 0))
            rp = evaluate(Rp, Tp, variances(act, 10))[0].reshape(2, 5, D, -1)
            J = ((rp[0] - rp[1]) / (2 * STEP)).transpose(1, 2, 0)
        else:  # d e / d dr (left perturbation) = (t . Rb) a - (Rb . a) t, weights frozen for the step
            J = (np.sum(Ta[:, None, :] * ca, axis=-1)[..., None] * ra[None]
                 - np.sum(ca * ra, axis=-1)[..., None] * Ta[:, None, :]) / sa[..., None]
        H = J.transpose(0, 2, 1) @ J
        g = (J.transpose(0, 2, 1) @ ra_[..., None])[..., 0]
        damp = lam[act, None, None] * (H * np.eye(H.shape[1]) + 1e-12 * np.eye(H.shape[1]))
        step = -np.linalg.solve(H + damp, g[..., None])[..., 0]
        R_new, T_new = perturb(Ra, Ta, B, step) if move_t else (_rodrigues_batch(step) @ Ra, Ta)
        r_new, c_new, s_new = evaluate(R_new, T_new, variances(act))
        cost_new = np.sum(r_new ** 2, axis=1)
        ok = cost_new < cost[act]
        i = act[ok]
        R[i], T[i], r[i], c[i], s[i] = R_new[ok], T_new[ok], r_new[ok], c_new[ok], s_new[ok]
        done = (ok & (cost[act] - cost_new <= 1e-8 * cost[act])) | (lam[act] > 1e4)  # converged, or stuck
        cost[i] = cost_new[ok]
        lam[act] = np.where(ok, np.maximum(lam[act] / 10, 1e-7), lam[act] * 10)
        act = act[~done]
        if not len(act):
            break
    return R, T, cost


def _cost(R: np.ndarray, t: np.ndarray, x_b, x_a, K, sigma_b, sigma_a) -> float:
    r = geo.sampson_residuals(R, t, x_b, x_a, K, sigma_b, sigma_a)
    return float(r @ r)


def _cheirality(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray,
                K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decomposition of E = [t]x R with most points in front of both cameras (recoverPose, as
    for the RANSAC pose): the Sampson cost cannot tell t from -t, nor R from its twisted pair."""
    _, R2, t2, _ = cv2.recoverPose(geo.skew(t) @ R, x_b, x_a, K)
    return R2, t2.ravel() / np.linalg.norm(t2)


def other_minima(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                 sigma_b: np.ndarray | None, sigma_a: np.ndarray | None) -> list[Minimum]:
    """Minima of the weighted Sampson cost: the given (R, t) first, then those reached from the
    direction profile's local minima (up to MAX_STARTS; duplicates possible)."""
    Kinv = np.linalg.inv(K)
    ra, rb = rays(x_a, Kinv), rays(x_b, Kinv)
    va, vb = geo._sigma2(sigma_a), geo._sigma2(sigma_b)
    T = fibonacci_sphere(GRID_DIRECTIONS)
    T = T[T[:, 2] >= 0]  # axes: t and -t have the same cost
    Rs, _, cost = refine_batch(np.repeat(R[None], len(T), axis=0), T, ra, rb, Kinv, va, vb, False, PROFILE_ITERATIONS)
    sim = np.abs(T @ T.T)
    np.fill_diagonal(sim, -1)
    nb = np.argsort(-sim, axis=1)[:, :NEIGHBOURS]
    local = np.flatnonzero(np.all(cost[:, None] <= cost[nb], axis=1))
    local = local[np.argsort(cost[local])][:MAX_STARTS]
    Rl, Tl, costs = refine_batch(Rs[local], T[local], ra, rb, Kinv, va, vb, True, LM_ITERATIONS)
    return [Minimum(R, t, _cost(R, t, x_b, x_a, K, sigma_b, sigma_a))] + [
        Minimum(*_cheirality(Rm, tm, x_b, x_a, K), float(c)) for Rm, tm, c in zip(Rl, Tl, costs)]


def _offset(R0: np.ndarray, t0: np.ndarray, m: Minimum) -> np.ndarray:
    """m - (R0, t0) as a 6-vector [d_t; d_r] of geometry.py's perturbation (d_t tangent to t0)."""
    return np.r_[m.t - t0 * float(m.t @ t0), cv2.Rodrigues(np.ascontiguousarray(m.R @ R0.T))[0].ravel()]


def _params(t: np.ndarray) -> np.ndarray:
    """(5, 6) P: [d_t; d_r] -> perturb()'s [d_r; d_phi] (d_phi along _basis(t), orthonormal rows)."""
    P = np.zeros((5, 6))
    P[:3, 3:], P[3:, :3] = np.eye(3), _basis(t[None])[0].T
    return P


def profile_widen(R: np.ndarray, t: np.ndarray, cov: np.ndarray, k: float, x_b: np.ndarray, x_a: np.ndarray,
                  K: np.ndarray, sigma_b: np.ndarray | None, sigma_a: np.ndarray | None) -> np.ndarray:
    """cov (6x6, essential_covariance's) widened where the cost is flatter than its quadratic
    model: along each principal axis of the 5-D covariance the cost is evaluated at the 95 %
    Wald bound (+-sqrt(chi2_5) sd), where a quadratic cost rises by chi2_5 * k; a smaller rise
    (the lower of the two sides) scales that axis' variance by chi2_5 * k / rise (the secant: the
    variance of the quadratic with the observed rise), so that the likelihood-ratio region along
    it is inside the reported ellipsoid. Never narrows."""
    P = _params(t)
    lam, V = np.linalg.eigh(P @ cov @ P.T)
    lam = np.maximum(lam, 0.0)
    q = np.sqrt(CHI2_5DOF_95 * lam)[None, :] * V                   # columns: the axes at the bound
    q = np.concatenate([q.T, -q.T])                                # (10, 5)
    Kinv = np.linalg.inv(K)
    ra, rb = rays(x_a, Kinv), rays(x_b, Kinv)
    B = _basis(t[None])
    Rq, Tq = perturb(np.repeat(R[None], 10, 0), np.repeat(t[None], 10, 0), np.repeat(B, 10, 0), q)
    costs = refine_batch(Rq, Tq, ra, rb, Kinv, geo._sigma2(sigma_a), geo._sigma2(sigma_b), True, 0)[2]
    rise = np.minimum(costs[:5], costs[5:]) - _cost(R, t, x_b, x_a, K, sigma_b, sigma_a)
    scale = np.maximum(1.0, CHI2_5DOF_95 * k / np.maximum(rise, 1e-6 * CHI2_5DOF_95 * k))
    return P.T @ (V * (lam * scale)) @ V.T @ P


def resolve(pose, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray, sigma_b: np.ndarray | None,
            sigma_a: np.ndarray | None, min_factor: float, threshold: float):
    """pose (twoview.TwoViewPose, an essential-model full pose) with what the data do not reject.
    Reported at the given minimum unless the likelihood-ratio test rejects it (then the lowest);
    its covariance widened along flatter-than-quadratic axes (profile_widen); the other distinct
    minima not rejected add their spread (equal weights, second moment about the reported pose):
    to the full covariance (`spread`) when every minimum's direction lies inside the reported
    direction's 95 % region, else the pose is rotation only (model essential_ambiguous, t
    unknown) with the rotation variance raised to the minima's largest separation, isotropic."""
    cov0, k = geo.essential_covariance(pose.R, pose.t, x_b, x_a, K, sigma_b, sigma_a, min_factor, threshold)
    minima = other_minima(pose.R, pose.t, x_b, x_a, K, sigma_b, sigma_a)
    best = min(m.cost for m in minima)
    kept = [m for m in minima if m.cost - best <= CHI2_5DOF_95 * k]  # not rejected (Wilks)
    ref = minima[0] if kept[0] is minima[0] else min(kept, key=lambda m: m.cost)
    if ref is not minima[0]:  # the given pose is rejected: the covariance is linearised at the new one
        cov0, k = geo.essential_covariance(ref.R, ref.t, x_b, x_a, K, sigma_b, sigma_a, min_factor, threshold)
    cov = profile_widen(ref.R, ref.t, cov0, k, x_b, x_a, K, sigma_b, sigma_a)
    P = _params(ref.t)
    info = np.linalg.inv(P @ cov @ P.T)
    distinct: list[tuple[Minimum, np.ndarray]] = [(ref, np.zeros(6))]
    for m in kept:  # one minimum per 95 % region of the covariance: closer ones are the same minimum
        d = _offset(ref.R, ref.t, m)
        if all(float((P @ (d - e)) @ info @ (P @ (d - e))) > CHI2_5DOF_95 for _, e in distinct):
            distinct.append((m, d))
    out = dataclasses.replace(pose, R=ref.R, t=ref.t, num_minima=len(distinct))
    spread = sum(np.outer(d, d) for _, d in distinct) / len(distinct)
    # a direction agrees when it lies on t's side and inside its 95 % region (2 dof, tangent plane)
    Sd = P[3:, :3] @ cov[:3, :3] @ P[3:, :3].T
    agree = all(float(m.t @ ref.t) > 0 and
                float((P[3:, :3] @ d[:3]) @ np.linalg.solve(Sd, P[3:, :3] @ d[:3])) <= CHI2_2DOF_95
                for m, d in distinct)
    if agree:
        out.spread = cov - cov0 + spread
    else:  # the data do not determine the direction: rotation only, linearised at the reported minimum
        out.R_fit, out.t_fit = ref.R, ref.t
        out.t, out.translation_known, out.model = np.zeros(3), False, "essential_ambiguous"
        # the rotation is known only to about the largest separation of the minima, in every axis
        # (the cost between and around them is not quadratic; cf. twoview's parallax^2 I)
        out.rotation_spread = (out.rotation_spread + cov[3:, 3:] - cov0[3:, 3:]
                               + np.eye(3) * max(float(d[3:] @ d[3:]) for _, d in distinct))
    return out
