"""How many of a model's inliers are more than chance: the a-contrario count.

A RANSAC threshold of 2 px means something different on a 160x120 image than on a 640x480 one:
the smaller the image, the likelier a wrong match lands within 2 px of the epipolar line it is
tested against, and a 7-dof fundamental matrix fitted to ~25 matches can absorb a few of them.
Counted as inliers, such chance fits push a pair over `min_inliers` (the corridor case,
docs/verification.md). The a-contrario model (Moisan & Stival, "A probabilistic criterion to
detect rigid point matches between two images and estimate the fundamental matrix", IJCV 57(3),
2004; the ORSA / AC-RANSAC of Moisan, Moulon & Monasse, IPOL 2012) asks instead how many false
detections a consensus set would give if the matches were random:

    NFA(k) = N_out * (n - s) * C(n, k) * C(k, s) * alpha_k ** (k - s)

for n tentative matches, a minimal sample of s, N_out models per sample, and the k smallest
residuals, where alpha_k is the probability that a uniformly random point in the image lies
within the k-th smallest residual eps_k of the model: 2 eps_k D / A for a distance to an
epipolar line (D the image diagonal, A its area), pi eps_k^2 / A for a distance to a point.
The **meaningful inlier count** is the k that minimises NFA (the model's own data-chosen
threshold, never above the RANSAC one); the set is meaningful when NFA < 1 (fewer than one false
detection expected). No parameter is fitted: the bound 1 is the method's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# (minimal sample s, models per sample N_out, residual kind): the solvers verify.py uses
MODELS = {
    "fundamental": (7, 3, "line"),   # 7-point: up to 3 real solutions
    "essential": (5, 10, "line"),    # 5-point (Nister): up to 10
    "pnp": (3, 4, "point"),          # P3P: up to 4
}


@dataclass(frozen=True)
class Meaningful:
    """The a-contrario reading of one model's residuals."""

    num_inliers: int      # k minimising the NFA among residuals <= the RANSAC threshold (0: none)
    log10_nfa: float      # log10 NFA(k); < 0 means meaningful (inf when k = 0)
    threshold_px: float   # eps_k: the residual bound that k implies


def _log10_binom(n: np.ndarray | int, k: np.ndarray | int) -> np.ndarray:
    lg = np.vectorize(math.lgamma, otypes=[float])
    return (lg(np.asarray(n) + 1.0) - lg(np.asarray(k) + 1.0) - lg(np.asarray(n) - np.asarray(k) + 1.0)) / math.log(10)


def log10_nfa(n: int, k: np.ndarray, eps: np.ndarray, image_size: tuple[int, int], model: str) -> np.ndarray:
    """log10 NFA(k) for consensus sets of size k (array) with residual bounds eps (px, array)."""
    s, n_out, kind = MODELS[model]
    w, h = image_size
    area = float(w) * float(h)
    eps = np.maximum(np.asarray(eps, np.float64), 1e-6)
    alpha = 2.0 * eps * math.hypot(w, h) / area if kind == "line" else math.pi * eps ** 2 / area
    alpha = np.minimum(alpha, 1.0)
    k = np.asarray(k)
    return (math.log10(n_out) + math.log10(max(n - s, 1)) + _log10_binom(n, k) + _log10_binom(k, s)
            + (k - s) * np.log10(alpha))


def meaningful_inliers(residuals_px: np.ndarray, image_size: tuple[int, int], model: str,
                       max_threshold_px: float, max_inliers: int | None = None) -> Meaningful:
    """The a-contrario inlier count of one fitted model (module doc).

    residuals_px: the residual of every tentative match under the model (n of them, the n of
    the NFA; geometry.sampson_distance / sampson_residuals, pnp.reprojection_errors); only
    those <= max_threshold_px can be counted, and at most max_inliers of them (the RANSAC
    inlier count, where the estimator's own mask may differ slightly from these residuals)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    r = np.asarray(residuals_px, np.float64).ravel()
    if np.any(np.isnan(r)):
        raise ValueError("residuals_px must not contain NaN (use inf for a match the model cannot explain)")
    s = MODELS[model][0]
    n = len(r)
    order = np.sort(r)
    usable = int(np.sum(order <= max_threshold_px))
    if max_inliers is not None:
        usable = min(usable, int(max_inliers))
    if usable <= s:
        return Meaningful(0, float("inf"), 0.0)
    k = np.arange(s + 1, usable + 1)
    nfa = log10_nfa(n, k, order[k - 1], image_size, model)
    best = int(np.argmin(nfa))
    return Meaningful(int(k[best]), float(nfa[best]), float(order[k[best] - 1]))

