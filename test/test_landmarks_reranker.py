"""LandmarkReranker on synthetic engine outputs: extras shapes, ordering, deadline, vocabulary."""
from __future__ import annotations

import time

import numpy as np
import pytest

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.rerank.landmarks import LandmarkReranker, Vocabulary, pool_regions
from maqbool_ros.core.rerank.landmarks.vocab_fit import train_vocabulary
from maqbool_ros.core.types import Candidates, EngineOutput


def fake_output(seed: int, with_features: bool = True, c: int = 32, d2: int = 16, h: int = 12,
                w: int = 16, stride: int = 16) -> EngineOutput:
    rng = np.random.default_rng(seed)
    fmap = rng.standard_normal((c, h, w)).astype(np.float32) - 0.7
    feats = rng.standard_normal((d2, h, w)).astype(np.float32) if with_features else None
    return EngineOutput(descriptor=np.zeros(8, np.float32), whitened=np.zeros(8, np.float32),
                        feature_map=fmap, landmark_features=feats,
                        image=np.zeros((h * stride, w * stride, 3), np.uint8), stride=stride)


def stack_db(extras: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.stack([e[key] for e in extras]) for key in extras[0]}


def candidates(distances) -> Candidates:
    k = len(distances)
    return Candidates(rows=np.arange(k), keyframe_ids=np.arange(k) + 100, robot_ids=["r"] * k,
                      stamps=np.zeros(k), distances=np.asarray(distances, np.float32))


@pytest.fixture(scope="module")
def reranker() -> LandmarkReranker:
    return LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=40))


def test_extras_have_fixed_database_shapes(reranker):
    query, db = reranker.keyframe_extras(fake_output(0))
    m = len(query["vectors"])
    assert m == 40 and query["vectors"].shape == (40, 16)
    np.testing.assert_allclose(np.linalg.norm(query["vectors"], axis=1), 1, rtol=1e-5)
    assert np.all(query["weights"] == 1) and np.all(query["words"] == -1)  # no vocabulary
    assert query["boxes"].shape == (40, 4)
    assert np.all(query["boxes"][:, 2] > query["boxes"][:, 0]) and np.all(query["boxes"][:, 2] <= 256)
    assert db["lm_vectors"].shape == (40, 16) and db["lm_vectors"].dtype == np.float16
    assert db["lm_weights"].shape == (40,) and db["lm_count"].tolist() == [40]
    # a nearly empty map gives few regions: padding keeps the shapes, with zero weights
    sparse = fake_output(1)
    sparse.feature_map[:] = -1
    sparse.feature_map[0, 2:4, 2:4] = 1
    query, db = reranker.keyframe_extras(sparse)
    assert len(query["vectors"]) == 1 and db["lm_vectors"].shape == (40, 16)
    assert set(reranker.last_extras_timings_ms) == {"regions", "words"}
    assert db["lm_count"].tolist() == [1] and np.all(db["lm_weights"][1:] == 0)


def test_fallback_without_landmark_features(reranker):
    query, _ = reranker.keyframe_extras(fake_output(2, with_features=False))
    assert query["vectors"].shape[1] == 32  # pooled from the feature map itself


def test_same_place_ranks_first_and_ties_use_distance(reranker):
    outs = [fake_output(s) for s in range(6)]
    query, _ = reranker.keyframe_extras(outs[3])
    db = stack_db([reranker.keyframe_extras(o)[1] for o in outs])
    res = reranker.rerank(query, candidates([0.5, 0.4, 0.3, 0.9, 0.2, 0.6]), db, time.perf_counter() + 10)
    assert res.order[0] == 3 and res.complete and res.num_reranked == 6
    # nearly every region matches itself (weight 1); float16 storage can swap near-duplicates
    assert 0.85 < res.scores[3] <= 1.0 + 1e-3
    assert np.all(np.diff(res.scores[res.order]) <= 0)
    np.testing.assert_allclose(np.sort(res.reranked_distances), [0.2, 0.3, 0.4, 0.5, 0.6, 0.9])
    assert np.all(np.diff(res.reranked_distances[res.order]) >= 0)
    # identical candidates (equal Q_mean): the smaller descriptor distance goes first
    db2 = stack_db([reranker.keyframe_extras(outs[1])[1]] * 3)
    res2 = reranker.rerank(query, candidates([0.7, 0.1, 0.4]), db2, time.perf_counter() + 10)
    assert res2.order.tolist() == [1, 2, 0]


