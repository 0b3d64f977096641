"""Empirical covariance of a two-view pose: the delete-a-group jackknife, and the Loewner maximum
that lets it only widen the model-based covariance.

Why: the Gauss-Newton covariance (geometry.essential_covariance) assumes that every keypoint's
error is independent and of the modelled size. On a forward-moving camera the few near-field,
large-flow matches hold most of the parallax, and they are the worst localised (ORB corners at a
coarse pyramid level, matched across a scale change). When they err by more than the model says,
the pose moves more between subsets of its own inliers than the covariance allows. The jackknife
measures that spread from the data (Quenouille 1956, Tukey 1958; conservative in expectation:
Efron & Stein, Ann. Statist. 9(3), 1981; the delete-a-group form: Shao & Tu, "The Jackknife and
Bootstrap", Springer 1995, ch. 2). It
does not see an error shared by most inliers (deleting a group leaves the rest as biased), so it
complements, not replaces, the model. The reported covariance is, along every direction, the larger
of the two (never smaller than the model's, never smaller than the data's own spread).
"""
from __future__ import annotations

import cv2
import numpy as np

from maqbool_ros.core.verification import ambiguity
from maqbool_ros.core.verification import geometry as geo

# Groups of the delete-a-group jackknife. Fewer groups are cheaper but noisier: with g groups the
# variance estimate has g - 1 degrees of freedom. 16 gave the same KITTI coverage as g = n / 2
# (delete-two, the most groups the rule below allows; docs/verification.md), 8 did not.
JACKKNIFE_GROUPS = 16
DELETED_VARIANCE = 1e30  # a deleted match's keypoint variance: its residual (and pull) is ~0


def essential_jackknife(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                        sigma_b: np.ndarray | None, sigma_a: np.ndarray | None,
                        groups: int = JACKKNIFE_GROUPS) -> np.ndarray | None:
    """6x6 jackknife covariance of (unit t, R) in essential_covariance's parametrisation: the
    inliers are dealt round-robin into `groups` groups (deterministic), the weighted Sampson pose
    is refitted without each group from (R, t) (one batched Levenberg-Marquardt,
    ambiguity.refine_batch, its step limit), and the spread of the refits is scaled by (g - 1) / g. None when
    there are fewer than two inliers per group."""
    n, g = len(x_b), int(groups)
    if g < 2 or n < 2 * g:
        return None
    t = t / np.linalg.norm(t)
    Kinv = np.linalg.inv(K)
    deleted = np.arange(n)[None, :] % g == np.arange(g)[:, None]  # (g, n): group k leaves out row k
    va, vb = (np.where(deleted, DELETED_VARIANCE, np.broadcast_to(geo._sigma2(s), (n,)))
              for s in (sigma_a, sigma_b))
    R_k, t_k, _ = ambiguity.refine_batch(np.repeat(R[None], g, axis=0), np.repeat(t[None], g, axis=0),
                                         ambiguity.rays(x_a, Kinv), ambiguity.rays(x_b, Kinv), Kinv, va, vb, True,
                                         ambiguity.LM_ITERATIONS)
    B = np.linalg.svd(t.reshape(1, 3))[2][1:].T
    d_r = np.array([cv2.Rodrigues(np.ascontiguousarray(Rk @ R.T))[0].ravel() for Rk in R_k])
    devs = np.column_stack([d_r, (t_k - t) @ B])
    d = devs - devs.mean(axis=0)
    c5 = (g - 1) / g * d.T @ d
    return geo.embed_essential_covariance(c5, B)


def loewner_max(model: np.ndarray, empirical: np.ndarray) -> np.ndarray:
    """The smallest covariance (in the Loewner order, within the model's range) that is at least
    `model` and, whitened by it, at least `empirical` along every axis: model^1/2 max(I, W) model^1/2
    with W = model^-1/2 empirical model^-1/2 eigen-clamped at 1. Directions the model leaves at
    zero (the scale of a unit translation) stay zero."""
    model = 0.5 * (model + model.T)
    w, U = np.linalg.eigh(model)
    keep = w > 1e-12 * max(float(w.max()), 1e-300)
    S = U[:, keep] * np.sqrt(w[keep])
    S_inv = U[:, keep] / np.sqrt(w[keep])
    W = S_inv.T @ (0.5 * (empirical + empirical.T)) @ S_inv
    lam, V = np.linalg.eigh(W)
    out = S @ (V * np.maximum(lam, 1.0)) @ V.T @ S.T
    return 0.5 * (out + out.T)
