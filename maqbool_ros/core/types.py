"""The data handed between the pipeline's stages: engine output, database candidates and
a re-ranker's result. Plain dataclasses, so every stage can depend on them without
depending on each other."""
from __future__ import annotations

from dataclasses import dataclass, field

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