def test_deadline_and_empty_candidates():
    rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=20), chunk_size=2)
    outs = [fake_output(s) for s in range(5)]
    query, _ = rr.keyframe_extras(outs[0])
    db = stack_db([rr.keyframe_extras(o)[1] for o in outs])
    res = rr.rerank(query, candidates([0.3, 0.1, 0.2, 0.5, 0.4]), db, time.perf_counter() - 1)
    assert not res.complete and res.num_reranked == 0
    assert res.order.tolist() == [1, 2, 0, 4, 3] and np.all(res.scores == 0)  # unscored: 0, never NaN
    empty = rr.rerank(query, candidates([]), {}, time.perf_counter() + 1)
    assert empty.complete and len(empty.order) == 0
    other = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=20))
    _, db_other = other.keyframe_extras(fake_output(0, d2=8))
    with pytest.raises(ValueError, match="lm_vectors"):
        rr.rerank(query, candidates([0.1]), stack_db([db_other]), time.perf_counter() + 1)
    with pytest.raises(ValueError, match="another method"):
        rr.rerank(query, candidates([0.1]), {"maqbool_regions": np.zeros((1, 10, 8))}, time.perf_counter() + 1)


def test_vocabulary_weights_flow_into_scores(tmp_path):
    base = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30))
    vectors = [base.regions(fake_output(s))[1] for s in range(10, 16)]
    vocab = train_vocabulary(vectors, 60, niter=5)
    path = tmp_path / "v.npz"
    vocab.save(path)
    rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30, vocab_path=str(path)))
    assert isinstance(rr.vocabulary, Vocabulary)
    query, db = rr.keyframe_extras(fake_output(3))
    assert np.all(query["words"] >= 0) and query["weights"].max() > 0
    np.testing.assert_array_equal(query["weights"], vocab.idf[query["words"]])
    np.testing.assert_array_equal(db["lm_weights"][: len(query["words"])], query["weights"])
    res = rr.rerank(query, candidates([0.1]), stack_db([db]), time.perf_counter() + 10)
    # self-match: Q_mean is sum of w_i^2 / m at most; the score divides it by max(idf)^2
    upper = float(np.sum(query["weights"].astype(np.float64) ** 2)) / len(query["weights"])
    assert rr.score_scale == pytest.approx(float(vocab.idf.max()) ** 2)
    assert 0.8 * upper < res.scores[0] * rr.score_scale <= upper * 1.001


def test_support_comes_from_config():
    out = fake_output(4)
    rect = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30))
    comp = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=30,
                                          landmarks_support="component"))
    assert (rect.support, comp.support) == ("rect", "component")
    regions, vectors = comp.regions(out)
    guidance = np.maximum(out.feature_map, 0)
    np.testing.assert_allclose(vectors, pool_regions(regions, guidance, out.landmark_features, "component"))
    rect_vectors = pool_regions(regions, guidance, out.landmark_features, "rect")
    np.testing.assert_allclose(rect.regions(out)[1], rect_vectors)


def test_blank_map_gives_no_regions_and_distance_order(reranker):
    blank = fake_output(5)
    blank.feature_map[:] = -1.0  # ReLU leaves nothing: no clusters at all
    query, db = reranker.keyframe_extras(blank)
    assert query["vectors"].shape == (0, 16) and query["boxes"].shape == (0, 4)
    assert db["lm_count"].tolist() == [0] and db["lm_vectors"].shape == (40, 16)
    others = stack_db([reranker.keyframe_extras(fake_output(s))[1] for s in (6, 7)] + [db])
    res = reranker.rerank(query, candidates([0.3, 0.1, 0.2]), others, time.perf_counter() + 10)
    assert res.complete and res.order.tolist() == [1, 2, 0] and np.all(res.scores == 0)
