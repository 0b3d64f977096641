"""Mutual nearest-neighbour region matching and image scores Q / Q_mean (docs/method-reference.md, L3.6).

s_ij = <P^B_i, P^A_j> (unit vectors: cosine). A pair is kept when j is i's best match
and i is j's best match (first index on ties, as np.argmax), and s_ij != 0.
Q = sum of s_ij * w^B_i * w^A_j over kept pairs; Q_mean = Q / m_B (query regions).
All K candidates are scored in one batched matrix product plus two argmaxes.

The widened candidate vectors and the (K, M, m) similarity block live in per-thread
scratch buffers reused across calls: fresh multi-megabyte arrays are mmap'ed and
page-faulted in on every call by glibc, which doubled the matching time in the
benchmarks (docs/landmarks.md, Performance).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from maqbool_ros.core.rerank.blas import single_thread_blas


@dataclass
class MatchScores:
    """Per candidate: q (K,) summed score, q_mean (K,) = q / query regions, matches (K,)."""

    q: np.ndarray
    q_mean: np.ndarray
    matches: np.ndarray


def match_batch(query_vectors: np.ndarray, query_weights: np.ndarray, cand_vectors: np.ndarray,
                cand_weights: np.ndarray, cand_counts: np.ndarray | None = None) -> MatchScores:
    """Score one query against K candidates.

    query_vectors (m, D), query_weights (m,); cand_vectors (K, M, D) (float16 is fine),
    cand_weights (K, M); cand_counts (K,) valid rows per candidate (rows beyond it are
    padding and never match). Omitted: all M rows are valid.
    """
    q = np.asarray(query_vectors, dtype=np.float32)
    c = np.asarray(cand_vectors)
    if q.ndim != 2 or c.ndim != 3 or c.shape[2] != q.shape[1]:
        raise ValueError(f"vectors: query {q.shape} and candidates {c.shape} must be (m, D) and (K, M, D)")
    k, big_m, _ = c.shape
    m = q.shape[0]
    wq = np.asarray(query_weights, dtype=np.float32).reshape(m)
    wc = np.asarray(cand_weights, dtype=np.float32).reshape(k, big_m)
    counts = np.full(k, big_m) if cand_counts is None else np.minimum(np.asarray(cand_counts).reshape(k), big_m)
    used = int(counts.max()) if k else 0
    if m == 0 or used == 0:
        zeros = np.zeros(k, dtype=np.float32)
        return MatchScores(zeros, zeros.copy(), np.zeros(k, dtype=np.int64))
    # Only columns some candidate uses; float16 storage is widened once here.
    c = c[:, :used]
    if c.dtype != np.float32 or not c.flags.c_contiguous:
        c = _scratch("cands", c.shape, c)
    wc = wc[:, :used]
    # One GEMM over all candidates' regions: (K*M, D) @ (D, m), on one BLAS thread: the
    # network worker runs beside re-ranking, and a second BLAS thread on a busy CPU makes
    # every call wait for it to be scheduled (docs/landmarks.md, Performance).
    sims = _scratch("sims", (k * used, m))
    with single_thread_blas():
        np.matmul(c.reshape(k * used, -1), q.T, out=sims)
    sims = sims.reshape(k, used, m)  # (K, M, m)
    for row in np.flatnonzero(counts < used):  # padding rows never match (few candidates)
        sims[row, counts[row]:, :] = -np.inf
    best_j = sims.argmax(axis=1)  # (K, m): each query region's best candidate region
    best_i = sims.argmax(axis=2)  # (K, M): each candidate region's best query region
    rows = np.arange(k)[:, None]
    mutual = np.take_along_axis(best_i, best_j, axis=1) == np.arange(m)[None, :]
    s = np.take_along_axis(sims, best_j[:, None, :], axis=1)[:, 0, :]  # (K, m)
    keep = mutual & np.isfinite(s) & (s != 0)
    contrib = np.where(keep, s, 0.0) * wq[None, :] * wc[rows, best_j]
    total = contrib.sum(axis=1, dtype=np.float64)
    return MatchScores(total.astype(np.float32), (total / m).astype(np.float32),
                       keep.sum(axis=1))


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], fill: np.ndarray | None = None) -> np.ndarray:
    """A float32 array of this shape backed by this thread's reusable buffer `name`
    (grown when too small), filled from `fill` when given. Valid until the next call."""
    size = int(np.prod(shape))
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=np.float32)
        setattr(_SCRATCH, name, buf)
    out = buf[:size].reshape(shape)
    if fill is not None:
        np.copyto(out, fill)
    return out
