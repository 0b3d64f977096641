"""Torch NetVLAD + whitening-PCA model: backbone -> preL2 -> soft-assign -> VLAD ->
intra-norm -> L2 -> WPCA -> L2, with the global descriptor as the first
``descriptor_dim`` whitened dimensions re-normalised (the arithmetic of
:class:`maqbool_ros.core.descriptor.netvlad_head.NetVLADHead`, which the ONNX export must match).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maqbool_ros.core.descriptor.models.backbones import make_backbone
from maqbool_ros.core.descriptor.netvlad_head import NetVLADHead

EPS = 1e-12


class NetVLADModel(nn.Module):
    """Backbone + NetVLAD (K clusters, optional assignment bias) + WPCA (P rows, optional).

    Input: (1, 3, H, W) float RGB in 0..255; normalisation with the backbone's mean/std
    happens inside. Outputs: descriptor, whitened, feature_map, landmark_features.
    """

    def __init__(self, backbone: str, num_clusters: int = 64, pca_dim: int | None = 512,
                 descriptor_dim: int | None = None, assign_bias: bool = False) -> None:
        super().__init__()
        self.backbone = make_backbone(backbone)
        d = self.backbone.feature_dim
        k = num_clusters
        self.centroids = nn.Parameter(torch.randn(k, d) * 0.1)
        self.assign_weight = nn.Parameter(torch.randn(k, d))
        self.assign_bias = nn.Parameter(torch.zeros(k)) if assign_bias else None
        if pca_dim is not None:
            if pca_dim > k * d:
                raise ValueError(f"pca_dim: {pca_dim} exceeds the VLAD dimension K*D = {k * d}")
            self.pca_weight = nn.Parameter(torch.randn(pca_dim, k * d) / np.sqrt(k * d))
            self.pca_bias = nn.Parameter(torch.zeros(pca_dim))
        else:
            self.pca_weight = self.pca_bias = None
        out_dim = pca_dim if pca_dim is not None else k * d
        self.descriptor_dim = int(descriptor_dim or out_dim)
        if not 0 < self.descriptor_dim <= out_dim:
            raise ValueError(f"descriptor_dim: {self.descriptor_dim} must be in 1..{out_dim}")
        mean = torch.tensor(self.backbone.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.backbone.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("pixel_mean", mean)
        self.register_buffer("pixel_std", std)

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def output_dim(self) -> int:
        return int(self.pca_weight.shape[0]) if self.pca_weight is not None else int(self.centroids.numel())

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,H,W) 0..255 RGB -> (landmark_features, feature_map)."""
        return self.backbone((image - self.pixel_mean) / self.pixel_std)

    def aggregate(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(B, D, H', W') -> (B, P) whitened, L2-normalised descriptor."""
        b, d = feature_map.shape[:2]
        x = feature_map.reshape(b, d, -1)                                   # (B, D, N)
        x = x / x.norm(dim=1, keepdim=True).clamp_min(EPS)                  # preL2
        logits = torch.einsum("kd,bdn->bkn", self.assign_weight, x)
        if self.assign_bias is not None:
            logits = logits + self.assign_bias.view(1, -1, 1)
        a = torch.softmax(logits, dim=1)                                    # (B, K, N)
        vlad = torch.bmm(a, x.transpose(1, 2)) - a.sum(dim=2, keepdim=True) * self.centroids
        vlad = vlad / vlad.norm(dim=2, keepdim=True).clamp_min(EPS)         # intra-norm
        vlad = vlad.reshape(b, -1)
        vlad = vlad / vlad.norm(dim=1, keepdim=True).clamp_min(EPS)
        if self.pca_weight is None:
            return vlad
        y = F.linear(vlad, self.pca_weight, self.pca_bias)
        return y / y.norm(dim=1, keepdim=True).clamp_min(EPS)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        landmark, fmap = self.features(image)
        whitened = self.aggregate(fmap)
        g = whitened[:, : self.descriptor_dim]
        descriptor = g / g.norm(dim=1, keepdim=True).clamp_min(EPS)
        return descriptor, whitened, fmap, landmark

    def head(self) -> NetVLADHead:
        """The numpy head with this model's parameters."""
        def arr(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().cpu().numpy().astype(np.float32)
        return NetVLADHead(arr(self.centroids), arr(self.assign_weight), arr(self.assign_bias),
                           arr(self.pca_weight), arr(self.pca_bias), self.descriptor_dim)

    def set_head(self, centroids: np.ndarray, assign_weight: np.ndarray, assign_bias: np.ndarray | None,
                 pca_weight: np.ndarray | None, pca_bias: np.ndarray | None) -> None:
        """Copy NetVLAD/WPCA parameters in (shapes must match this model's)."""
        with torch.no_grad():
            for name, value in (("centroids", centroids), ("assign_weight", assign_weight),
                                ("assign_bias", assign_bias), ("pca_weight", pca_weight), ("pca_bias", pca_bias)):
                param = getattr(self, name)
                if (param is None) != (value is None):
                    raise ValueError(f"{name}: model has {'no ' if param is None else ''}such parameter")
                if param is None:
                    continue
                value = torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(param.shape) \
                    if np.asarray(value).size == param.numel() else None
                if value is None:
                    raise ValueError(f"{name}: expected shape {tuple(param.shape)}")
                param.copy_(value)
