"""The offline evaluation protocol and the scoring of its results.

Protocols (one per dataset kind):

* query_ref: every ref image goes into the database (keyframe id = ref index, robot
  ``"ref"``, stamp = index); then every query is searched and re-ranked with
  ``add_to_database=False``. Exclusion rules are off (a map is not "recent").
* sequence: frames are fed in order with ``add_to_database=True`` and the config's
  exclusion window (keyframe id = frame index, stamp = the dataset's clock). Every frame
  is a query; frames without a revisit count only against precision.

Online evaluation scores LoopClosureCandidate messages recorded from a running node
(:func:`records_from_candidates`) with the same code. Scoring: :func:`summarize`.
Report files (JSON/CSV/plots): maqbool_ros.core.evaluation.report.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.data.datasets import Dataset
from maqbool_ros.core.evaluation.metrics import DEFAULT_RECALL_NS, best_match_pr_curve, latency_percentiles, recall_at_n

REF_ROBOT, QUERY_ROBOT, SEQUENCE_ROBOT = "ref", "query", "robot0"
#: per-stage timings kept in reports (the pipeline's keys; "total" = whole keyframe)
LATENCY_STAGES = ("descriptor", "local_features", "extras", "search", "rerank", "sequence", "verify", "total")
#: Optional file in a dataset folder: query (query_ref) or frame (sequence) indices, one per
#: line, where a new traversal starts; sequence matching's window restarts there (docs/sequence.md).
SEQUENCE_BREAKS_FILE = "sequence_breaks.txt"


@dataclass
class QueryRecord:
    """What one query returned, in dataset indices (ref indices, or frame indices)."""

    query_index: int
    ranked: np.ndarray
    confidence: float  # score of the best candidate, -inf when there is none
    timings_ms: dict[str, float] = field(default_factory=dict)
    complete: bool = True
    region_budget: int = 0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per ranked candidate
    # geometric verification per ranked candidate (all False / 0 / "none" when it did not run)
    attempted: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    verified: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    num_inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pose_types: list[str] = field(default_factory=list)
    relative_poses: np.ndarray | None = None  # (N, 4, 4) T_query_candidate, meaningful where verified
    pose_covariances: np.ndarray | None = None  # (N, 6, 6) of x y z rx ry rz (verification/geometry.py)

    def __post_init__(self) -> None:
        n = len(self.ranked)
        if len(self.verified) != n:  # records made without verification: nothing verified
            self.attempted, self.verified = np.zeros(n, bool), np.zeros(n, bool)
            self.num_inliers, self.pose_types = np.zeros(n, np.int64), ["none"] * n


def protocol_config(dataset: Dataset, config: MaqboolConfig) -> MaqboolConfig:
    """The config the protocol runs with: query_ref turns the exclusion window off."""
    if dataset.kind == "query_ref":
        return config.replace(exclude_recent_keyframes=0, exclude_recent_seconds=0.0, robot_filter="all")
    return config


def num_queries(dataset: Dataset) -> int:
    return len(dataset.queries) if dataset.kind == "query_ref" else len(dataset.frames)


def _record(index: int, result: Any) -> QueryRecord:
    """A QueryRecord from a QueryResult. The protocol numbers keyframes by dataset index (ref
    r or frame i gets keyframe id r or i), so candidate keyframe ids ARE the ranked indices."""
    if result is None or len(result) == 0:
        return QueryRecord(index, np.zeros(0, dtype=np.int64), float("-inf"),
                           dict(getattr(result, "timings_ms", {}) or {}))
    rec = QueryRecord(index, np.asarray(result.keyframe_ids, dtype=np.int64),
                      float(result.scores[0]), dict(result.timings_ms), bool(result.complete),
                      int(result.region_budget), np.asarray(result.scores, dtype=float))
    checks = getattr(result, "checks", None)
    if checks is not None and len(checks.verified) == len(rec.ranked):
        rec.attempted, rec.verified = np.asarray(checks.attempted, bool), np.asarray(checks.verified, bool)
        rec.num_inliers, rec.pose_types = np.asarray(checks.num_inliers, np.int64), list(checks.pose_types)
        rec.relative_poses = np.asarray(checks.relative_poses, dtype=float)
        rec.pose_covariances = np.asarray(checks.pose_covariances, dtype=float)
    return rec


def _sensors(dataset: Dataset, i: int) -> dict[str, Any]:
    """camera / depth of sequence frame i for pipeline.process, when the dataset has them
    (data.rgbd_sequence); else nothing (the config's camera_* parameters apply)."""
    out: dict[str, Any] = {}
    if getattr(dataset, "camera", None) is not None:
        out["camera"] = dataset.camera
    if getattr(dataset, "depths", None) is not None:
        out["depth"] = dataset.depths[i]
    return out


def run_offline(dataset: Dataset, pipeline: Any, *, progress: bool = True,
                on_result: Callable[[int, Any], None] | None = None) -> list[QueryRecord]:
    """Run the protocol through ``pipeline.process`` (a LoopClosurePipeline or anything with
    the same method). on_result(query_index, QueryResult) is called after each query (the
    demo prints candidates with it). The pipeline's database must be empty."""
    from tqdm import tqdm

    records: list[QueryRecord] = []
    breaks = sequence_breaks(dataset)
    restart = getattr(getattr(pipeline, "sequence", None), "history", None)
    if dataset.kind == "query_ref":
        for r in tqdm(range(len(dataset.refs)), desc="map (refs)", unit="img", disable=not progress):
            pipeline.process(dataset.refs[r], keyframe_id=r, robot_id=REF_ROBOT, stamp=float(r),
                             add_to_database=True, query=False)
        base = len(dataset.refs)
        for q in tqdm(range(len(dataset.queries)), desc="queries", unit="img", disable=not progress):
            if q in breaks and restart is not None:
                restart.break_stream((QUERY_ROBOT, ""))
            res = pipeline.process(dataset.queries[q], keyframe_id=base + q, robot_id=QUERY_ROBOT,
                                   stamp=float(base + q), add_to_database=False, query=True)
            records.append(_record(q, res))
            if on_result is not None:
                on_result(q, res)
    else:
        for i in tqdm(range(len(dataset.frames)), desc="frames", unit="img", disable=not progress):
            if i in breaks and restart is not None:
                restart.break_stream((SEQUENCE_ROBOT, ""))
            res = pipeline.process(dataset.frames[i], keyframe_id=i, robot_id=SEQUENCE_ROBOT,
                                   stamp=float(dataset.stamps[i]), add_to_database=True, query=True,
                                   **_sensors(dataset, i))
            records.append(_record(i, res))
            if on_result is not None:
                on_result(i, res)
    return records


def sequence_breaks(dataset: Dataset) -> set[int]:
    """Indices where a new traversal starts, from the dataset folder's SEQUENCE_BREAKS_FILE
    (none: every query / frame follows the previous one). ValueError naming file and line."""
    from pathlib import Path

    path = Path(getattr(dataset, "source", "") or "") / SEQUENCE_BREAKS_FILE
    if not path.is_file():
        return set()
    out = set()
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit() or int(text) >= num_queries(dataset):
            raise ValueError(f"{path}:{line_no}: {text[:40]!r} is not an index in [0, {num_queries(dataset)})")
        out.add(int(text))
    return out


def records_from_candidates(dataset: Dataset, messages: Iterable[Any]) -> list[QueryRecord]:
    """Records from LoopClosureCandidate messages (rclpy or rosbags objects) of a node fed
    with a bag written by ``maqbool bag from-images`` (keyframe ids: refs 0..R-1, queries
    R..R+Q-1, or frame indices). For query_ref the node also stored the queries, so
    candidates that are not refs are dropped before scoring."""
    n = num_queries(dataset)
    base = len(dataset.refs) if dataset.kind == "query_ref" else 0
    by_query: dict[int, QueryRecord] = {}
    for msg in messages:
        q = int(msg.query_keyframe_id) - base
        if not 0 <= q < n:
            continue  # a ref keyframe (its own search is not part of the protocol)
        ids = np.asarray([int(c.keyframe_id) for c in msg.candidates], dtype=np.int64)
        scores = np.asarray([float(c.score) for c in msg.candidates], dtype=float)
        keep = ids < base if dataset.kind == "query_ref" else np.ones(len(ids), dtype=bool)
        ids, scores = ids[keep], scores[keep]
        timings = {"descriptor": float(msg.descriptor_ms), "search": float(msg.search_ms),
                   "rerank": float(msg.rerank_ms), "total": float(msg.latency_ms)}
        if hasattr(msg, "verify_ms"):
            timings["verify"] = float(msg.verify_ms)
        cands = [c for c, k in zip(msg.candidates, keep) if k]
        by_query[q] = QueryRecord(q, ids, float(scores[0]) if len(scores) else float("-inf"), timings,
                                  bool(msg.reranking_complete), int(msg.region_budget), scores,
                                  **_checks_from_msg(cands))
    return [by_query.get(q, QueryRecord(q, np.zeros(0, dtype=np.int64), float("-inf"))) for q in range(n)]


_MSG_POSE_TYPES = {0: "none", 1: "rotation_unit_translation", 2: "metric"}  # CandidateMatch.POSE_*


def _checks_from_msg(cands: list) -> dict[str, Any]:
    """Verification fields of CandidateMatch messages (absent in older messages: nothing verified)."""
    if not cands or not hasattr(cands[0], "verified"):
        return {}
    from maqbool_ros.core.verification.geometry import transform_from_pose

    verified = np.asarray([bool(c.verified) for c in cands])
    return {"attempted": verified | np.asarray([int(c.num_inliers) > 0 for c in cands]), "verified": verified,
            "num_inliers": np.asarray([int(c.num_inliers) for c in cands], np.int64),
            "pose_types": [_MSG_POSE_TYPES.get(int(c.pose_type), "none") for c in cands],
            "relative_poses": np.stack([transform_from_pose(c.relative_pose.pose) if c.has_relative_pose else np.eye(4)
                                        for c in cands])}


def summarize(dataset: Dataset, records: Sequence[QueryRecord],
              recall_ns: Sequence[int] = DEFAULT_RECALL_NS, curve_max_n: int = 50,
              verify: bool = False) -> dict[str, Any]:
    """Metrics over the records: recall@N (the headline Ns and a 1..curve_max_n curve),
    the best-match PR curve with its AUC and max recall at 100% precision, latencies; with
    verify, the ``verified`` object (evaluation.verified.summarize_verified)."""
    positives = [dataset.positives[r.query_index] for r in records]
    ranked = [r.ranked for r in records]
    curve_ns = list(range(1, curve_max_n + 1))
    curve = recall_at_n(ranked, positives, curve_ns)
    headline = recall_at_n(ranked, positives, recall_ns)
    best = [int(r.ranked[0]) if len(r.ranked) else None for r in records]
    pr = best_match_pr_curve(best, [r.confidence for r in records], positives)
    stages: dict[str, list[float]] = {}
    for r in records:
        for stage, ms in r.timings_ms.items():
            if stage in LATENCY_STAGES:
                stages.setdefault(stage, []).append(ms)
    out: dict[str, Any] = {f"recall@{n}": headline[n] for n in recall_ns}
    out.update({
        "pr_auc": pr.auc,
        "max_recall_at_100_precision": pr.max_recall_at_100_precision,
        "num_queries": len(records),
        "num_queries_with_revisit": int(sum(1 for p in positives if len(p))),
        "num_incomplete_reranks": int(sum(1 for r in records if not r.complete)),
        "region_budget_used": {"mean": float(np.mean([r.region_budget for r in records])) if records else 0.0},
        "latency_ms": latency_percentiles({s: stages[s] for s in LATENCY_STAGES if s in stages}),
        "recall_curve": {"n": curve_ns, "recall": [curve[n] for n in curve_ns]},
        "pr_curve": {"thresholds": pr.thresholds.tolist(), "precision": pr.precision.tolist(),
                     "recall": pr.recall.tolist()},
    })
    if verify:
        from maqbool_ros.core.evaluation.verified import summarize_verified

        out["verified"] = summarize_verified(dataset, records)
    return out


def evaluate_offline(dataset: Dataset, config: MaqboolConfig, *, engine: Any = None, progress: bool = True,
                     on_result: Callable[[int, Any], None] | None = None, verify: bool | None = None):
    """Build a pipeline for config (sharing ``engine`` if given), run the protocol and score it.
    Returns (summary dict, records, pipeline)."""
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    pipeline = LoopClosurePipeline(protocol_config(dataset, config), engine=engine)
    records = run_offline(dataset, pipeline, progress=progress, on_result=on_result)
    verify = config.verification_enabled if verify is None else verify
    return summarize(dataset, records, verify=verify), records, pipeline
