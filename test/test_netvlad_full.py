"""method=netvlad_full: the 512-D top-K re-ranked by the full-dim whitened descriptor (vs brute force)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from helpers.configs import SINGLE_FRAME
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.pipeline import LoopClosurePipeline
from maqbool_ros.core.rerank.factory import make_reranker
from maqbool_ros.core.rerank.netvlad_full import EXTRA_KEY, NetvladFullReranker
from maqbool_ros.core.types import Candidates, EngineOutput

P, D = 256, 32


class FullEngine:
    """Image value i -> a seeded P-D unit 'whitened' vector; descriptor = its first D dims, re-normalised.

    The first D dims carry little of the signal, so the D-D order and the P-D order differ."""

    metadata = {"descriptor_dim": D}

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.table = rng.standard_normal((256, P)).astype(np.float32)
        self.table[:, :D] *= 0.2
        self.table /= np.linalg.norm(self.table, axis=1, keepdims=True)

    def compute(self, image):
        w = self.table[int(image[0, 0, 0])]
        d = w[:D] / np.linalg.norm(w[:D])
        return EngineOutput(d, w, np.zeros((1, 1, 1), np.float32), None, image, 16)


def img(i: int) -> np.ndarray:
    return np.full((1, 1, 3), i, np.uint8)


def test_database_extra_is_fp16_full_dim_and_query_is_float32():
    eng = FullEngine()
    q, db = NetvladFullReranker().keyframe_extras(eng.compute(img(3)))
    assert db[EXTRA_KEY].dtype == np.float16 and db[EXTRA_KEY].shape == (P,)
    assert db[EXTRA_KEY].nbytes == 2 * P  # P = 4096 -> 8 KiB per keyframe (docs/maqbool.md)
    assert q[EXTRA_KEY].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q[EXTRA_KEY]), 1.0, atol=1e-6)


def test_pipeline_reranks_top_k_by_full_dim_brute_force():
    eng = FullEngine()
    cfg = MaqboolConfig(method="netvlad_full", exclude_recent_keyframes=0, exclude_recent_seconds=0.0, top_k=20,
                        **SINGLE_FRAME)
    pipe = LoopClosurePipeline(cfg, engine=eng)
    assert pipe.reranker.name == "netvlad_full"
    for i in range(120):
        pipe.process(img(i), keyframe_id=i, stamp=float(i), query=False)
    changed = 0
    for qv in (200, 201, 202, 203):
        res = pipe.process(img(qv), keyframe_id=1000 + qv, stamp=1000.0, add_to_database=False)
        # brute force: the D-D top-20, then sorted by full-dim squared L2 of the fp16-stored vectors
        desc = eng.table[:120, :D] / np.linalg.norm(eng.table[:120, :D], axis=1, keepdims=True)
        q_desc = eng.table[qv, :D] / np.linalg.norm(eng.table[qv, :D])
        top = np.argsort(np.sum((desc - q_desc) ** 2, axis=1), kind="stable")[:20]
        full = eng.table[top].astype(np.float16).astype(np.float64)
        full /= np.linalg.norm(full, axis=1, keepdims=True)
        d_full = np.sum((full - eng.table[qv]) ** 2, axis=1)
        expect = top[np.argsort(d_full, kind="stable")]
        assert res.keyframe_ids.tolist() == expect.tolist()
        np.testing.assert_allclose(res.reranked_distances, np.sort(d_full), atol=1e-5)
        assert res.score_kind == "netvlad_full_similarity" and res.complete and res.num_reranked == 20
        np.testing.assert_allclose(res.scores, 1.0 - np.sort(d_full) / 4.0, atol=1e-5)
        assert np.all(np.diff(res.scores) <= 0) and res.scores.min() >= 0.0 and res.scores.max() <= 1.0
        changed += res.keyframe_ids.tolist() != top.tolist()
    assert changed > 0  # the full-dim order really differs from the D-D one here


def _cands(k: int) -> tuple[Candidates, dict]:
    rng = np.random.default_rng(1)
    full = rng.standard_normal((k, P)).astype(np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    d = np.sort(rng.uniform(0.5, 1.5, k)).astype(np.float32)
    c = Candidates(rows=np.arange(k), keyframe_ids=np.arange(k), robot_ids=["r"] * k,
                   stamps=np.zeros(k), distances=d)
    return c, {EXTRA_KEY: full.astype(np.float16)}


def test_deadline_past_keeps_descriptor_order_with_zero_scores():
    cands, extras = _cands(10)
    q = {EXTRA_KEY: np.ones(P, np.float32) / np.sqrt(P)}
    rr = NetvladFullReranker().rerank(q, cands, extras, deadline=time.perf_counter() - 1.0)
    assert rr.order.tolist() == list(range(10)) and rr.num_reranked == 0 and not rr.complete
    assert (rr.scores == 0).all()


def test_missing_extras_is_a_clear_error():
    cands, _ = _cands(3)
    with pytest.raises(ValueError, match="netvlad_full"):
        NetvladFullReranker().rerank({EXTRA_KEY: np.zeros(P, np.float32)}, cands, {}, time.perf_counter() + 1)


def test_factory_and_config_choice():
    cfg = MaqboolConfig(method="netvlad_full")
    cfg.validate()
    assert isinstance(make_reranker(cfg, FullEngine()), NetvladFullReranker)
