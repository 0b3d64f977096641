"""Training a decision layer (offline wing): scikit-learn's forest and its conversion to the
two formats pdl.py loads (no pickle). The runtime only loads and evaluates (pdl.py)."""
from __future__ import annotations

import json

import numpy as np

from maqbool_ros.core.rerank.maqbool.pdl import NumpyForest, OnnxForest, _check_rows


def train_forest(x: np.ndarray, y: np.ndarray, trees: int = 50, seed: int = 0, n_jobs: int = -1):
    """Fit scikit-learn's RandomForestRegressor with MATLAB TreeBagger's defaults (M6).

    n_jobs: threads that grow the trees (-1: every core). The forest does not depend on it
    (each tree's seed is drawn from ``seed`` up front); the fitted model predicts on one thread,
    because the callers predict many small lists, where thread start-up costs more than it saves."""
    from sklearn.ensemble import RandomForestRegressor

    if trees < 1:
        raise ValueError(f"trees: must be >= 1, got {trees}")
    model = RandomForestRegressor(n_estimators=trees, max_features=1 / 3, min_samples_leaf=5,
                                  bootstrap=True, oob_score=True, random_state=seed, n_jobs=n_jobs)
    model.fit(_check_rows(x), np.asarray(y, np.float64))
    model.set_params(n_jobs=1)
    return model


def numpy_forest(model, meta: dict | None = None) -> NumpyForest:
    """A fitted scikit-learn forest as flat arrays (the .npz format)."""
    feats, thrs, lefts, rights, vals, roots = [], [], [], [], [], []
    offset, depth = 0, 0
    for est in model.estimators_:
        t = est.tree_
        n = t.node_count
        leaf = t.children_left < 0
        own = np.arange(n) + offset
        roots.append(offset)
        feats.append(np.where(leaf, 0, t.feature))
        thrs.append(np.where(leaf, 0.0, t.threshold))
        lefts.append(np.where(leaf, own, t.children_left + offset))
        rights.append(np.where(leaf, own, t.children_right + offset))
        vals.append(t.value.reshape(n, -1)[:, 0])
        depth = max(depth, int(t.max_depth))
        offset += n
    cat = np.concatenate
    return NumpyForest(cat(feats), cat(thrs), cat(lefts), cat(rights), cat(vals), roots, depth, meta)


def onnx_forest(model, meta: dict | None = None) -> OnnxForest:
    """A fitted scikit-learn forest as skl2onnx's TreeEnsembleRegressor (the .onnx format)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, model.n_features_in_]))],
                          target_opset={"": 17, "ai.onnx.ml": 3})
    for key, val in (meta or {}).items():
        prop = onx.metadata_props.add()
        prop.key, prop.value = "maqbool." + key, json.dumps(val)
    return OnnxForest(onx.SerializeToString(), meta)


def to_pdl(model, path_or_format: str, meta: dict | None = None):
    """Wrap a fitted scikit-learn forest in the format named by a path's suffix (or 'npz'/'onnx')."""
    fmt = path_or_format.rsplit(".", 1)[-1].lower()
    if fmt == "npz":
        return numpy_forest(model, meta)
    if fmt == "onnx":
        return onnx_forest(model, meta)
    raise ValueError(f"PDL file {path_or_format!r}: use a .npz or .onnx suffix")
