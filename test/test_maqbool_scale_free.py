"""MAQBOOL mode scale_free: features that a distance scale cannot change, a fitted update that
cannot flip the order, the mode stored in / checked against the decision layer."""
from __future__ import annotations

import time

import numpy as np
import pytest
from test_maqbool_reranker import FakePdl, candidates_for, setup  # noqa: F401 - the fixture

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM, pairwise_features, scale_free_features
from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker
from maqbool_ros.core.rerank.maqbool.update import updated_distances
from maqbool_ros.core.rerank.maqbool.update_fit import fit_update


def _list(seed: int = 0, k: int = 30, n: int = 12):
    rng = np.random.default_rng(seed)
    d = np.sort(rng.uniform(0.2, 1.2, k))
    C = rng.uniform(0.3, 1.8, (k, 1 + n, 10))
    return C, d


def test_scale_free_features_ignore_the_distance_scale_paper_features_do_not():
    C, d = _list()
    a = scale_free_features(C, d)
    b = scale_free_features(C * 3.7, d * 3.7)  # another model's distance scale
    assert a.shape == (30, FEATURE_DIM)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    areas_q, areas_c = np.full(13, 0.5), np.full((30, 10), 0.5)
    pa = pairwise_features(C, areas_q, areas_c, d)
    pb = pairwise_features(C * 3.7, areas_q, areas_c, d * 3.7)
    assert not np.allclose(pa, pb, rtol=1e-2)  # the paper's features move with the scale (the defect)


def test_scale_free_features_do_not_depend_on_the_chunk():
    C, d = _list(1)
    whole = scale_free_features(C, d)
    np.testing.assert_allclose(scale_free_features(C, d, np.arange(10, 17)), whole[10:17])


def test_paper_update_flips_the_best_candidate_scale_free_update_does_not():
    d = np.array([0.20, 0.50, 0.90])  # candidate 0: closest AND most likely a match
    p = np.array([1.95, 1.20, 1.10])
    paper = np.abs(d - 1.15 * np.log(p))
    assert np.argmin(paper) != 0  # |d - alpha ln P| sends it behind: the flip
    for p_map in ("neglog", "linear"):
        new = updated_distances(d, p, d.std(), 1.0, p_map)
        assert np.argmin(new) == 0 and (new >= d).all()


def _heldout(informative: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    lists = []
    for _ in range(60):
        d = np.sort(rng.uniform(0.5, 1.0, 20))
        pos = np.zeros(20, bool)
        pos[rng.integers(1, 20)] = True  # the descriptor ranks the match below the top
        p = 1.0 + (0.9 * pos + 0.05 * rng.random(20) if informative else rng.random(20))
        lists.append((d, p, d.std(), pos))
    return lists


def test_fit_update_uses_informative_p_and_ignores_noise():
    good = fit_update(_heldout(True))
    assert good["alpha"] > 0 and good["heldout_r1"] > good["heldout_r1_base"]
    noise = fit_update(_heldout(False))
    assert noise["heldout_r1"] >= noise["heldout_r1_base"]  # never worse than no update on its pairs


class SfPdl(FakePdl):
    meta = {"mode": "scale_free", "update": {"alpha": 0.5, "p_map": "linear"}}


def test_reranker_scale_free_mode_follows_the_layer_metadata(setup):  # noqa: F811
    head, outs = setup
    cfg = MaqboolConfig(region_budget=10, maqbool_mode="scale_free")
    rr = MaqboolReranker(cfg, head, SfPdl(), chunk_size=3)
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    res = rr.rerank(q, cands, extras, time.perf_counter() + 10)
    assert res.complete and res.score_kind == "maqbool_similarity"
    from maqbool_ros.core.rerank.maqbool.features import correlation_distances

    rows, _ = rr.query_rows(q, 10)
    x = scale_free_features(correlation_distances(rows, extras["maqbool_regions"]), cands.distances)
    C = correlation_distances(rows, extras["maqbool_regions"])
    b = C[:, 0, 0].astype(np.float64)  # full-dim whole-image distance (netvlad_full's)
    np.testing.assert_allclose(b, np.sum((extras["maqbool_regions"][:, 0].astype(np.float64) - q["regions"][0]) ** 2,
                                         axis=1), rtol=1e-3, atol=1e-4)
    expected = b + 0.5 * b.std() * (2.0 - SfPdl().predict(x))
    np.testing.assert_allclose(res.reranked_distances, expected, rtol=1e-5)
    assert np.all(np.diff(res.reranked_distances[res.order]) >= 0)


def test_scale_free_mode_needs_a_scale_free_layer(setup):  # noqa: F811
    head, outs = setup
    rr = MaqboolReranker(MaqboolConfig(maqbool_mode="scale_free"), head, FakePdl())
    q, _ = rr.keyframe_extras(outs[0])
    cands, extras = candidates_for(rr, outs[1:], outs[0])
    with pytest.raises(ValueError, match="maqbool_mode"):
        rr.rerank(q, cands, extras, time.perf_counter() + 10)


def test_configured_layer_mode_mismatch_is_a_clear_error(tmp_path):
    from maqbool_ros.core.rerank.maqbool.pdl import load_configured_pdl
    from maqbool_ros.core.rerank.maqbool.pdl_fit import to_pdl, train_forest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, FEATURE_DIM)).astype(np.float32)
    path = tmp_path / "paper.npz"
    to_pdl(train_forest(x, 1.0 + (x[:, 0] > 0), trees=3), str(path), {"mode": "paper"}).save(path)
    assert load_configured_pdl(MaqboolConfig(maqbool_mode="paper", pdl_path=str(path))).meta["mode"] == "paper"
    with pytest.raises(ValueError, match="maqbool_mode"):
        load_configured_pdl(MaqboolConfig(maqbool_mode="scale_free", pdl_path=str(path)))
