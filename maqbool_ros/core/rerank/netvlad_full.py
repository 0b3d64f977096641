"""method=netvlad_full: search with the global (e.g. 512-D) descriptor, re-rank its top-K by
the full-dimension whitened descriptor (P-D, e.g. 4096) stored per keyframe.

This is the honest baseline MAQBOOL must beat (issue #15): the same network pass, no
regions, only more dimensions. Per keyframe the database stores ``netvlad_full`` =
the L2-normalised whitened descriptor as float16, i.e. 2 * P bytes (P = 4096: 8 KiB;
docs/maqbool.md). Query side keeps float32. Candidates are re-ordered by the squared L2
distance of the re-normalised vectors (float16 rounding leaves norms off by ~1e-3);
scores (score_kind "netvlad_full_similarity") are 1 - d_full/4 clipped to [0, 1].
"""
from __future__ import annotations

import time

import numpy as np

from maqbool_ros.core.descriptor.netvlad_head import l2_normalize
from maqbool_ros.core.types import Candidates, EngineOutput, RerankResult, distance_scores

EXTRA_KEY = "netvlad_full"


def full_distances(query: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """(P,) query and (K, P) candidate vectors -> (K,) squared L2 of their unit versions."""
    q = l2_normalize(np.asarray(query, np.float32).reshape(1, -1), axis=1)[0]
    c = l2_normalize(np.asarray(cands, np.float32).reshape(len(cands), -1), axis=1)
    return np.maximum(2.0 - 2.0 * (c @ q), 0.0)


class NetvladFullReranker:
    """Implements the Reranker protocol for method=netvlad_full (see the module doc)."""

    name = "netvlad_full"

    def __init__(self, config=None, chunk_size: int = 100):
        self.config = config
        self.chunk_size = max(1, int(chunk_size))

    def keyframe_extras(self, out: EngineOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Query side: ``netvlad_full`` (P,) float32; database side: the same as float16."""
        full = l2_normalize(np.asarray(out.whitened, np.float32).reshape(1, -1), axis=1)[0]
        return {EXTRA_KEY: full}, {EXTRA_KEY: full.astype(np.float16)}

    def rerank(self, query: dict[str, np.ndarray], candidates: Candidates,
               candidate_extras: dict[str, np.ndarray], deadline: float) -> RerankResult:
        """Sort by d_full; candidates not reached before ``deadline`` keep descriptor order, score 0."""
        k = len(candidates)
        d = np.asarray(candidates.distances, np.float32)
        new_d = d.astype(np.float64).copy()
        done = 0
        t0 = time.perf_counter()
        if k:
            if EXTRA_KEY not in candidate_extras:
                raise ValueError(f"candidate_extras: no {EXTRA_KEY!r} (database built without "
                                 "method=netvlad_full; rebuild it)")
            full = candidate_extras[EXTRA_KEY]
            while done < k and time.perf_counter() < deadline:
                idx = slice(done, min(done + self.chunk_size, k))
                new_d[idx] = full_distances(query[EXTRA_KEY], full[idx])
                done = idx.stop
        order = np.concatenate([np.argsort(new_d[:done], kind="stable"), np.arange(done, k)]).astype(np.int64)
        scores = np.zeros(k, np.float32)
        scores[:done] = distance_scores(new_d[:done])
        return RerankResult(order=order, reranked_distances=new_d.astype(np.float32), scores=scores,
                            score_kind="netvlad_full_similarity", num_reranked=done, complete=done == k,
                            region_budget=0, timings_ms={"full_distance": (time.perf_counter() - t0) * 1e3})
