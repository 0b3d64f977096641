"""The contract between the pipeline and its re-rankers (netvlad, maqbool, landmarks).

A re-ranker computes per-keyframe *extras* once, when a keyframe arrives (MAQBOOL's
region descriptors, landmark region vectors); the pipeline stores the database-side
part in the keyframe database's region cache, so queries never recompute candidates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class EngineOutput:
    """One forward pass of the descriptor engine for one image.

    descriptor: (descriptor_dim,) L2-normalised global descriptor.
    whitened: (P,) full whitened descriptor before truncation (P = head.output_dim).
    feature_map: (D, H', W') the tensor NetVLAD aggregates (before its per-location L2).
    landmark_features: (D2, H', W') the preceding conv layer's output (ConvNet landmarks'
        local descriptors), or None when the model does not export it.
    image: (H, W, 3) uint8 RGB image as fed to the network (after resizing).
    stride: pixels of `image` per feature-map cell.
    """

    descriptor: np.ndarray
    whitened: np.ndarray
    feature_map: np.ndarray
    landmark_features: np.ndarray | None
    image: np.ndarray
    stride: int


@dataclass
class Candidates:
    """Database search result for one query, ascending descriptor distance.

    rows: internal database rows (for region-cache look-ups); keyframe_ids, robot_ids,
    stamps (seconds) and distances (squared L2) per candidate.
    """

    rows: np.ndarray
    keyframe_ids: np.ndarray
    robot_ids: list[str]
    stamps: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return int(len(self.rows))


@dataclass
class RerankResult:
    """A re-ranker's answer: the new order of the candidates and its evidence.

    order: permutation of range(len(candidates)), best first.
    reranked_distances / scores: per candidate, in the ORIGINAL candidate order.
    num_reranked: candidates scored before the deadline; complete: all were.
    region_budget: query regions actually used (0 when not region based).
    timings_ms: stage name -> milliseconds, for latency reports.
    """

    order: np.ndarray
    reranked_distances: np.ndarray
    scores: np.ndarray
    num_reranked: int
    complete: bool
    region_budget: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


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
