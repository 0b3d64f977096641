"""Place-recognition metrics: recall@N, best-match precision/recall, latency percentiles.

Conventions (the VPR-Bench / SLAM ones):

* A query *has* a revisit when its positive set is non-empty. recall@N and recall in the
  PR curve are fractions of those queries.
* The PR curve is built from each query's single best match and its confidence
  (higher = more confident). Accepting matches with confidence >= t gives, over all
  queries (with or without a revisit): precision = correct accepted / accepted, recall =
  correct accepted / queries with a revisit. A query whose best match is not a positive
  (or that has no positive at all) is a false positive once accepted. That is what a SLAM
  back end sees, which is why "max recall at 100% precision" is the figure it cares about.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from maqbool_ros.core.stats import latency_percentiles  # noqa: F401 - the runtime's; re-exported

DEFAULT_RECALL_NS = (1, 5, 10, 20)


def _positive_sets(positives: Sequence[Iterable[int]]) -> list[set[int]]:
    return [set(int(p) for p in pos) for pos in positives]


def recall_at_n(ranked_ids: Sequence[Sequence[int]], positives: Sequence[Iterable[int]],
                ns: Sequence[int] = DEFAULT_RECALL_NS) -> dict[int, float]:
    """Fraction of queries with a revisit whose top N candidates contain a positive.

    ranked_ids[q]: candidate ids for query q, best first (may be shorter than N).
    positives[q]: ids that count as correct for q (empty: q has no revisit and is skipped).
    """
    if len(ranked_ids) != len(positives):
        raise ValueError(f"ranked_ids has {len(ranked_ids)} queries but positives has {len(positives)}")
    if any(int(n) < 1 for n in ns):
        raise ValueError(f"ns: every N must be >= 1, got {list(ns)}")
    pos_sets = _positive_sets(positives)
    ns = sorted(int(n) for n in ns)
    # first_hit[q] = 1-based rank of the first positive (inf when none is retrieved)
    first_hits = []
    for ranked, pos in zip(ranked_ids, pos_sets):
        if not pos:
            continue
        hit = next((r + 1 for r, c in enumerate(ranked) if int(c) in pos), np.inf)
        first_hits.append(hit)
    if not first_hits:
        return {n: float("nan") for n in ns}
    hits = np.asarray(first_hits, dtype=float)
    return {n: float(np.mean(hits <= n)) for n in ns}


@dataclass
class PRCurve:
    """Best-match precision/recall curve, one point per distinct confidence threshold
    (descending), plus its area and the recall reachable with no false positive."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    auc: float
    max_recall_at_100_precision: float

    def to_dict(self) -> dict:
        return {"thresholds": self.thresholds.tolist(), "precision": self.precision.tolist(),
                "recall": self.recall.tolist(), "auc": self.auc,
                "max_recall_at_100_precision": self.max_recall_at_100_precision}


def best_match_pr_curve(best_ids: Sequence[int | None], confidences: Sequence[float],
                        positives: Sequence[Iterable[int]]) -> PRCurve:
    """PR curve from each query's best match.

    best_ids[q]: the top candidate of query q, or None when it returned nothing (never
    accepted). confidences[q]: its confidence, higher is better. Queries with equal
    confidence are accepted together (one curve point per distinct value).
    AUC is the step-wise area sum_i (R_i - R_{i-1}) * P_i (average precision), which
    needs no interpolation and is exact for a hand-computed case.
    """
    if not len(best_ids) == len(confidences) == len(positives):
        raise ValueError("best_ids, confidences and positives must have one entry per query")
    pos_sets = _positive_sets(positives)
    correct = [b is not None and int(b) in pos_sets[q] for q, b in enumerate(best_ids)]
    conf = [float(c) if b is not None else float("-inf") for b, c in zip(best_ids, confidences)]
    return pr_curve_from_correct(correct, conf, sum(1 for p in pos_sets if p))


def pr_curve_from_correct(correct: Sequence[bool], confidences: Sequence[float], num_revisits: int) -> PRCurve:
    """PR curve from one accepted-or-not answer per query: correct[q] says whether query q's
    answer is right, confidences[q] its confidence (-inf or NaN: no answer, never accepted).
    Recall is over num_revisits queries; see best_match_pr_curve."""
    if len(correct) != len(confidences):
        raise ValueError("correct and confidences must have one entry per query")
    answered = [q for q, c in enumerate(confidences) if np.isfinite(c)]
    if num_revisits == 0 or not answered:
        empty = np.zeros(0)
        return PRCurve(empty, empty, empty, 0.0, 0.0)
    conf = np.asarray([float(confidences[q]) for q in answered])
    correct_arr = np.asarray([bool(correct[q]) for q in answered], dtype=float)
    order = np.argsort(-conf, kind="stable")
    conf, correct_arr = conf[order], correct_arr[order]
    tp = np.cumsum(correct_arr)
    accepted = np.arange(1, len(conf) + 1)
    # keep the last index of each run of equal confidences: ties are accepted together
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]
    thresholds = conf[last_of_tie]
    precision = tp[last_of_tie] / accepted[last_of_tie]
    recall = tp[last_of_tie] / num_revisits
    auc = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    perfect = precision >= 1.0
    max_r = float(recall[perfect].max()) if perfect.any() else 0.0
    return PRCurve(thresholds, precision, recall, auc, max_r)
