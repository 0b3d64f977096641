"""Where the runtime's artifacts come from: the one place that resolves them.

Three artifacts: the descriptor model (model_path), MAQBOOL's decision layer (pdl_path) and
the landmark vocabulary (vocab_path). Each is a given path (the model also a registry name,
pulled by `maqbool models pull`), or the cached default (``$MAQBOOL_CACHE_DIR`` or
``~/.cache/maqbool_ros``). The vocabulary has no default: without one every region weighs 1.

The runtime never builds anything: a missing default raises MissingDefault, one line naming
the `maqbool build-defaults` command that builds it (`make install` runs it for the default
configuration). The offline wing (the `maqbool` tools, the tests) may install a builder with
set_builder so that a missing default is built on first use there; the node never does
(docs/architecture.md, "Two wings").
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from maqbool_ros.core.config import FIELDS, default_of
from maqbool_ros.core.descriptor.cache import cache_dir

BUILD_COMMAND = "maqbool build-defaults"
DEFAULT_BACKBONE = "mobilenetv2"
MODEL_RECIPE = 2  # bump when the default model's recipe changes: old cache files are then ignored
PDL_RECIPE = 4  # the same for the default decision layer (2: maqbool_mode, 3 seeds; 3: base b; 4: alpha 1-SE)
#: Sizes the default model is built in: the schema's descriptor_dim choices (0 = "the model's own").
DIMS = tuple(d for d in FIELDS["descriptor_dim"].metadata["choices"] if d)
DEFAULT_DIM = 512  # descriptor_dim 0 with no model_path: the default model's own size

#: kind ("model" or "pdl"), the file to write, what to build (keyword arguments of the builder)
Builder = Callable[[str, Path, dict], None]
_builder: Builder | None = None


class MissingDefault(FileNotFoundError):
    """A default artifact is not in the cache; ``advice`` names the command that builds it."""

    def __init__(self, field: str, what: str, path: Path, command: str):
        self.field, self.path, self.advice = field, path, f"run `{command}`; the node never builds models"
        super().__init__(f"{field}: the default {what} {path} has not been built")


def set_builder(builder: Builder | None) -> Builder | None:
    """Let missing defaults be built on first use (offline wing only); returns the previous builder."""
    global _builder
    previous, _builder = _builder, builder
    return previous


def _default(field: str, what: str, path: Path, command: str, kind: str, spec: dict) -> Path:
    if path.is_file():
        return path
    if _builder is None:
        raise MissingDefault(field, what, path, command)
    _builder(kind, path, spec)
    return path


# --- descriptor model ----------------------------------------------------------------
def default_model_file(descriptor_dim: int = DEFAULT_DIM, backbone: str = DEFAULT_BACKBONE) -> Path:
    """The cache file of the default model of ``descriptor_dim`` (built or not)."""
    if descriptor_dim not in DIMS:
        raise ValueError(f"descriptor_dim: {descriptor_dim} is not one of {list(DIMS)}")
    return cache_dir() / f"default_{backbone}_wpca{descriptor_dim}_r{MODEL_RECIPE}.onnx"


def model_path(model_path: str | Path | None, descriptor_dim: int = 0, progress: bool = False) -> Path:
    """``model_path`` when given (a path, or the name of a pulled registry model: a name not
    yet pulled is a FileNotFoundError, never a download), else the default model of
    ``descriptor_dim`` (0: DEFAULT_DIM)."""
    if model_path:
        from maqbool_ros.core.descriptor.registry import resolve_name

        return resolve_name(str(model_path)) or Path(model_path)
    dim = int(descriptor_dim) or DEFAULT_DIM
    command = BUILD_COMMAND if dim == DEFAULT_DIM else f"{BUILD_COMMAND} --dim {dim}"
    return _default("model_path", f"{dim}-D model", default_model_file(dim), command, "model",
                    {"descriptor_dim": dim, "backbone": DEFAULT_BACKBONE, "progress": progress})


# --- decision layer ------------------------------------------------------------------
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


def default_pdl_file(engine, mode: str = "paper", *, region_source: str = "edge_boxes",
                     region_min_area: float = default_of("maqbool.region_min_area")) -> Path:
    """The cache file of the default PDL for this engine's model, input size, maqbool_mode and
    region source (built or not)."""
    name = (f"default_pdl_{_model_tag(engine)}_{_input_tag(engine)}_{mode}"
            f"{_region_tag(region_source, region_min_area)}_r{PDL_RECIPE}.onnx")
    return cache_dir() / name


def pdl_path(config, engine=None) -> Path:
    """config.pdl_path when given, else the default decision layer for ``engine``'s model."""
    if config.pdl_path:
        return Path(config.pdl_path)
    if engine is None:
        raise ValueError("pdl_path: empty, and no descriptor engine was given to find the default "
                         "decision layer for (train one with `maqbool train-pdl`)")
    mode = getattr(config, "maqbool_mode", "paper")
    area = float(getattr(config, "region_min_area", 0.35))
    path = default_pdl_file(engine, mode, region_source=config.region_source, region_min_area=area)
    return _default("pdl_path", "decision layer", path,
                    f"{BUILD_COMMAND} --config <the node's parameters file>", "pdl",
                    {"engine": engine, "mode": mode, "region_source": config.region_source,
                     "region_min_area": area})


# --- landmark vocabulary ----------------------------------------------------------------
def vocabulary_path(config) -> Path | None:
    """config.vocab_path, or None: there is no default vocabulary (every region weighs 1)."""
    return Path(config.vocab_path) if getattr(config, "vocab_path", "") else None
