"""Fitting MAQBOOL's scale_free distance update (offline wing): alpha and the P map chosen on
held-out lists by the one-standard-error rule (update.py's module doc; docs/maqbool.md,
"A stable alpha"). The runtime applies the result (update.updated_distances)."""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.rerank.maqbool.update import ALPHAS, P_MAPS, updated_distances


def _ranks(lists, alpha: float, p_map: str) -> tuple[np.ndarray, float]:
    """(rank (0-based) of the first positive per list, mean within-list pair AUC) under the update."""
    ranks, aucs = [], []
    for d, p, scale, positive in lists:
        new_d = updated_distances(d, p, scale, alpha, p_map)
        order = np.argsort(new_d, kind="stable")
        ranks.append(int(np.flatnonzero(positive[order])[0]))
        pos, neg = new_d[positive], new_d[~positive]
        if len(neg):
            aucs.append(float(np.mean(pos[:, None] < neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])))
    return np.asarray(ranks), float(np.mean(aucs)) if aucs else 1.0


def fit_update(lists, rule: str = "one_se") -> dict:
    """Choose (alpha, p_map) on held-out lists [(d (K,), P (K,), scale, positive (K,) bool)].

    Only lists with a positive count. rule "one_se" (the recipe; module doc) or "best" (the
    best grid point, the rule before the one-SE fix, kept for benchmarks/alpha_stability.py).
    Returns the metadata dict stored in the layer (``heldout_r1_se``: the standard error used)."""
    if rule not in ("one_se", "best"):
        raise ValueError(f"rule: {rule!r} is not one of ('one_se', 'best')")
    lists = [t for t in lists if np.asarray(t[3]).any()]
    if not lists:
        return {"alpha": 0.0, "p_map": "linear", "heldout_queries": 0, "heldout_r1": float("nan"),
                "heldout_r1_base": float("nan")}
    base, base_auc = _ranks(lists, 0.0, "linear")
    grid = []
    for p_map in P_MAPS:
        for alpha in ALPHAS:
            r, auc = _ranks(lists, alpha, p_map)
            grid.append(((float(np.mean(r == 0)), float(np.mean(1.0 / (1 + r))), round(auc, 6), -alpha),
                         alpha, p_map, r))
    best = max(grid, key=lambda g: g[0])  # first of equal keys: P_MAPS order
    # binomial standard error of the best point's recall@1 over the query lists; the +1/+2 pseudo-counts keep it
    # above 0 when recall@1 is 0 or 1 (a saturated held-out set still carries sampling noise)
    n_lists = len(best[3])
    p_hat = (float(np.sum(best[3] == 0)) + 1.0) / (n_lists + 2.0)
    se = float(np.sqrt(p_hat * (1.0 - p_hat) / n_lists)) if rule == "one_se" else 0.0
    ok = [g for g in grid if g[0][0] >= best[0][0] - se - 1e-12] if rule == "one_se" else [best]
    chosen = max(ok, key=lambda g: (-g[1], g[0]))  # smallest alpha, then the better key
    (r1, mrr, auc, _), alpha, p_map, _ = chosen
    return {"alpha": float(alpha), "p_map": p_map, "heldout_queries": len(lists), "heldout_r1": r1,
            "heldout_mrr": mrr, "heldout_auc": auc, "heldout_r1_base": float(np.mean(base == 0)),
            "heldout_auc_base": base_auc, "heldout_r1_best": best[0][0], "heldout_r1_se": se,
            "rule": rule}


def alpha_bootstrap(lists, reps: int = 50, seed: int = 0, rule: str = "one_se") -> np.ndarray:
    """Chosen alpha of fit_update on ``reps`` bootstrap resamples (with replacement) of the held-out
    lists: the spread says how much the choice rides on a few queries."""
    lists = [t for t in lists if np.asarray(t[3]).any()]
    if not lists:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    return np.array([fit_update([lists[i] for i in rng.integers(0, len(lists), len(lists))], rule)["alpha"]
                     for _ in range(reps)])
