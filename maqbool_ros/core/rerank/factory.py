"""Build the re-ranker named by config.method (the pipeline's only entry point here)."""
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


def make_reranker(config, engine):
    """config.method -> NetvladReranker / NetvladFullReranker / MaqboolReranker / LandmarkReranker."""
    method = config.method
    if method == "netvlad":
        return NetvladReranker(config)
    if method == "netvlad_full":
        from maqbool_ros.core.rerank.netvlad_full import NetvladFullReranker

        return NetvladFullReranker(config)
    if method == "maqbool":
        from maqbool_ros.core.rerank.maqbool.default_pdl import load_configured_pdl
        from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

        return MaqboolReranker(config, engine.head, load_configured_pdl(config, engine.head, engine))
    if method == "landmarks":
        from maqbool_ros.core.rerank.landmarks.reranker import LandmarkReranker

        return LandmarkReranker(config, engine)
    raise ValueError(f"method: unknown re-ranking method {method!r}")
