"""The data handed between the pipeline's stages: engine output, database candidates and
a re-ranker's result (with the score scales it may use), and the one conversion between
ROS time stamps and the float seconds the stages carry. Plain dataclasses and functions,
so every stage (and the node, and bag tools) can depend on them without depending on
each other."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NANOSECONDS = 1_000_000_000


def stamp_to_seconds(stamp) -> float:
    """A builtin_interfaces/Time (rclpy or rosbags: anything with sec and nanosec) -> seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_sec_nanosec(seconds: float) -> tuple[int, int]:
    """Seconds -> (sec, nanosec) of a builtin_interfaces/Time, 0 <= nanosec < 1e9; a fraction
    that rounds up to a whole second carries into sec."""
    sec = int(np.floor(seconds))
    nanosec = int(round((seconds - sec) * NANOSECONDS))
    if nanosec >= NANOSECONDS:
        sec, nanosec = sec + 1, nanosec - NANOSECONDS
    return sec, nanosec


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

    def take(self, idx: np.ndarray) -> Candidates:
        """The candidates at positions idx (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Candidates(rows=self.rows[idx], keyframe_ids=self.keyframe_ids[idx],
                          robot_ids=[self.robot_ids[i] for i in idx], stamps=self.stamps[idx],
                          distances=self.distances[idx])


#: score_kind -> what RerankResult.scores means. Every kind is a number in [0, 1], higher
#: = more likely the same place, non-increasing along the re-ranked order, and 0 for a
#: candidate the re-ranker did not reach before its deadline (docs/method-reference.md).
SCORE_KINDS = {
    "netvlad_similarity": "1 - d/4 of the squared L2 descriptor distance d (unit vectors: d in [0, 4])",
    "netvlad_full_similarity": "1 - d/4 of the squared L2 distance of the re-normalised full-dimension whitened "
                               "descriptors (method netvlad_full)",
    "maqbool_similarity": "1 - d_new/4 of MAQBOOL's re-ranked distance, clipped to [0, 1] (d_new = |d - alpha ln P| "
                          "in maqbool_mode paper, d + alpha s f(P) in scale_free)",
    "landmarks_match": "Q_mean / w_max^2 clipped to [0, 1] (w_max: largest IDF weight, 1 without vocabulary)",
    "sequence_similarity": "1 - d_seq/4 of the mean squared descriptor distance along the best aligned run "
                           "(sequence_length > 1; 0 for a candidate no run scored: docs/sequence.md)",
}


def distance_scores(distances: np.ndarray) -> np.ndarray:
    """1 - d/4 clipped to [0, 1]: squared L2 distances of unit vectors (0..4, float
    rounding can step just outside) -> float32 scores, higher = closer."""
    return np.clip(1.0 - np.asarray(distances, np.float64) / 4.0, 0.0, 1.0).astype(np.float32)


@dataclass
class RerankResult:
    """A re-ranker's answer: the new order of the candidates and its evidence.

    order: permutation of range(len(candidates)), best first.
    reranked_distances / scores: per candidate, in the ORIGINAL candidate order.
    score_kind: a key of SCORE_KINDS, the scale of ``scores`` (checked with it here:
        finite, in [0, 1], so no NaN or out-of-range score reaches a message).
    num_reranked: candidates scored before the deadline; complete: all were.
    region_budget: query regions actually used (0 when not region based).
    timings_ms: stage name -> milliseconds, for latency reports.
    """

    order: np.ndarray
    reranked_distances: np.ndarray
    scores: np.ndarray
    score_kind: str
    num_reranked: int
    complete: bool
    region_budget: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind: {self.score_kind!r} is not one of {sorted(SCORE_KINDS)}")
        scores = np.asarray(self.scores)
        if scores.shape != np.shape(self.order):
            raise ValueError(f"scores: shape {scores.shape} differs from order's {np.shape(self.order)}")
        bad = ~(np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0))
        if bad.any():
            raise ValueError(f"scores: {int(bad.sum())} value(s) outside [0, 1] or not finite "
                             f"(first: {scores[bad][0]!r}) for score_kind {self.score_kind!r}")
