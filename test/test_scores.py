"""One meaning per score (issue #12 point 4): every method's scores are finite, in [0, 1],
non-increasing along the re-ranked order, 0 for candidates the deadline cut off, and
labelled with their scale (RerankResult.score_kind)."""
from __future__ import annotations

import time
import types

import numpy as np
import pytest
from test_landmarks_reranker import candidates as lm_candidates
from test_landmarks_reranker import fake_output, stack_db
from test_maqbool_reranker import FakePdl, candidates_for, engine_output
from test_regions import random_head

from helpers.configs import SINGLE_FRAME
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.rerank.landmarks import LandmarkReranker, Vocabulary
from maqbool_ros.core.rerank.landmarks import reranker as landmarks_module
from maqbool_ros.core.rerank.landmarks.vocab_fit import train_vocabulary
from maqbool_ros.core.rerank.maqbool import reranker as maqbool_module
from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker
from maqbool_ros.core.rerank.netvlad import NetvladReranker
from maqbool_ros.core.types import SCORE_KINDS, Candidates, RerankResult


def check_scores(res: RerankResult, kind: str) -> np.ndarray:
    """The contract every method keeps; returns the scores in ranked order."""
    scores = np.asarray(res.scores, np.float64)
    assert scores.shape == (len(res.order),)
    assert np.isfinite(scores).all(), f"non-finite scores {scores}"
    assert (scores >= 0).all() and (scores <= 1).all(), f"scores outside [0, 1]: {scores}"
    ranked = scores[res.order]
    assert np.all(np.diff(ranked) <= 0), f"scores not non-increasing along the order: {ranked}"
    unscored = res.order[res.num_reranked:]
    assert np.all(scores[unscored] == 0), "candidates the deadline cut off must score 0"
    assert res.score_kind == kind and kind in SCORE_KINDS
    return ranked


class FakeClock:
    """A perf_counter the test moves: the deadline falls exactly between two chunks."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


# --- netvlad ---------------------------------------------------------------------------
def test_netvlad_scores_stay_in_range_at_the_distance_extremes():
    # float rounding puts squared distances of unit vectors a hair outside [0, 4]
    d = np.array([-1e-6, 0.0, 1.3, 3.9, 4.0, 4.00001], np.float32)
    res = NetvladReranker().rerank({}, Candidates(np.arange(6), np.arange(6), ["r"] * 6, np.zeros(6), d), {}, 0.0)
    ranked = check_scores(res, "netvlad_similarity")
    np.testing.assert_allclose(ranked, np.clip(1 - d.astype(np.float64) / 4, 0, 1), atol=1e-6)


# --- maqbool ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maqbool_setup():
    head = random_head(np.random.default_rng(0))
    outs = [engine_output(s, head) for s in range(8)]
    return head, outs


class ExtremePdl(FakePdl):
    """A decision layer outside the paper's [1, 2]: tiny P (ln P << 0) and NaN."""

    def predict(self, x):
        p = super().predict(x)
        p[::3] = 1e-9
        p[1::3] = np.nan
        return p


@pytest.mark.parametrize("pdl", [FakePdl(), ExtremePdl()], ids=["paper_range", "extreme"])
def test_maqbool_scores_complete(maqbool_setup, pdl):
    head, outs = maqbool_setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper"), head, pdl, chunk_size=3)
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    res = rr.rerank(q, cands, extras, time.perf_counter() + 60)
    assert res.complete
    ranked = check_scores(res, "maqbool_similarity")
    # the score is the re-ranked distance on the netvlad scale
    np.testing.assert_allclose(ranked, np.clip(1 - res.reranked_distances[res.order] / 4, 0, 1), atol=1e-6)


@pytest.mark.parametrize("chunks_before_deadline", [0, 1])
def test_maqbool_scores_when_the_deadline_cuts_reranking(maqbool_setup, monkeypatch, chunks_before_deadline):
    head, outs = maqbool_setup
    clock = FakeClock()
    monkeypatch.setattr(maqbool_module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))

    class DeadlinePdl(FakePdl):
        def predict(self, x):
            clock.now = 10.0  # the deadline (1.0) passes during the first chunk
            return np.full(len(x), 2.0)  # P = 2: every scored candidate moves closer

    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper"), head, DeadlinePdl(), chunk_size=3)
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    clock.now = 0.0 if chunks_before_deadline else 5.0
    res = rr.rerank(q, cands, extras, 1.0)
    assert not res.complete and res.num_reranked == 3 * chunks_before_deadline
    check_scores(res, "maqbool_similarity")
    if chunks_before_deadline:
        assert (res.scores[:3] > 0).all()


