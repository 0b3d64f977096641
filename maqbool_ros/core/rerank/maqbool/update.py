"""MAQBOOL's distance update in mode scale_free: d_new = b + alpha * s * f(P), applied here at run
time; alpha and f are fitted at training time by update_fit.py (offline wing).

b is the full-dimension whole-image distance of query and candidate (netvlad_full's
distance; the search distance d when the model's P equals its descriptor dim), so alpha = 0
IS the netvlad_full ranking and MAQBOOL builds on the stronger baseline.

The paper's d_new = |d - alpha ln P| (eq. 12) mixes an absolute distance with a fixed
alpha; when d < alpha ln P the absolute value FLIPS the order (the closest candidate with
the highest P ends up far), and the right alpha depends on the model's distance scale
(docs/maqbool.md). Here instead:

* s = std of the query's candidate-list base distances (features.list_scale), so alpha is in
  units of the query's own spread and a model's distance scale cancels out;
* f maps the decision layer's P in [1, 2] (1 + probability of a true match) to a
  non-negative penalty that falls as P rises (no absolute value, nothing can flip):
  ``neglog`` f = -ln(P - 1 + 0.01), ``linear`` f = 2 - P;
* alpha and f are chosen at training time on HELD-OUT pairs (out-of-fold P of a 2-fold
  split by query) by the one-standard-error rule: the best grid point maximises recall@1,
  then mean reciprocal rank, then the within-list pair AUC; the CHOSEN point is the smallest
  alpha whose held-out recall@1 is within one standard error of the best one's (binomial
  over the query lists, +1/+2 pseudo-counts; ties at that alpha: the better key above). A
  gain of one or two held-out queries is noise, so it no longer moves alpha (docs/maqbool.md,
  "A stable alpha"). A query's 4 budgets count as 4 lists (correlated), so this SE is on the
  small side, i.e. the rule is if anything too permissive. Stored in the decision layer's
  metadata (``update``). alpha = 0 is on the grid, so a layer that does not clearly help its
  held-out pairs reduces to the descriptor order.
"""
from __future__ import annotations

import numpy as np

P_MAPS = ("neglog", "linear")
ALPHAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


def penalty(p: np.ndarray, p_map: str) -> np.ndarray:
    """f(P) >= 0, decreasing in P (see the module doc)."""
    q = np.clip(np.nan_to_num(np.asarray(p, np.float64), nan=1.0, posinf=1.0, neginf=1.0) - 1.0, 0.0, 1.0)
    if p_map == "neglog":
        return -np.log(q + 0.01)
    if p_map == "linear":
        return 1.0 - q
    raise ValueError(f"update.p_map: {p_map!r} is not one of {P_MAPS}")


def updated_distances(d: np.ndarray, p: np.ndarray, scale: float, alpha: float, p_map: str) -> np.ndarray:
    """d + alpha * scale * f(P): never below d, order-preserving in d at equal P."""
    return np.asarray(d, np.float64) + float(alpha) * float(scale) * penalty(p, p_map)
