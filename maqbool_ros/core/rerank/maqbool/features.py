"""MAQBOOL pairwise features, equations 1-10 (docs/method-reference.md, M5), vectorised over candidates.

Notation (M5): F_q (1+n, P) query rows, row 0 = whole image, rows 1..n = boxes;
F_c (K, 10, P) each candidate's whole image + first 9 boxes; a_q, a_c box area
fractions; d_c (K,) ascending squared distances of the whole candidate list. The list
statistics (d_max, d_min, softmax) always use the full list, so a candidate's feature
does not depend on how many others were scored before a deadline.
"""
from __future__ import annotations

import numpy as np

BETA = 10.0  # eq. 5
TOP = 10  # shrink size (Top_boxes)
FEATURE_DIM = 2 + TOP + TOP * TOP  # d_c, R0, C[0, 0..9], vec(M) = 112


def correlation_distances(query: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """Eq. 1: (1+n, P) query rows, (K, 10, P) candidate rows -> C (K, 1+n, 10) squared L2."""
    q = np.asarray(query, np.float32)
    c = np.asarray(cands, np.float32)
    k, m, p = c.shape
    qn = np.einsum("xp,xp->x", q, q)
    cn = np.einsum("kyp,kyp->ky", c, c)
    dots = (c.reshape(k * m, p) @ q.T).reshape(k, m, -1).transpose(0, 2, 1)  # (K, 1+n, 10)
    return np.maximum(qn[None, :, None] + cn[:, None, :] - 2.0 * dots, 0.0)


def list_softmax(d_all: np.ndarray) -> np.ndarray:
    """Eq. 8's exp(-d_j) / sum_k exp(-d_k) over the whole candidate list (stable)."""
    d_all = np.asarray(d_all, np.float64)
    e = np.exp(-(d_all - d_all.min()))
    return e / e.sum()


def pairwise_features(C: np.ndarray, area_q: np.ndarray, area_c: np.ndarray, d_all: np.ndarray,
                      idx: np.ndarray | None = None, beta: float = BETA) -> np.ndarray:
    """Eqs 2-10 -> (len(idx), 112) float32 feature rows x_j.

    C: (k, 1+n, 10) eq. 1 distances of the candidates idx (n >= 10 query boxes);
    area_q (1+n,), area_c (k, 10); d_all (K,) ascending distances of the WHOLE list;
    idx: positions of the k candidates in that list (default: all).
    """
    C = np.asarray(C, np.float64)
    d_all = np.asarray(d_all, np.float64)
    idx = np.arange(len(d_all)) if idx is None else np.asarray(idx, np.int64)
    k, rows, cols = C.shape
    if rows - 1 < TOP or cols != TOP or len(idx) != k:
        raise ValueError(f"C: expected (k, 1+n>=11, {TOP}) for {len(idx)} candidates, got {C.shape}")
    d_j = d_all[idx]
    d_max, d_min = d_all.max(), d_all[0]
    r0_all = np.concatenate([[0.0], np.diff(d_all)])
    r0 = r0_all[idx]
    c_f = C - d_max  # eq. 2
    c_filt = C * (c_f < 0)  # eqs 3-4
    pb_q = np.exp(-(1.0 - np.asarray(area_q, np.float64)))  # eq. 6
    pb_c = np.exp(-(1.0 - np.asarray(area_c, np.float64)))
    s = (beta * np.exp(-r0)[:, None, None] * np.exp(-(d_min + c_filt))
         * pb_q[None, :, None] * pb_c[:, None, :])  # eq. 5
    pf = s * c_f  # eq. 7 (the unfiltered C - d_max, as the authors' code)
    order = np.argsort(C[:, 1:, :], axis=1, kind="stable")[:, :TOP, :]  # ranks among query boxes
    p_sc = np.take_along_axis(pf[:, 1:, :], order, axis=1)
    cs = np.take_along_axis(c_filt[:, 1:, :], order, axis=1)
    positive = np.where(cs > 0, cs, np.inf).reshape(k, -1).min(axis=1)
    c_min = np.where(np.isfinite(positive), positive, 0.0)
    p_sm = np.exp(-c_min) * list_softmax(d_all)[idx]  # eq. 8
    m = p_sm[:, None, None] * p_sc  # eq. 9
    feats = np.concatenate([d_j[:, None], r0[:, None], C[:, 0, :TOP], m.reshape(k, -1)], axis=1)  # eq. 10
    return feats.astype(np.float32)


def _standardise(x: np.ndarray, axis: int) -> np.ndarray:
    """(x - mean) / std along ``axis``; a flat axis (one candidate, equal values) gives 0."""
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / np.maximum(std, 1e-6 * (1.0 + np.abs(mean)))


def list_scale(d_all: np.ndarray) -> float:
    """The query's own distance scale: std of its candidate-list distances (floored, never 0)."""
    d_all = np.asarray(d_all, np.float64)
    return float(max(d_all.std(), 1e-6 * (1.0 + abs(d_all.mean())))) if len(d_all) else 1.0


def base_distances(C_all: np.ndarray) -> np.ndarray:
    """(K,) squared L2 between the query's and each candidate's WHOLE-image row (P-D whitened):
    the netvlad_full distance, which scale_free mode re-ranks from (equals d when P = D)."""
    return np.asarray(C_all, np.float64)[:, 0, 0]


def scale_free_features(C_all: np.ndarray, d_all: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Scale-free pair features (mode scale_free, docs/maqbool.md) -> (len(idx), 112) float32.

    Every distance is expressed against the query's OWN candidate list, so multiplying all
    distances by a constant (another model, another dimension) leaves the features unchanged:

    * [0] (b_j - min b) / s_b, b = base_distances (full-dim whole image), s_b their std;
      [1] (d_j - d_min) / s_d, d = the search distances (descriptor dim), s_d their std;
    * [2:12] the whole query's distance to candidate j's 10 rows, standardised per row
      over the K candidates (how much closer than the other candidates j is there);
    * [12:112] for each of the candidate's 10 rows, the 10 smallest standardised distances
      over the query's boxes, ascending (a 10 x 10 matrix, row-major).

    C_all: (K, 1+n, 10) eq. 1 distances for the WHOLE list (n >= 10 query boxes, padded);
    the per-row standardisation uses all K, so a candidate's feature does not depend on how
    many others a deadline let through. idx: the candidates to return (default all).
    """
    C_all = np.asarray(C_all, np.float64)
    d_all = np.asarray(d_all, np.float64)
    k, rows, cols = C_all.shape
    if rows - 1 < TOP or cols != TOP or len(d_all) != k:
        raise ValueError(f"C_all: expected ({len(d_all)}, 1+n>=11, {TOP}) for the whole list, got {C_all.shape}")
    idx = np.arange(k) if idx is None else np.asarray(idx, np.int64)
    b = base_distances(C_all)
    z = _standardise(C_all, axis=0)[idx]  # (k', 1+n, 10): per (query row, candidate row) over candidates
    boxes = np.sort(z[:, 1:, :], axis=1)[:, :TOP, :]  # (k', 10 smallest over boxes, 10 rows)
    feats = np.concatenate([((b[idx] - b.min()) / list_scale(b))[:, None],
                            ((d_all[idx] - d_all.min()) / list_scale(d_all))[:, None], z[:, 0, :],
                            boxes.transpose(0, 2, 1).reshape(len(idx), -1)], axis=1)
    return feats.astype(np.float32)
