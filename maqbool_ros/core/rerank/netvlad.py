"""method=netvlad: the database's own order, no re-ranking (the default method)."""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.types import Candidates, EngineOutput, RerankResult, distance_scores


class NetvladReranker:
    """method=netvlad: keep the database's order; scores 1 - d/4 (netvlad_similarity)."""

    name = "netvlad"

    def __init__(self, config=None):
        self.config = config

    def keyframe_extras(self, out: EngineOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return {}, {}

    def rerank(self, query: dict[str, np.ndarray], candidates: Candidates,
               candidate_extras: dict[str, np.ndarray], deadline: float) -> RerankResult:
        d = np.asarray(candidates.distances, np.float32)
        return RerankResult(order=np.arange(len(d), dtype=np.int64), reranked_distances=d.copy(),
                            scores=distance_scores(d), score_kind="netvlad_similarity", num_reranked=len(d),
                            complete=True, region_budget=0)
