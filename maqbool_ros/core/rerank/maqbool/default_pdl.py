"""The default decision layer's recipe (offline wing): `maqbool build-defaults` builds it into the
cache, where the runtime finds it (core/artifacts.py names the file; pdl.load_configured_pdl).

The default is trained (DT-50, seed 0, n = 50, K = 100) for the model in use on the
embedded SYNTHETIC sequence (maqbool_ros.core.data.demo_sequence, rendered from images that
installed packages ship): it needs no download and never sees the real evaluation data in
../shared/data, so recall reported with it is out-of-sample. It is cached next to the
default model (``$MAQBOOL_CACHE_DIR`` or ``~/.cache/maqbool_ros``) as skl2onnx trees (no
pickle). Train a real one for your environment with ``maqbool train-pdl``.
"""
from __future__ import annotations

from pathlib import Path

from maqbool_ros.core.artifacts import PDL_RECIPE as RECIPE_VERSION
from maqbool_ros.core.artifacts import _input_tag, _model_tag, default_pdl_file
from maqbool_ros.core.config import default_of
from maqbool_ros.core.rerank.maqbool.pdl import load_configured_pdl

__all__ = ["RECIPE_VERSION", "build_default_pdl", "default_pdl_path", "load_configured_pdl"]
SEQUENCE_SEEDS = (8, 9, 10)  # renderings of the embedded synthetic sequence (8 = the demo's own seed)
TREES, SEED, BUDGET, TOP_K, EXCLUDE_RECENT = 50, 0, 50, 100, 20


def default_pdl_path(engine, mode: str = "paper", *, region_source: str = "edge_boxes",
                     region_min_area: float = default_of("maqbool.region_min_area")) -> Path:
    """Cached default PDL for this engine's model, input size, maqbool_mode and region source,
    building it when missing."""
    path = default_pdl_file(engine, mode, region_source=region_source, region_min_area=region_min_area)
    if not path.is_file():
        build_default_pdl(engine, path, mode, region_source=region_source, region_min_area=region_min_area)
    return path


def build_default_pdl(engine, path: Path, mode: str = "paper", *, region_source: str = "edge_boxes",
                      region_min_area: float = default_of("maqbool.region_min_area")) -> Path:
    """Train the default decision layer on the embedded synthetic sequence (atomic write)."""
    from maqbool_ros.core.atomic import atomic_target
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.demo_sequence import demo_sequence
    from maqbool_ros.core.rerank.maqbool.pdl_fit import to_pdl
    from maqbool_ros.core.rerank.maqbool.training import train_pdl

    datasets = [demo_sequence(seed) for seed in SEQUENCE_SEEDS]
    cfg = MaqboolConfig(method="maqbool", region_budget=BUDGET, top_k=TOP_K, exclude_recent_keyframes=EXCLUDE_RECENT,
                        region_source=region_source, region_min_area=region_min_area, maqbool_mode=mode)
    model, meta = train_pdl(engine, datasets, cfg, trees=TREES, seed=SEED, progress=False, log=None)
    meta.update(trained_on=f"embedded synthetic sequence '{datasets[0].name}', seeds {list(SEQUENCE_SEEDS)} "
                           f"({sum(len(d.frames) for d in datasets)} frames)", model=_model_tag(engine),
                input=_input_tag(engine))
    with atomic_target(path) as tmp:
        to_pdl(model, str(path), meta).save(tmp)  # the format comes from the final name's suffix
    return path
