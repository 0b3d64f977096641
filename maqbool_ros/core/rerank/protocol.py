"""The contract between the pipeline and its re-rankers (netvlad, maqbool, landmarks).

A re-ranker computes per-keyframe *extras* once, when a keyframe arrives (MAQBOOL's
region descriptors, landmark region vectors); the pipeline stores the database-side
part in the keyframe database's region cache, so queries never recompute candidates.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from maqbool_ros.core.types import Candidates, EngineOutput, RerankResult


class Reranker(Protocol):
    """What the pipeline needs from a re-ranking method."""

    name: str

    def keyframe_extras(self, out: EngineOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-keyframe work, done once: returns (query_side, database_side) arrays.

        query_side is used when this keyframe is the query; database_side (fixed shapes
        per key, compact dtypes such as float16) is stored in the keyframe database's
        region cache and handed back when the keyframe is a candidate.
        """
        ...

    def rerank(self, query: dict[str, np.ndarray], candidates: Candidates,
               candidate_extras: dict[str, np.ndarray], deadline: float) -> RerankResult:
        """Re-order candidates. candidate_extras[key] is stacked over candidates
        (leading axis len(candidates)). deadline: time.perf_counter() value to stop at."""
        ...
