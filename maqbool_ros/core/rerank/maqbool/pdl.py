"""MAQBOOL probabilistic decision layer (PDL, docs/method-reference.md, M6): a bagged regression
forest, loaded and evaluated here (runtime); trained by pdl_fit.py (offline wing).

Trained with scikit-learn (RandomForestRegressor with TreeBagger's defaults) on the
112-D pair features with labels 1 + isPos; P_j is the mean tree output, in [1, 2].
Saved WITHOUT pickle in one of two formats, chosen by the file extension:

* ``.npz`` -- our tree format, evaluated in numpy. Arrays (all trees concatenated):
  ``feature`` int32 (split feature; 0 at leaves), ``threshold`` float64 (go left when
  x[feature] <= threshold, x cast to float32 first as scikit-learn does), ``left`` /
  ``right`` int32 (global node indices; leaves point to themselves), ``value`` float64
  (leaf output), ``roots`` int32 (first node of each tree), ``depth`` int32 (max tree
  depth) and ``meta`` (a JSON string). Predictions equal scikit-learn's (to float64
  summation order).
* ``.onnx`` -- skl2onnx's TreeEnsembleRegressor, run by onnxruntime with one thread
  (float32 thresholds, so it agrees with scikit-learn to ~1e-6).

benchmarks/rerank.py measures both on 100 rows; docs/maqbool.md has the figures.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM


class NumpyForest:
    """A regression forest in flat arrays, evaluated level by level for all trees at once."""

    format = "npz"

    def __init__(self, feature, threshold, left, right, value, roots, depth, meta=None):
        self.feature = np.asarray(feature, np.int32)
        self.threshold = np.asarray(threshold, np.float64)
        self.left = np.asarray(left, np.int32)
        self.right = np.asarray(right, np.int32)
        self.value = np.asarray(value, np.float64)
        self.roots = np.asarray(roots, np.int32)
        self.depth = int(depth)
        self.meta = dict(meta or {})

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(R, F) features -> (R,) mean tree output (float64)."""
        x = _check_rows(x)
        nodes = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[nodes]] <= self.threshold[nodes]
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        return self.value[nodes].mean(axis=1)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, feature=self.feature, threshold=self.threshold, left=self.left,
                            right=self.right, value=self.value, roots=self.roots,
                            depth=np.int32(self.depth), meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path) -> NumpyForest:
        with np.load(path, allow_pickle=False) as z:
            missing = {"feature", "threshold", "left", "right", "value", "roots", "depth"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: not a PDL npz file (missing {sorted(missing)})")
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
            return cls(z["feature"], z["threshold"], z["left"], z["right"], z["value"], z["roots"],
                       int(z["depth"]), meta)


class OnnxForest:
    """A forest exported by skl2onnx, run by onnxruntime on one thread."""

    format = "onnx"

    def __init__(self, model_bytes: bytes, meta: dict | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # 100 rows: threads cost more than they save
        opts.inter_op_num_threads = 1
        self._bytes = model_bytes
        self._session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.meta = dict(meta or {})

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = _check_rows(x)
        out = self._session.run(None, {self._input: x})[0]
        return np.asarray(out, np.float64).reshape(-1)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self._bytes)

    @classmethod
    def load(cls, path: str | Path) -> OnnxForest:
        from maqbool_ros.core.descriptor.onnx_reader import read_onnx

        data = Path(path).read_bytes()
        try:
            props, _ = read_onnx(data)
            meta = {k[len("maqbool."):]: json.loads(v) for k, v in props.items() if k.startswith("maqbool.")}
        except ValueError as exc:  # a clear message instead of a protobuf trace (JSONDecodeError too)
            raise ValueError(f"{path}: not an ONNX PDL file ({exc})") from exc
        return cls(data, meta)


def _check_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != FEATURE_DIM:
        raise ValueError(f"PDL input: expected (rows, {FEATURE_DIM}) features, got {x.shape}")
    return x


def load_pdl(path: str | Path):
    """Load a PDL saved by :func:`to_pdl(...).save` (format from the suffix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pdl_path: {path} does not exist (train one with `maqbool train-pdl`)")
    if path.suffix.lower() == ".npz":
        return NumpyForest.load(path)
    if path.suffix.lower() == ".onnx":
        return OnnxForest.load(path)
    raise ValueError(f"pdl_path: {path} must end in .npz or .onnx")


class UntrainedPdl:
    """Placeholder for tools that only need MAQBOOL's per-keyframe extras (e.g. train-pdl)."""

    format = "none"
    meta: dict = {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("no decision layer loaded: this re-ranker was built for feature extraction only")


def check_pdl_meta(pdl, head) -> None:
    """Warn when a PDL was trained for another descriptor dim (features differ in scale)."""
    dim = pdl.meta.get("descriptor_dim") if hasattr(pdl, "meta") else None
    if dim is not None and int(dim) != int(head.descriptor_dim):
        warnings.warn(f"pdl_path: decision layer trained at {dim}-D, the model is "
                      f"{head.descriptor_dim}-D; retrain with `maqbool train-pdl`", stacklevel=3)


def load_configured_pdl(config, head=None, engine=None):
    """Load config.pdl_path, or the default for ``engine``'s model (core/artifacts.py); warn on a
    dim mismatch."""
    from maqbool_ros.core import artifacts

    mode = getattr(config, "maqbool_mode", "paper")
    pdl = load_pdl(artifacts.pdl_path(config, engine))
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
