"""ONNX export of a :class:`NetVLADModel` with stable initializer names and metadata.

Graph contract (opset 17, dynamic H and W):
  input  ``image``             float32 (1, 3, H, W) RGB in 0..255 (mean/std applied inside)
  output ``descriptor``        (1, descriptor_dim) L2-normalised global descriptor
  output ``whitened``          (1, P) WPCA output, L2-normalised, before truncation
  output ``feature_map``       (1, D, H', W') tensor NetVLAD aggregates (before preL2)
  output ``landmark_features`` (1, D2, H', W') preceding conv layer, same stride
NetVLAD/WPCA initializers are renamed to ``INITIALIZER_NAMES`` so the engine rebuilds the
numpy head from the file alone; ``metadata_props`` hold everything else (no side files).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros import __version__

# the graph contract the engine reads lives with the runtime; re-exported for the offline tools
from maqbool_ros.core.descriptor.onnx_contract import (  # noqa: F401
    INITIALIZER_NAMES,
    OUTPUT_NAMES,
    read_head_and_metadata,
)

OPSET = 17


def model_metadata(model, fitted_on: str, image_size: tuple[int, int] = (640, 480),
                   resize_policy: str = "keep_aspect") -> dict[str, str]:
    """metadata_props for an exported model (all values are strings; lists as JSON)."""
    bb = model.backbone
    return {
        "backbone": bb.name,
        "descriptor_dim": str(model.descriptor_dim),
        "pca_dim": str(model.pca_weight.shape[0]) if model.pca_weight is not None else "0",
        "feature_dim": str(bb.feature_dim),
        "landmark_dim": str(bb.landmark_dim),
        "num_clusters": str(model.num_clusters),
        "stride": str(bb.stride),
        "mean": json.dumps(list(bb.mean)),
        "std": json.dumps(list(bb.std)),
        "input": "image: float32 (1,3,H,W) RGB 0..255; (x/255 - mean)/std applied in the graph",
        "image_size": f"{image_size[0]}x{image_size[1]}",
        "resize_policy": resize_policy,
        "feature_map": _FEATURE_DOC[bb.name],
        "maqbool_ros_version": __version__,
        "fitted_on": fitted_on,
        "initializers": json.dumps(INITIALIZER_NAMES),
    }


_FEATURE_DOC = {
    "vgg16": "feature_map=conv5_3 before ReLU; landmark_features=conv5_2 before ReLU; stride 16",
    "mobilenetv2": ("feature_map=features.13 output (linear bottleneck); landmark_features=features.12 output; "
                    "stride 16"),
    "efficientnet_lite0": ("feature_map=_blocks.10 output (linear bottleneck); landmark_features=_blocks.9 output; "
                           "stride 16"),
}


def export_onnx(model, out_path: str | Path, metadata: dict[str, str], sample_hw: tuple[int, int] = (224, 288)) -> Path:
    """Export ``model`` to ``out_path`` (fp32, opset 17, dynamic H/W) and return the path."""
    import onnx

    proto = onnx.load_from_string(export_onnx_bytes(model, sample_hw))
    _rename_initializers(proto, model)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    return out_path


def export_checkpoint(checkpoint: str | Path, out_path: str | Path, fitted_on: str, pca: str | Path | None = None,
                      descriptor_dim: int | None = None, image_size: tuple[int, int] = (640, 480),
                      resize_policy: str = "keep_aspect"):
    """A Patch-NetVLAD / Nanne checkpoint (plus optional separate PCA) exported to ``out_path``,
    written atomically; returns the loaded model (ValueError when --dim exceeds its PCA)."""
    from maqbool_ros.core.atomic import atomic_target
    from maqbool_ros.core.descriptor.models.checkpoints import load_netvlad_checkpoint

    model = load_netvlad_checkpoint(checkpoint, pca, descriptor_dim=descriptor_dim)
    if descriptor_dim is not None and model.output_dim < descriptor_dim:
        raise ValueError(f"--dim {descriptor_dim} exceeds the checkpoint's whitened dimension {model.output_dim}")
    meta = model_metadata(model, fitted_on=fitted_on, image_size=image_size, resize_policy=resize_policy)
    with atomic_target(out_path) as tmp:
        export_onnx(model, tmp, meta)
    return model


def export_onnx_bytes(model, sample_hw: tuple[int, int] = (224, 288)) -> bytes:
    """The raw ONNX export (no renaming, no metadata), e.g. to run the backbone in onnxruntime."""
    import torch

    model = model.eval()
    sample = torch.full((1, 3, *sample_hw), 128.0)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (sample,), buf, dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=list(OUTPUT_NAMES),
                          dynamic_axes={"image": {2: "height", 3: "width"},
                                        "feature_map": {2: "map_height", 3: "map_width"},
                                        "landmark_features": {2: "map_height", 3: "map_width"}})
    return buf.getvalue()


def cpu_session(model_bytes: bytes, threads: int = 2, spinning: bool = False):
    """An onnxruntime CPU session. spinning=False: idle worker threads sleep instead of
    busy-waiting, which keeps throughput sane when the CPU is shared (measured: busy-waiting
    threads slowed forwards >10x under load)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _rename_initializers(proto: Any, model) -> None:
    """Give the NetVLAD/WPCA initializers their stable names (found by value: the exporter's
    own names depend on the torch version)."""
    from onnx import numpy_helper

    inits = {init.name: init for init in proto.graph.initializer}
    arrays = {name: numpy_helper.to_array(init) for name, init in inits.items()}
    for attr, stable in INITIALIZER_NAMES.items():
        param = getattr(model, attr)
        if param is None:
            continue
        want = param.detach().cpu().numpy()
        # by value; the exporter may fold a reshape into the constant (e.g. bias -> (1, K, 1))
        match = next((n for n, a in arrays.items() if a.size == want.size and a.dtype == want.dtype
                      and np.array_equal(a.reshape(want.shape), want)), None)
        if match is None:
            raise RuntimeError(f"export: initializer for {attr} {want.shape} not found in the ONNX graph")
        inits[match].name = stable
        for node in proto.graph.node:
            node.input[:] = [stable if i == match else i for i in node.input]
        del arrays[match]
