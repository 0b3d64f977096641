"""Which decision layer the re-ranker uses: config.pdl_path, else a default built on first use.

The default is trained (DT-50, seed 0, n = 50, K = 100) for the model in use on the
embedded SYNTHETIC sequence (maqbool_ros.core.data.demo_sequence, rendered from images that
installed packages ship): it needs no download and never sees the real evaluation data in
../shared/data, so recall reported with it is out-of-sample. It is cached next to the
default model (``$MAQBOOL_CACHE_DIR`` or ``~/.cache/maqbool_ros``) as skl2onnx trees (no
pickle). Train a real one for your environment with ``maqbool train-pdl``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

RECIPE_VERSION = 4  # bump when the training recipe changes (2: maqbool_mode, 3 seeds; 3: base b; 4: alpha 1-SE rule)
SEQUENCE_SEEDS = (8, 9, 10)  # renderings of the embedded synthetic sequence (8 = the demo's own seed)
TREES, SEED, BUDGET, TOP_K, EXCLUDE_RECENT = 50, 0, 50, 100, 20


def _model_tag(engine) -> str:
    """Identifies the descriptor model a default PDL belongs to (name, size, head bytes)."""
    path = Path(getattr(engine, "model_path", "model"))
    digest = hashlib.sha1()
    digest.update(path.name.encode())
    head = engine.head
    for arr in (head.centroids, head.pca_weight):
        if arr is not None:
            digest.update(arr[:8].tobytes())
    return f"{path.stem[:40]}_{digest.hexdigest()[:10]}"


def _input_tag(engine) -> str:
    """The engine's input size and resize policy: the training pairs (boxes, feature maps) depend on them."""
    w, h = getattr(engine, "image_size", (0, 0))
    return f"{int(w)}x{int(h)}{str(getattr(engine, 'resize_policy', ''))[:4]}"


def _region_tag(region_source: str, region_min_area: float) -> str:
    """'' for the paper's regions (Edge Boxes, 35 % filter) so those keep their name; else the source/area."""
    if region_source == "edge_boxes" and region_min_area >= 0.35:
        return ""
    return f"_{region_source}{round(100 * region_min_area)}"


def default_pdl_path(engine, mode: str = "paper", *, region_source: str = "edge_boxes",
                     region_min_area: float = 0.35) -> Path:
    """Cached default PDL for this engine's model, input size, maqbool_mode and region source,
    building it on first use."""
    from maqbool_ros.core.descriptor.default_model import cache_dir

    name = (f"default_pdl_{_model_tag(engine)}_{_input_tag(engine)}_{mode}"
            f"{_region_tag(region_source, region_min_area)}_r{RECIPE_VERSION}.onnx")
    path = cache_dir() / name
    if not path.is_file():
        build_default_pdl(engine, path, mode, region_source=region_source, region_min_area=region_min_area)
    return path


def build_default_pdl(engine, path: Path, mode: str = "paper", *, region_source: str = "edge_boxes",
                      region_min_area: float = 0.35) -> Path:
    """Train the default decision layer on the embedded synthetic sequence (atomic write)."""
    from maqbool_ros.core.atomic import atomic_target
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.demo_sequence import demo_sequence
    from maqbool_ros.core.rerank.maqbool.pdl import to_pdl
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


def load_configured_pdl(config, head=None, engine=None):
    """Load config.pdl_path, or the default for ``engine``'s model; warn on a dim mismatch."""
    from maqbool_ros.core.rerank.maqbool.pdl import check_pdl_meta, load_pdl

    mode = getattr(config, "maqbool_mode", "paper")
    if config.pdl_path:
        pdl = load_pdl(config.pdl_path)
    elif engine is not None:
        pdl = load_pdl(default_pdl_path(engine, mode, region_source=config.region_source,
                                        region_min_area=getattr(config, "region_min_area", 0.35)))
    else:
        raise ValueError("pdl_path: empty, and no descriptor engine was given to build the default "
                         "decision layer for (train one with `maqbool train-pdl`)")
    trained = pdl.meta.get("mode", "paper")  # layers from before the modes are paper layers
    if trained != mode:
        raise ValueError(f"maqbool_mode: {mode!r}, but the decision layer {config.pdl_path or '(default)'} was "
                         f"trained in mode {trained!r}; retrain it with `maqbool train-pdl --maqbool-mode {mode}`")
    _check_regions(pdl.meta, config)
    if head is not None:
        check_pdl_meta(pdl, head)
    return pdl


def _check_regions(meta: dict, config) -> None:
    """A layer only knows the region distribution it was trained on: region_source and
    region_min_area must match its metadata (layers without them: edge_boxes at 0.35)."""
    name = config.pdl_path or "(default)"
    source = meta.get("region_source", "edge_boxes")
    if source != config.region_source:
        raise ValueError(f"region_source: {config.region_source!r}, but the decision layer {name} was trained "
                         f"with {source!r}; retrain it (`maqbool train-pdl --regions {config.region_source}`)")
    area = float(meta.get("region_min_area", 0.35))
    wanted = float(getattr(config, "region_min_area", 0.35))
    if source != "conv_landmarks" and abs(area - wanted) > 1e-9:
        raise ValueError(f"region_min_area: {wanted:g}, but the decision layer {name} was trained at {area:g}; "
                         "retrain it with the same value (`maqbool train-pdl --config`)")
