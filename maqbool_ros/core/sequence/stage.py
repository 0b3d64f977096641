"""Sequence matching as a pipeline stage (docs/sequence.md).

How it composes: the database search and the re-ranker run first, as without sequences,
on the current keyframe alone. The sequence stage then scores run ends (which may be
keyframes outside that single-frame list) with the window of the query's last
``sequence_length`` keyframes, and the final order is by sequence distance; the
single-frame candidates no run could score follow in the re-ranker's order with score 0.
Verification and temporal consistency then act on that final order, unchanged: a
sequence-consistent candidate is never verified by its sequence score, only by geometry.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from maqbool_ros.core.config import FIELDS
from maqbool_ros.core.sequence.history import SequenceHistory, Standardizer
from maqbool_ros.core.sequence.runs_search import RunMatches, SequenceParams
from maqbool_ros.core.types import Candidates, RerankResult, distance_scores

#: Longest window kept per stream: the upper end of sequence_length's range in the schema.
MAX_WINDOW = int(FIELDS["sequence_length"].metadata["range"][1])


@dataclass
class Ranked:
    """The candidates of one query in their final order, with per-candidate evidence."""

    candidates: Candidates
    extras: dict[str, np.ndarray]
    reranked_distances: np.ndarray
    scores: np.ndarray
    score_kind: str
    sequence_scores: np.ndarray  # 1 - d_seq/4 in [0, 1]; 0 when no run scored the candidate
    sequence_aligned: np.ndarray  # window keyframes aligned on the candidate's best run (0: none)
    sequence_length: int = 1  # window length used (1: single-frame)
    search_mode: str = ""  # "full" or "shortlist" (runs_search.search_runs)
    single_best: int | None = None  # position of the re-ranker's best candidate (verified too; None: 0 or none)


def single_frame(cands: Candidates, extras: dict[str, np.ndarray], rr: RerankResult) -> Ranked:
    """The re-ranker's order as it is (sequence matching off)."""
    order = np.asarray(rr.order, np.int64)
    n = len(order)
    return Ranked(cands.take(order), {k: v[order] for k, v in extras.items()},
                  np.asarray(rr.reranked_distances)[order], np.asarray(rr.scores)[order], rr.score_kind,
                  np.zeros(n, np.float32), np.zeros(n, np.int64))


class SequenceStage:
    """Windows, standardisation and the merge of run matches with the re-ranked list."""

    def __init__(self) -> None:
        self.history = SequenceHistory(MAX_WINDOW)
        self.standardizer = Standardizer()

    def reset(self) -> None:
        self.history.break_stream()
        self.standardizer.reset()

    def rank(self, cfg, database, key, stamp: float, descriptor: np.ndarray, cands: Candidates,
             extras: dict[str, np.ndarray], rr: RerankResult, rules: dict, timings: dict[str, float],
             excluded: frozenset = frozenset()) -> Ranked:
        """Score the window's runs and merge them with the re-ranked list (top_k in all)."""
        t0 = time.perf_counter()
        gap = float(np.median(cands.distances)) if len(cands) else 2.0
        hits = (*database.run_keys(cands.robot_ids, cands.keyframe_ids), gap)
        window = self.history.window(key, stamp, descriptor, hits, cfg.sequence_length)
        seq_cands, seq_extras, found = database.search_sequence(window, cfg.top_k + len(excluded),
                                                                SequenceParams.from_config(cfg), **rules)
        self.history.push(key, stamp, descriptor, hits)
        timings["sequence"] = (time.perf_counter() - t0) * 1e3
        return merge(seq_cands, seq_extras, found, cands, extras, rr, cfg.top_k, len(window), excluded)


def merge(seq_cands: Candidates, seq_extras: dict[str, np.ndarray], found: RunMatches, cands: Candidates,
          extras: dict[str, np.ndarray], rr: RerankResult, k: int, length: int,
          excluded: frozenset = frozenset()) -> Ranked:
    """Run ends by sequence distance, then the single-frame candidates without a run in the
    re-ranker's order; at most k, none of the excluded (robot id, keyframe id) keys. A run
    end that is also a single-frame candidate keeps the re-ranker's distance as its
    reranked_distance. cands / rr must already be free of the excluded keys."""
    key_of = {(r, int(i)): j for j, (r, i) in enumerate(zip(cands.robot_ids, cands.keyframe_ids, strict=True))}
    seq_keys = [(r, int(i)) for r, i in zip(seq_cands.robot_ids, seq_cands.keyframe_ids, strict=True)]
    best = (cands.robot_ids[int(rr.order[0])], int(cands.keyframe_ids[int(rr.order[0])])) if len(rr.order) else None
    head = [j for j, kk in enumerate(seq_keys) if kk not in excluded][:k]
    if best is not None and len(head) == k and best not in {seq_keys[j] for j in head}:
        head = head[:-1]  # keep room for the single-frame best: it is verified too (docs/sequence.md)
    head_idx = np.array(head, np.int64)
    in_head = {seq_keys[j] for j in head_idx}
    rest = [int(j) for j in rr.order if (cands.robot_ids[j], int(cands.keyframe_ids[j])) not in in_head]
    rest = np.array(rest[: max(0, k - len(head_idx))], np.int64)
    rr_dist = np.asarray(rr.reranked_distances, np.float32)
    reranked = np.array([rr_dist[key_of[seq_keys[j]]] if seq_keys[j] in key_of else seq_cands.distances[j]
                         for j in head_idx] + [rr_dist[j] for j in rest], np.float32)
    head, tail = seq_cands.take(head_idx), cands.take(rest)
    merged = Candidates(np.concatenate([head.rows, tail.rows]), np.concatenate([head.keyframe_ids, tail.keyframe_ids]),
                        head.robot_ids + tail.robot_ids, np.concatenate([head.stamps, tail.stamps]),
                        np.concatenate([head.distances, tail.distances]).astype(np.float32))
    parts = [(seq_extras, head_idx)] * bool(len(head_idx)) + [(extras, rest)] * bool(len(rest))
    keys = set.intersection(*(set(e) for e, _ in parts)) if parts else set()
    stacked = {key: np.concatenate([e[key][idx] for e, idx in parts]) for key in keys}
    seq_scores = np.concatenate([distance_scores(found.alignment.distances[head_idx]), np.zeros(len(rest), np.float32)])
    aligned = np.concatenate([found.alignment.aligned[head_idx], np.zeros(len(rest), np.int64)])
    final_keys = list(zip(merged.robot_ids, (int(i) for i in merged.keyframe_ids)))
    single_best = final_keys.index(best) if best is not None and best in final_keys else None
    return Ranked(merged, stacked, reranked, seq_scores.copy(), "sequence_similarity", seq_scores, aligned, length,
                  found.mode, single_best)
