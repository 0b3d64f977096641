"""One fit of MAQBOOL's scale_free update for `maqbool train-pdl` and benchmarks/region_evidence.py:
the same sets give the same alpha, map and forest whatever order they come in, and alpha is
chosen by the one-standard-error rule (a one- or two-query gain does not move it)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.rerank.maqbool import training
from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM
from maqbool_ros.core.rerank.maqbool.update import ALPHAS
from maqbool_ros.core.rerank.maqbool.update_fit import alpha_bootstrap, fit_update

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"corridor": 24, "rtabmap_loop": 15, "gardens_point_sample": 9}


def _pairs(name: str, k: int = 20) -> list:
    """Seeded synthetic candidate lists: P-relevant feature 0 is informative but noisy."""
    rng = np.random.default_rng(sorted(SIZES).index(name) + 3)
    out = []
    for q in range(SIZES[name]):
        pos = np.zeros(k, bool)
        pos[rng.integers(0, 4)] = True
        p = training.QueryPairs(q, np.arange(k), np.sort(rng.uniform(0.3, 1.0, k)), pos, True)
        p.base = np.sort(rng.uniform(0.3, 1.0, k))
        p.feat = {}
        for n in training.BUDGETS:
            x = rng.normal(size=(k, FEATURE_DIM)).astype(np.float32)
            x[:, 0] += 1.5 * pos
            p.feat[n] = x
        out.append(p)
    return out


def _fake_training(monkeypatch):
    monkeypatch.setattr(training, "load_images", lambda ds: (ds, ds))
    monkeypatch.setattr(training, "describe_images", lambda *a, **k: None)
    monkeypatch.setattr(training, "candidate_lists", lambda ds, *a, **k: _pairs(ds.name))
    monkeypatch.setattr(training, "pair_features", lambda rr, q, r, p, n, mode="paper": p.feat[n])
    monkeypatch.setattr(training, "whole_distances", lambda rr, q, r, p: p.base)


def _engine():
    return SimpleNamespace(head=SimpleNamespace(descriptor_dim=64, output_dim=64), metadata={})


def _region_evidence():
    spec = importlib.util.spec_from_file_location("region_evidence", ROOT / "benchmarks" / "region_evidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_pdl_and_region_evidence_fit_the_same_update(monkeypatch):
    _fake_training(monkeypatch)
    cfg = MaqboolConfig(method="maqbool", maqbool_mode="scale_free", top_k=20)
    sets = {name: SimpleNamespace(name=name, kind="sequence") for name in SIZES}
    ev = "rtabmap_loop"
    # region_evidence.py: groups_of per set, the other two sets in SETS order
    bench = _region_evidence()
    groups = {name: bench.groups_of(_engine(), None, sets[name], cfg) for name in bench.SETS}
    forest_b, update_b = training.fit_scale_free([g for name in bench.SETS if name != ev for g in groups[name]], 5, 0)
    # `maqbool train-pdl --dataset gardens_point_sample corridor`: the same two sets, typed in another order
    forest_t, meta = training.train_pdl(_engine(), [sets["gardens_point_sample"], sets["corridor"]], cfg, trees=5,
                                        seed=0, progress=False, log=None)
    assert meta["update"]["alpha"] == update_b["alpha"] and meta["update"]["p_map"] == update_b["p_map"]
    assert meta["update"] == update_b  # every held-out figure: the same out-of-fold pairs
    x = groups[ev][0][10][0]
    np.testing.assert_array_equal(forest_t.predict(x), forest_b.predict(x))


def test_fit_scale_free_does_not_depend_on_the_order_of_the_sets(monkeypatch):
    _fake_training(monkeypatch)
    groups = {name: training.scale_free_groups(None, None, None, _pairs(name), name) for name in SIZES}
    a = training.fit_scale_free(groups["corridor"] + groups["gardens_point_sample"], 5, 0)
    b = training.fit_scale_free(groups["gardens_point_sample"] + groups["corridor"], 5, 0)
    assert a[1] == b[1]
    x = groups["rtabmap_loop"][0][25][0]
    np.testing.assert_array_equal(a[0].predict(x), b[0].predict(x))


def _lists(gain: int, n: int = 100, seed: int = 0):
    """n held-out lists; the descriptor puts the match first in half of them. P is flat except in
    ``gain`` lists where it lifts a second-placed match to the top (a gain of ``gain`` queries)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = np.sort(rng.uniform(0.5, 1.0, 10))
        pos = np.zeros(10, bool)
        pos[0 if i % 2 else 1] = True
        p = np.full(10, 1.5)
        if i < 2 * gain and not i % 2:
            p[1] = 2.0
        out.append((d, p, d.std(), pos))
    return out


def test_fit_update_keeps_alpha_zero_for_a_gain_within_one_standard_error():
    small = fit_update(_lists(2))  # +2 queries of 100 at R@1 ~ 0.5: SE ~ 0.05
    assert small["alpha"] == 0.0 and small["heldout_r1_best"] > small["heldout_r1_base"]
    assert small["rule"] == "one_se" and 0.04 < small["heldout_r1_se"] < 0.06
    assert fit_update(_lists(2), "best")["alpha"] > 0  # the old rule: two queries moved alpha
    with pytest.raises(ValueError, match="rule"):
        fit_update(_lists(2), "most")
    big = fit_update(_lists(20))  # +20 queries: a real gain
    assert big["alpha"] > 0 and big["heldout_r1"] > big["heldout_r1_base"] + big["heldout_r1_se"]


def test_alpha_bootstrap_is_stable_under_the_rule():
    spread = alpha_bootstrap(_lists(2), reps=20, seed=1)
    assert len(spread) == 20 and set(spread) <= set(ALPHAS)
    assert (spread == 0.0).all()  # a 2-query gain never moves alpha on a resample
