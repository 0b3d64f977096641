"""MAQBOOL re-ranker: per-keyframe extras, region budget, deadline, make_reranker."""
from __future__ import annotations

import time

import numpy as np
import pytest
from test_regions import block_image, random_head

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.rerank.factory import make_reranker
from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM, correlation_distances, pairwise_features
from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker
from maqbool_ros.core.rerank.netvlad import NetvladReranker
from maqbool_ros.core.types import Candidates, EngineOutput


class FakePdl:
    """P from the feature's first region distance; optional delay per call."""

    meta: dict = {}

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls = 0

    def predict(self, x):
        assert x.shape[1] == FEATURE_DIM
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return 1.0 + 1.0 / (1.0 + np.exp(4 * (x[:, 2] - 1.0)))


def engine_output(seed: int, head) -> EngineOutput:
    rng = np.random.default_rng(seed)
    img = block_image(rng, 240, 320)
    fmap = rng.normal(size=(head.feature_dim, 15, 20)).astype(np.float32)
    whitened = head.describe(fmap)
    return EngineOutput(descriptor=head.global_from_whitened(whitened[None])[0], whitened=whitened,
                        feature_map=fmap, landmark_features=None, image=img, stride=16)


@pytest.fixture(scope="module")
def setup():
    head = random_head(np.random.default_rng(0))
    outs = [engine_output(s, head) for s in range(8)]
    return head, outs


def candidates_for(rr, outs, query_out):
    extras = [rr.keyframe_extras(o)[1] for o in outs]
    d = np.array([np.sum((o.descriptor - query_out.descriptor) ** 2) for o in outs])
    order = np.argsort(d, kind="stable")
    cands = Candidates(rows=order, keyframe_ids=order + 100, robot_ids=["r"] * len(order),
                       stamps=order.astype(float), distances=d[order].astype(np.float32))
    stacked = {k: np.stack([extras[i][k] for i in order]) for k in extras[0]}
    return cands, stacked


def test_keyframe_extras_shapes(setup):
    head, outs = setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper"), head, FakePdl())
    q, db = rr.keyframe_extras(outs[0])
    assert q["regions"].shape == (51, head.output_dim) and q["areas"].shape == (51,)
    assert q["areas"][0] == 1.0 and (q["areas"][1:] > 0.3).all()
    assert db["maqbool_regions"].shape == (10, head.output_dim) and db["maqbool_regions"].dtype == np.float16
    np.testing.assert_allclose(q["regions"][0], outs[0].whitened, atol=1e-5)
    assert set(rr.last_extras_timings_ms) == {"proposals", "region_descriptors"}


@pytest.mark.parametrize("budget", [5, 10, 50])
def test_rerank_complete_reorders_scored_candidates(setup, budget):
    head, outs = setup
    cfg = MaqboolConfig(maqbool_mode="paper", region_budget=budget)
    rr = MaqboolReranker(cfg, head, FakePdl(), chunk_size=3)
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    res = rr.rerank(q, cands, extras, time.perf_counter() + 10)
    assert res.complete and res.num_reranked == len(cands) and res.region_budget == budget
    assert sorted(res.order.tolist()) == list(range(len(cands)))
    d_new = res.reranked_distances
    assert np.all(np.diff(d_new[res.order]) >= 0)
    # eq. 12 with the 512-D-or-less alpha of 1.15 (random head: descriptor_dim 16)
    assert rr.alpha == 1.15
    rows, areas = rr.query_rows(q, budget)
    x = pairwise_features(correlation_distances(rows, extras["maqbool_regions"]), areas,
                          extras["maqbool_areas"], cands.distances)
    expected = np.abs(cands.distances - 1.15 * np.log(FakePdl().predict(x)))
    np.testing.assert_allclose(d_new, expected, rtol=1e-5)
    np.testing.assert_allclose(res.scores, 1 - d_new / 4, rtol=1e-6)


def test_region_budget_is_read_live(setup):
    head, outs = setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper", region_budget=50), head, FakePdl())
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    assert rr.rerank(q, cands, extras, time.perf_counter() + 10).region_budget == 50
    rr.config = rr.config.replace(region_budget=7)
    rows, areas = rr.query_rows(q, 7)
    assert rows.shape[0] == 11 and np.allclose(rows[8:], q["pad_region"])
    assert rr.rerank(q, cands, extras, time.perf_counter() + 10).region_budget == 7


def test_deadline_in_the_past_returns_descriptor_order(setup):
    head, outs = setup
    pdl = FakePdl()
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper"), head, pdl)
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    res = rr.rerank(q, cands, extras, time.perf_counter() - 1.0)
    assert not res.complete and res.num_reranked == 0 and pdl.calls == 0
    assert res.order.tolist() == list(range(len(cands)))
    np.testing.assert_allclose(res.reranked_distances, cands.distances)


def test_deadline_mid_way_keeps_unscored_in_descriptor_order(setup):
    head, outs = setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper"), head, FakePdl(delay_s=0.05), chunk_size=2)
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    res = rr.rerank(q, cands, extras, time.perf_counter() + 0.06)
    m = res.num_reranked
    assert not res.complete and 2 <= m < len(cands) and m % 2 == 0
    assert sorted(res.order[:m].tolist()) == list(range(m))
    assert res.order[m:].tolist() == list(range(m, len(cands)))


def test_empty_candidates_and_missing_extras(setup):
    head, outs = setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper"), head, FakePdl())
    q, _ = rr.keyframe_extras(outs[0])
    empty = Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0, np.float32))
    res = rr.rerank(q, empty, {}, time.perf_counter() + 1)
    assert res.complete and len(res.order) == 0
    cands, _ = candidates_for(rr, outs[1:3], outs[0])
    with pytest.raises(ValueError, match="maqbool_regions"):
        rr.rerank(q, cands, {}, time.perf_counter() + 1)


def test_make_reranker_and_netvlad_identity(setup):
    head, outs = setup

    class Engine:
        pass

    eng = Engine()
    eng.head = head
    nv = make_reranker(MaqboolConfig(method="netvlad"), eng)
    assert isinstance(nv, NetvladReranker)
    d = np.array([0.1, 0.5, 2.0], np.float32)
    res = nv.rerank({}, Candidates(np.arange(3), np.arange(3), ["a"] * 3, np.zeros(3), d), {}, 0.0)
    assert res.order.tolist() == [0, 1, 2] and res.complete
    np.testing.assert_allclose(res.scores, 1 - d / 4)
    with pytest.raises(FileNotFoundError, match="pdl_path"):
        make_reranker(MaqboolConfig(method="maqbool", pdl_path="/nonexistent/pdl.npz"), eng)


def test_conv_landmarks_region_source(setup):
    head, outs = setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="paper", region_source="conv_landmarks"), head, FakePdl())
    q, db = rr.keyframe_extras(outs[0])
    cells = rr.boxes(outs[0])
    assert cells.shape == (50, 4) and (cells[:, :2] >= 1).all()
    assert q["regions"].shape == (51, head.output_dim) and db["maqbool_regions"].shape == (10, head.output_dim)
    assert np.isfinite(q["regions"]).all() and (q["areas"] > 0).all()
