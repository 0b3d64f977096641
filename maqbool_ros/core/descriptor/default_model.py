"""The embedded default model's recipe (offline wing): `maqbool build-defaults` builds it into
the cache, where the runtime finds it (core/artifacts.py); no download.

Backbone weights come from the ImageNet weight package installed with maqbool_ros; the
NetVLAD centroids and whitening PCA are fitted on natural images that installed packages
ship (scikit-learn's sample photos, matplotlib's sample photo), expanded by seeded random
crops, flips and photometric jitter. This is an environment-agnostic initialisation:
`maqbool fit --images <deployment images>` adapts it and is recommended.

Cache: ``$MAQBOOL_CACHE_DIR`` or ``~/.cache/maqbool_ros``; files are written atomically,
so concurrent first uses are safe (the last writer wins with identical content).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from maqbool_ros.core import artifacts
from maqbool_ros.core.artifacts import DEFAULT_BACKBONE, DEFAULT_DIM, DIMS
from maqbool_ros.core.artifacts import MODEL_RECIPE as RECIPE_VERSION
from maqbool_ros.core.descriptor.cache import cache_dir  # noqa: F401 - re-exported for older callers

__all__ = ["DEFAULT_BACKBONE", "DEFAULT_DIM", "DIMS", "RECIPE_VERSION", "build_default_model", "default_model_path",
           "resolve_model_path"]
SEED = 0
# (package, file inside it): real photographs shipped in wheels that are installed anyway
SOURCE_IMAGES = (
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)
AUG_SIZE = (320, 240)


def source_image_paths() -> list[Path]:
    """The shipped photographs found in installed packages (at least one is required)."""
    paths = []
    for package, resource in SOURCE_IMAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / resource
        if path.is_file():
            paths.append(path)
    if not paths:
        raise FileNotFoundError("default model: none of the sample photos shipped by scikit-learn/matplotlib "
                                "was found; run `maqbool fit --images DIR` on your own images instead")
    return paths


def augmented_images(count: int, seed: int = SEED) -> list[np.ndarray]:
    """``count`` seeded random crops (30-100 % of the area), flips and brightness/contrast
    jitter of the source photos, resized to AUG_SIZE."""
    import cv2

    from maqbool_ros.core.images.io import read_image

    rng = np.random.default_rng(seed)
    sources = [read_image(p) for p in source_image_paths()]
    out = []
    for i in range(count):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        area = rng.uniform(0.3, 1.0)
        aspect = rng.uniform(0.75, 1.333)
        ch = int(min(h, round(np.sqrt(area * h * w / aspect))))
        cw = int(min(w, round(ch * aspect)))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = img[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = cv2.resize(np.ascontiguousarray(crop), AUG_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        crop = crop * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
        out.append(np.clip(crop, 0, 255).astype(np.uint8))
    return out


def resolve_model_path(model_path: str | Path | None, descriptor_dim: int = 0, progress: bool = False) -> Path:
    """artifacts.model_path, building a missing default here (the offline tools' rule)."""
    if model_path:
        return artifacts.model_path(model_path, descriptor_dim)
    return default_model_path(descriptor_dim or DEFAULT_DIM, progress=progress)


def default_model_path(descriptor_dim: int = DEFAULT_DIM, backbone: str = DEFAULT_BACKBONE,
                       progress: bool = False) -> Path:
    """Path of the default ONNX model (WPCA to ``descriptor_dim``), building it when missing."""
    path = artifacts.default_model_file(descriptor_dim, backbone)
    if not path.is_file():
        build_default_model(path, descriptor_dim, backbone, progress)
    return path


def build_default_model(path: Path, descriptor_dim: int, backbone: str, progress: bool = False) -> Path:
    """Fit and export the default model to ``path`` (atomic write)."""
    import torch

    from maqbool_ros.core.atomic import atomic_target
    from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
    from maqbool_ros.core.descriptor.fit import fit_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    # enough augmented views that k-means sees ~40 features per cluster and the
    # sub-window VLADs make the PCA full rank without too many windows per view
    count = 96 if descriptor_dim <= 512 else 256
    images = augmented_images(count)
    model = fit_model(images, backbone=backbone, pca_dim=descriptor_dim, seed=SEED, image_size=AUG_SIZE,
                      resize_policy="exact", progress=progress)
    names = ", ".join(p.name for p in source_image_paths())
    meta = model_metadata(model, fitted_on=(f"embedded default r{RECIPE_VERSION}: {count} augmented views of "
                                            f"{names} (environment-agnostic; run maqbool fit on your images); "
                                            f"pca_rank={model.fit_info['pca_rank']}"))
    with atomic_target(path) as tmp:
        export_onnx(model, tmp, meta)
    return path
