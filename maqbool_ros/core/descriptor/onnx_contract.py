"""The ONNX graph contract between `maqbool export` / `maqbool fit` (offline) and the engine
(runtime): output and initializer names, and reading the numpy NetVLAD head and metadata
back from a model file (docs/descriptor-engine.md)."""
from __future__ import annotations

from typing import Any

import numpy as np

OUTPUT_NAMES = ("descriptor", "whitened", "feature_map", "landmark_features")
# model parameter -> ONNX initializer name (documented in docs/descriptor-engine.md)
INITIALIZER_NAMES = {
    "centroids": "netvlad.centroids",          # (K, D)
    "assign_weight": "netvlad.assign_weight",  # (K, D)
    "assign_bias": "netvlad.assign_bias",      # (K,) optional
    "pca_weight": "wpca.weight",               # (P, K*D) optional
    "pca_bias": "wpca.bias",                   # (P,) optional
}


def read_head_and_metadata(model: Any):
    """(NetVLADHead, metadata dict) from a serialized ONNX model (bytes) or a loaded ModelProto
    (offline callers; serialized here). Read with core/descriptor/onnx_reader, not ``onnx``,
    so the runtime never imports it (start-up time)."""
    from maqbool_ros.core.descriptor.netvlad_head import NetVLADHead
    from maqbool_ros.core.descriptor.onnx_reader import read_onnx

    data = model if isinstance(model, bytes | bytearray | memoryview) else model.SerializeToString()
    meta, inits = read_onnx(bytes(data), frozenset(INITIALIZER_NAMES.values()))
    missing = [k for k in ("backbone", "descriptor_dim", "stride", "mean", "std") if k not in meta]
    if missing:
        raise ValueError(f"model: ONNX metadata lacks {missing} (export it with `maqbool export` or `maqbool fit`)")

    def get(attr: str, required: bool) -> np.ndarray | None:
        name = INITIALIZER_NAMES[attr]
        if name not in inits:
            if required:
                raise ValueError(f"model: ONNX initializer {name!r} is missing")
            return None
        return inits[name]

    def shaped(a: np.ndarray | None, *shape: int) -> np.ndarray | None:
        return None if a is None else a.reshape(*shape)

    centroids = get("centroids", True)
    k = centroids.shape[0]
    pca_weight = get("pca_weight", False)
    head = NetVLADHead(centroids, shaped(get("assign_weight", True), k, -1), shaped(get("assign_bias", False), k),
                       shaped(pca_weight, -1, centroids.size), shaped(get("pca_bias", False), -1),
                       int(meta["descriptor_dim"]))
    return head, meta
