"""Synthesized Patch-NetVLAD / Nanne checkpoints (random weights, real key layouts)."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg_encoder_state(seed: int) -> dict[str, torch.Tensor]:
    """torchvision VGG16 features[:29] keys (encoder.0 .. encoder.28), He-scaled random."""
    g = torch.Generator().manual_seed(seed)
    sd, idx, in_ch = {}, 0, 3
    for v in VGG_CFG:
        if v == "M":
            idx += 1
            continue
        sd[f"encoder.{idx}.weight"] = torch.randn(v, in_ch, 3, 3, generator=g) * (2.0 / (9 * in_ch)) ** 0.5
        sd[f"encoder.{idx}.bias"] = torch.randn(v, generator=g) * 0.01
        idx, in_ch = idx + 2, v
    return sd


def pool_state(k: int, seed: int, bias: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(k, 512, generator=g) * 0.05
    sd = {"pool.centroids": c, "pool.conv.weight": (F.normalize(c, dim=1) * 30).reshape(k, 512, 1, 1)}
    if bias:
        sd["pool.conv.bias"] = torch.randn(k, generator=g)
    return sd


def patch_netvlad_checkpoint(path: Path, k: int, p: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Write a Patch-NetVLAD-layout checkpoint (VGG16 + K clusters + WPCA to P) to ``path``."""
    sd = {**vgg_encoder_state(seed), **pool_state(k, seed + 1)}
    g = torch.Generator().manual_seed(seed + 2)
    sd["WPCA.0.weight"] = torch.randn(p, k * 512, 1, 1, generator=g) / (k * 512) ** 0.5
    sd["WPCA.0.bias"] = torch.randn(p, generator=g) * 0.01
    torch.save({"epoch": 5, "best_score": 0.9, "state_dict": sd}, path)
    return sd
