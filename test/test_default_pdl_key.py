"""The default decision layer's cache name: one layer per model, input size and region source."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from maqbool_ros.core.rerank.maqbool import default_pdl


def _engine(size=(640, 480), policy="keep_aspect"):
    rng = np.random.default_rng(0)
    head = SimpleNamespace(centroids=rng.normal(size=(4, 8)).astype(np.float32), pca_weight=None)
    return SimpleNamespace(model_path="/models/m.onnx", head=head, image_size=size, resize_policy=policy)


def _built(monkeypatch, tmp_path):
    """default_pdl_path with the training stubbed out: returns the list of paths it built."""
    built = []

    def fake_build(engine, path, mode="paper", *args, **kwargs):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stub")
        built.append(path)
        return path

    monkeypatch.setenv("MAQBOOL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(default_pdl, "build_default_pdl", fake_build)
    return built


def test_default_pdl_cache_name_depends_on_the_input_size(monkeypatch, tmp_path):
    """Regression: a layer built by a 320x240 engine was reused at 640x480 (its training pairs
    depend on the input size)."""
    built = _built(monkeypatch, tmp_path)
    a = default_pdl.default_pdl_path(_engine((320, 240)), "scale_free")
    b = default_pdl.default_pdl_path(_engine((640, 480)), "scale_free")
    c = default_pdl.default_pdl_path(_engine((640, 480), "native"), "scale_free")
    assert len({a, b, c}) == 3 and len(built) == 3
    assert default_pdl.default_pdl_path(_engine((320, 240)), "scale_free") == a and len(built) == 3  # cached


def test_default_pdl_cache_name_depends_on_the_region_source(monkeypatch, tmp_path):
    built = _built(monkeypatch, tmp_path)
    eng = _engine()
    names = {default_pdl.default_pdl_path(eng, "scale_free", region_source=s, region_min_area=a)
             for s, a in (("edge_boxes", 0.35), ("edge_boxes", 0.1), ("hed_edge_boxes", 0.35),
                          ("conv_landmarks", 0.35))}
    assert len(names) == 4 and len(built) == 4


def test_a_layer_trained_with_other_regions_is_a_clear_error(monkeypatch):
    """A decision layer only knows the region distribution it was trained on: a configured
    region_source / region_min_area that differs from its metadata fails at start, naming the field."""
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.rerank.maqbool import pdl as pdl_module

    meta = {"mode": "scale_free", "region_source": "edge_boxes", "region_min_area": 0.35}
    monkeypatch.setattr(pdl_module, "load_pdl", lambda path: SimpleNamespace(meta=dict(meta)))
    cfg = MaqboolConfig(method="maqbool", pdl_path="/layers/eb.onnx")
    assert default_pdl.load_configured_pdl(cfg).meta == meta  # same regions: fine
    import pytest

    with pytest.raises(ValueError, match="region_source"):
        default_pdl.load_configured_pdl(cfg.replace(region_source="hed_edge_boxes"))
    with pytest.raises(ValueError, match="region_min_area"):
        default_pdl.load_configured_pdl(cfg.replace(region_min_area=0.1))
    del meta["region_min_area"]  # layers from before the field: trained at the paper's 0.35
    assert default_pdl.load_configured_pdl(cfg).meta == meta
