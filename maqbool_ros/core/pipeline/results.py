"""What the pipeline hands on: a keyframe after the descriptor stage, and the candidates of
one query (QueryResult), with their verification checks and sequence evidence."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from maqbool_ros.core.types import EngineOutput
from maqbool_ros.core.verification.stage import CandidateChecks


@dataclass
class Keyframe:
    """A keyframe after the descriptor stage (what the descriptor worker hands on)."""

    keyframe_id: int
    robot_id: str
    stamp: float
    output: EngineOutput
    received: float = field(default_factory=time.perf_counter)
    timings_ms: dict[str, float] = field(default_factory=dict)
    local_features: object | None = None  # verification.LocalFeatures (verification_enabled)
    camera: object | None = None          # verification.Camera of this keyframe, or None
    notes: list[str] = field(default_factory=list)  # sensor problems ("malformed_depth: ...")
    map_id: str = ""  # map / session of the keyframe (stored with it; database/map_ids.py)


@dataclass
class QueryResult:
    """Loop-closure candidates for one query keyframe, best first: the geometrically verified ones
    by inlier count (most first), then the others in the ranking's order (docs/verification.md)."""

    keyframe_id: int
    robot_id: str
    stamp: float
    keyframe_ids: np.ndarray
    robot_ids: list[str]
    stamps: np.ndarray
    descriptor_distances: np.ndarray
    reranked_distances: np.ndarray
    scores: np.ndarray
    method: str
    region_source: str
    region_budget: int
    num_reranked: int
    complete: bool
    timings_ms: dict[str, float]
    score_kind: str = ""  # the scale of ``scores`` (types.SCORE_KINDS)
    # Geometric verification per candidate, read as result.checks.<field> (verification.stage.
    # CandidateChecks; docs/verification.md): verified, attempted, num_inliers, inlier_ratios, pose_types,
    # relative_poses (N, 4, 4) T_query_candidate, pose_covariances (N, 6, 6) of x y z rx ry rz,
    # match_points, pose_frame.
    checks: CandidateChecks | None = None
    map_id: str = ""  # the query keyframe's map / session
    map_ids: list[str] = field(default_factory=list)  # per candidate ("" when unknown)
    # Sequence matching (docs/sequence.md): window length used (1: off) and per candidate the
    # sequence score (1 - d_seq/4, 0 when no run scored it) and the window keyframes aligned.
    sequence_length: int = 1
    sequence_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sequence_aligned: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.checks is None:
            self.checks = CandidateChecks.none(len(self.keyframe_ids))
        if len(self.map_ids) != len(self.keyframe_ids):
            self.map_ids = [""] * len(self.keyframe_ids)
        if len(self.sequence_scores) != len(self.keyframe_ids):
            self.sequence_scores = np.zeros(len(self.keyframe_ids), np.float32)
            self.sequence_aligned = np.zeros(len(self.keyframe_ids), np.int64)

    def truncate(self, n: int) -> None:
        """Keep the first n candidates (best first); the checks are cut alike."""
        if n < len(self):
            self.take(np.arange(n))

    def take(self, idx) -> None:
        """Keep the candidates at positions idx, in that order (every per-candidate field alike)."""
        idx = np.asarray(idx, np.int64)
        for name in ("keyframe_ids", "stamps", "descriptor_distances", "reranked_distances", "scores",
                     "sequence_scores", "sequence_aligned"):
            setattr(self, name, np.asarray(getattr(self, name))[idx])
        self.robot_ids, self.map_ids = [self.robot_ids[i] for i in idx], [self.map_ids[i] for i in idx]
        self.checks = self.checks.take(idx)

    @property
    def num_verified(self) -> int:
        return int(np.count_nonzero(self.checks.verified))

    def __len__(self) -> int:
        return int(len(self.keyframe_ids))

    @property
    def best_score(self) -> float:
        """The largest score (in [0, 1]), which publish_min_score thresholds; -inf when empty.
        Scores are non-increasing along the list except where verification moved a verified
        candidate ahead (the pipeline's geometric re-ranking)."""
        return float(np.max(self.scores)) if len(self.scores) else float("-inf")