# --- landmarks -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_outputs():
    return [fake_output(s) for s in range(7)]


def test_landmarks_scores_complete_without_vocabulary(lm_outputs):
    rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30))
    query, _ = rr.keyframe_extras(lm_outputs[2])
    db = stack_db([rr.keyframe_extras(o)[1] for o in lm_outputs])
    res = rr.rerank(query, lm_candidates([0.5, 0.4, 0.3, 0.9, 0.2, 0.6, 0.7]), db, time.perf_counter() + 60)
    ranked = check_scores(res, "landmarks_match")
    assert res.order[0] == 2 and ranked[0] > 0.8  # the same place matches almost every region


def test_landmarks_scores_with_idf_weights_stay_in_range(lm_outputs, tmp_path):
    base = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30))
    small = train_vocabulary([base.regions(fake_output(s))[1] for s in range(10, 16)], 60, niter=5)
    # IDF of a realistic vocabulary (ln(5000 / n_c) reaches 8.5): raw Q_mean of a good match exceeds 1
    vocab = Vocabulary(small.centroids, small.idf * 4.0, small.num_images)
    vocab.save(tmp_path / "v.npz")
    rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30,
                                        vocab_path=str(tmp_path / "v.npz")))
    query, _ = rr.keyframe_extras(lm_outputs[2])
    db = stack_db([rr.keyframe_extras(o)[1] for o in lm_outputs])
    res = rr.rerank(query, lm_candidates(np.linspace(0.2, 0.8, 7)), db, time.perf_counter() + 60)
    ranked = check_scores(res, "landmarks_match")
    assert res.order[0] == 2 and ranked[0] > 0


@pytest.mark.parametrize("chunks_before_deadline", [0, 1])
def test_landmarks_scores_when_the_deadline_cuts_reranking(lm_outputs, monkeypatch, chunks_before_deadline):
    clock = FakeClock()
    monkeypatch.setattr(landmarks_module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    real_match = landmarks_module.match_batch

    def slow_match(*args, **kwargs):
        clock.now = 10.0  # the deadline (1.0) passes during the first chunk
        return real_match(*args, **kwargs)

    monkeypatch.setattr(landmarks_module, "match_batch", slow_match)
    rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30), chunk_size=2)
    query, _ = rr.keyframe_extras(lm_outputs[4])
    db = stack_db([rr.keyframe_extras(o)[1] for o in lm_outputs])
    clock.now = 0.0 if chunks_before_deadline else 5.0
    res = rr.rerank(query, lm_candidates([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), db, 1.0)
    assert not res.complete and res.num_reranked == 2 * chunks_before_deadline
    check_scores(res, "landmarks_match")
    assert res.order[res.num_reranked:].tolist() == list(range(res.num_reranked, 7))


# --- the contract itself ---------------------------------------------------------------
@pytest.mark.parametrize("scores, match", [([0.5, np.nan], "not finite"), ([0.5, 1.5], "outside"),
                                           ([0.5], "shape")])
def test_rerank_result_rejects_scores_off_the_scale(scores, match):
    with pytest.raises(ValueError, match=match):
        RerankResult(order=np.arange(2), reranked_distances=np.zeros(2, np.float32),
                     scores=np.asarray(scores, np.float32), score_kind="netvlad_similarity",
                     num_reranked=2, complete=True)
    with pytest.raises(ValueError, match="score_kind"):
        RerankResult(order=np.arange(1), reranked_distances=np.zeros(1), scores=np.zeros(1),
                     score_kind="probability", num_reranked=1, complete=True)


def test_pipeline_result_carries_the_scale_and_best_score():
    from test_pipeline import VectorEngine, img

    from maqbool_ros.core.pipeline import LoopClosurePipeline

    cfg = MaqboolConfig(method="netvlad", exclude_recent_keyframes=0, exclude_recent_seconds=0.0, top_k=5,
                        **SINGLE_FRAME)
    pipeline = LoopClosurePipeline(cfg, engine=VectorEngine())
    for i in range(10):
        pipeline.process(img(i), keyframe_id=i, stamp=float(i), query=False)
    res = pipeline.process(img(4), keyframe_id=50, add_to_database=False)
    assert res.score_kind == "netvlad_similarity"
    assert res.best_score == float(res.scores[0]) == float(np.max(res.scores)) and 0 <= res.best_score <= 1
