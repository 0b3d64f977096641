"""Metrics: recall@N against brute force, PR curve/AUC against a hand-computed case."""
from __future__ import annotations

import numpy as np
import pytest

from maqbool_ros.core.evaluation.metrics import best_match_pr_curve, latency_percentiles, recall_at_n


def _brute_force_recall(dist: np.ndarray, positives: list[set[int]], n: int) -> float:
    """For each query, check every ref: is some positive strictly among the n nearest?"""
    hits, total = 0, 0
    for q in range(dist.shape[0]):
        if not positives[q]:
            continue
        total += 1
        found = False
        for r in positives[q]:
            closer = sum(1 for j in range(dist.shape[1]) if dist[q, j] < dist[q, r])
            if closer < n:
                found = True
        hits += found
    return hits / total


def test_recall_at_n_equals_brute_force():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(60, 16))
    queries = refs[:40] + rng.normal(scale=1.2, size=(40, 16))
    dist = ((queries[:, None, :] - refs[None, :, :]) ** 2).sum(-1)
    positives = [{q, q + 1} if q % 7 else set() for q in range(40)]  # some queries without revisit
    ranked = [np.argsort(row, kind="stable") for row in dist]
    got = recall_at_n(ranked, positives, ns=(1, 5, 10, 20))
    for n in (1, 5, 10, 20):
        assert got[n] == pytest.approx(_brute_force_recall(dist, positives, n))
    assert 0 < got[1] < got[20] <= 1.0  # the test data is neither trivial nor hopeless


def test_recall_short_lists_and_errors():
    assert recall_at_n([[3], []], [{3}, {1}], ns=(1, 5)) == {1: 0.5, 5: 0.5}
    assert np.isnan(recall_at_n([[1]], [set()], ns=(1,))[1])
    with pytest.raises(ValueError, match="positives"):
        recall_at_n([[1]], [], ns=(1,))
    with pytest.raises(ValueError, match="ns"):
        recall_at_n([[1]], [{1}], ns=(0,))


def test_pr_curve_hand_computed():
    # 5 queries, 4 with a revisit. Sorted by confidence: q0 0.9 correct, q1 0.8 wrong,
    # q2 0.7 correct, q3 0.6 correct, q4 (no revisit) 0.5 -> false positive.
    best = [10, 11, 12, 13, 14]
    conf = [0.9, 0.8, 0.7, 0.6, 0.5]
    pos = [{10}, {99}, {12}, {13, 7}, set()]
    pr = best_match_pr_curve(best, conf, pos)
    np.testing.assert_allclose(pr.precision, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(pr.recall, [1 / 4, 1 / 4, 2 / 4, 3 / 4, 3 / 4])
    # AUC = 0.25*1 + 0*0.5 + 0.25*2/3 + 0.25*3/4 + 0
    assert pr.auc == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 0.75)
    assert pr.max_recall_at_100_precision == pytest.approx(0.25)


def test_pr_curve_ties_and_missing_answers():
    # q0 and q1 tie: accepted together (one point), q2 answered nothing.
    pr = best_match_pr_curve([1, 2, None], [0.5, 0.5, 0.9], [{1}, {3}, {4}])
    np.testing.assert_allclose(pr.thresholds, [0.5])
    np.testing.assert_allclose(pr.precision, [0.5])
    np.testing.assert_allclose(pr.recall, [1 / 3])
    assert pr.max_recall_at_100_precision == 0.0
    perfect = best_match_pr_curve([1, 2], [0.2, 0.1], [{1}, {2}])
    assert perfect.auc == pytest.approx(1.0) and perfect.max_recall_at_100_precision == 1.0


def test_latency_percentiles():
    rep = latency_percentiles({"total": np.arange(1, 101), "empty": []})
    assert set(rep) == {"total"}
    assert rep["total"]["p50"] == pytest.approx(50.5)
    assert rep["total"]["p99"] == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert rep["total"]["count"] == 100 and rep["total"]["max"] == 100
