"""MAQBOOL end to end on real images: train-pdl CLI, then the pipeline re-ranks with it."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.configs import SINGLE_FRAME
from maqbool_ros.core.config import MaqboolConfig


@pytest.fixture(scope="session")
def gardens_pdl(gardens_dir, tmp_path_factory):
    """A DT-50 trained by `maqbool train-pdl` on gardens_point_sample (functional check only)."""
    from maqbool_ros.tools.cli import main

    out = tmp_path_factory.mktemp("pdl") / "pdl.npz"
    assert main(["train-pdl", "--dataset", str(gardens_dir), "--out", str(out), "--top-k", "10",
                 "--maqbool-mode", "paper"]) == 0
    return out


def test_train_pdl_writes_a_loadable_layer(gardens_pdl):
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl

    pdl = load_pdl(gardens_pdl)
    assert pdl.meta["pairs"] == 100 and pdl.meta["trained_on"] == ["gardens_point_sample"]
    p = pdl.predict(np.zeros((3, 112), np.float32))
    assert ((p >= 1) & (p <= 2)).all()


def test_pipeline_reranks_with_maqbool(gardens_dir, gardens_pdl):
    from maqbool_ros.core.data.datasets import load_query_ref_folder
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    ds = load_query_ref_folder(gardens_dir)
    cfg = MaqboolConfig(**SINGLE_FRAME, method="maqbool", maqbool_mode="paper", pdl_path=str(gardens_pdl), top_k=10,
                        region_budget=10, exclude_recent_keyframes=0, exclude_recent_seconds=0.0)
    pipe = LoopClosurePipeline(cfg)
    for r in range(len(ds.refs)):
        pipe.process(ds.refs[r], keyframe_id=r, robot_id="ref", stamp=float(r), query=False)
    img = ds.queries[0]
    res = pipe.process(img, keyframe_id=100, robot_id="query", stamp=100.0, add_to_database=False)
    assert res.method == "maqbool" and res.complete and res.num_reranked == 10 and res.region_budget == 10
    assert sorted(res.keyframe_ids.tolist()) == list(range(10))  # a permutation of the top-10
    assert np.all(np.diff(res.reranked_distances) >= 0)
    pipe.update_config(region_budget=5)
    res5 = pipe.process(img, keyframe_id=101, robot_id="query", stamp=101.0, add_to_database=False)
    assert res5.region_budget == 5


def test_default_pdl_is_built_from_the_synthetic_sequence_and_cached(tmp_path, monkeypatch):
    """No pdl_path: a decision layer is trained for the engine's model on the embedded
    synthetic sequence (never on ../shared data), cached, and loaded again from the cache."""
    from maqbool_ros.core.descriptor.default_model import default_model_path
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.maqbool.default_pdl import default_pdl_path, load_configured_pdl

    # the default input (640x480) and mode: the PDL the maqbool node tests use, built once per run
    cfg = MaqboolConfig(method="maqbool")
    engine = DescriptorEngine(default_model_path())
    path = default_pdl_path(engine, cfg.maqbool_mode)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    pdl = load_configured_pdl(cfg, engine.head, engine)
    assert "synthetic" in pdl.meta["trained_on"] and pdl.meta["positives"] > 0
    assert default_pdl_path(engine, cfg.maqbool_mode).stat().st_mtime_ns == stamp  # cached, not rebuilt
    p = pdl.predict(np.zeros((3, 112), np.float32))
    assert p.shape == (3,) and np.all((p >= 1 - 1e-6) & (p <= 2 + 1e-6))  # onnxruntime sums in float32
    assert pdl.meta["mode"] == "scale_free" and "alpha" in pdl.meta["update"]  # the schema's default mode


def test_train_pdl_scale_free_stores_the_fitted_update(gardens_dir, tmp_path):
    """--maqbool-mode scale_free: pairs at every budget, alpha and the P map in the metadata,
    and the pipeline runs with it in that mode."""
    from maqbool_ros.core.data.datasets import load_query_ref_folder
    from maqbool_ros.core.pipeline import LoopClosurePipeline
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl
    from maqbool_ros.core.rerank.maqbool.update import ALPHAS, P_MAPS
    from maqbool_ros.tools.cli import main

    out = tmp_path / "sf.npz"
    assert main(["train-pdl", "--dataset", str(gardens_dir), "--out", str(out), "--top-k", "10",
                 "--maqbool-mode", "scale_free"]) == 0
    meta = load_pdl(out).meta
    assert meta["mode"] == "scale_free" and meta["pairs"] == 4 * 100  # 10 queries x 10 candidates x 4 budgets
    assert meta["update"]["alpha"] in ALPHAS and meta["update"]["p_map"] in P_MAPS
    ds = load_query_ref_folder(gardens_dir)
    cfg = MaqboolConfig(**SINGLE_FRAME, method="maqbool", maqbool_mode="scale_free", pdl_path=str(out), top_k=10,
                        exclude_recent_keyframes=0, exclude_recent_seconds=0.0)
    pipe = LoopClosurePipeline(cfg)
    for r in range(len(ds.refs)):
        pipe.process(ds.refs[r], keyframe_id=r, robot_id="ref", stamp=float(r), query=False)
    res = pipe.process(ds.queries[0], keyframe_id=100, robot_id="query", stamp=100.0, add_to_database=False)
    assert res.complete and sorted(res.keyframe_ids.tolist()) == list(range(10))
    assert np.all(np.diff(res.reranked_distances) >= 0)
