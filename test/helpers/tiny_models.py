"""Tiny descriptor models and datasets for CLI tests: a random-weight MobileNetV2 trunk with a
NetVLAD head and no PCA, so a model of any descriptor dimension exports in about a second."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

IMAGE_SIZE = (96, 64)  # (width, height): small and a multiple of the stride


def tiny_model(path: Path, dim: int) -> Path:
    """An ONNX model whose descriptor is ``dim``-D (metadata says so), written to ``path``."""
    from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
    from maqbool_ros.core.descriptor.models.netvlad import NetVLADModel

    probe = NetVLADModel("mobilenetv2", num_clusters=1, pca_dim=None)
    clusters = math.ceil(dim / probe.backbone.feature_dim)
    model = NetVLADModel("mobilenetv2", num_clusters=clusters, pca_dim=None, descriptor_dim=dim).eval()
    return export_onnx(model, path, model_metadata(model, f"tiny test model {dim}-D", IMAGE_SIZE))


def blocky_image(seed: int, noise: float = 0.0) -> np.ndarray:
    """A seeded (64, 96, 3) uint8 image of coloured blocks (structure for edges and regions)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 6, 3)).astype(np.float32)
    img = cv2.resize(small, IMAGE_SIZE, interpolation=cv2.INTER_NEAREST)
    if noise:
        img = img + np.random.default_rng(seed + 1000).normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def tiny_query_ref(root: Path, count: int = 4) -> Path:
    """query/ + ref/ + ground_truth.csv: query i is a noisy copy of ref i."""
    for sub in ("query", "ref"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / "ref" / f"{i:03d}.png"), blocky_image(i))
        cv2.imwrite(str(root / "query" / f"{i:03d}.png"), blocky_image(i, noise=8.0))
    rows = ["query_index,positive_ref_indices"] + [f"{i},{i}" for i in range(count)]
    (root / "ground_truth.csv").write_text("\n".join(rows) + "\n")
    return root


def small_config(path: Path, **fields) -> Path:
    """A plain YAML config (nested by section) with the tiny image size and ``fields`` (attribute names)."""
    from maqbool_ros.core.config import MaqboolConfig, plain_yaml

    values = {"image_width": IMAGE_SIZE[0], "image_height": IMAGE_SIZE[1], "resize_policy": "exact", **fields}
    path.write_text(plain_yaml(MaqboolConfig(**values)))
    return path
