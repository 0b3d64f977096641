"""NetVLAD head parameters in numpy: the exact arithmetic the ONNX graph runs after the
backbone, reused for region descriptors (MAQBOOL) without another network pass.

Order (as in Relja/netvlad and Patch-NetVLAD): per-location channel L2 ("preL2") ->
soft assignment (1x1 conv, softmax over clusters) -> residual aggregation ->
intra-normalisation -> L2 -> whitening PCA (a 1x1 conv over the flattened VLAD) -> L2.
The global descriptor keeps the first ``descriptor_dim`` whitened dimensions and is
L2-normalised again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-12


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x / ||x|| along axis (zero vectors stay zero)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, EPS)


@dataclass
class NetVLADHead:
    """NetVLAD + WPCA parameters.

    centroids: (K, D) cluster centres c_k.
    assign_weight: (K, D) soft-assignment 1x1 conv weight; assign_bias: (K,) or None.
    pca_weight: (P, K*D) whitening PCA as a matrix (P = 4096 or 512) or None (no PCA);
    pca_bias: (P,) or None. descriptor_dim: dims kept for the global descriptor (<= P).
    """

    centroids: np.ndarray
    assign_weight: np.ndarray
    assign_bias: np.ndarray | None
    pca_weight: np.ndarray | None
    pca_bias: np.ndarray | None
    descriptor_dim: int

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def output_dim(self) -> int:
        """Dimension of whitened (region) descriptors: P, or K*D without PCA."""
        return int(self.pca_weight.shape[0]) if self.pca_weight is not None else self.num_clusters * self.feature_dim

    def soft_assign(self, features: np.ndarray) -> np.ndarray:
        """(N, D) pre-L2-normalised local features -> (N, K) soft assignment."""
        logits = features @ self.assign_weight.T
        if self.assign_bias is not None:
            logits = logits + self.assign_bias
        logits = logits - logits.max(axis=1, keepdims=True)
        a = np.exp(logits)
        return a / a.sum(axis=1, keepdims=True)

    def residual_sums(self, features: np.ndarray) -> np.ndarray:
        """(N, D) raw local features -> unnormalised VLAD (K, D) summed over the N locations."""
        x = l2_normalize(features.astype(np.float32, copy=False), axis=1)
        a = self.soft_assign(x)
        return a.T @ x - a.sum(axis=0)[:, None] * self.centroids

    def normalize_vlad(self, vlad: np.ndarray) -> np.ndarray:
        """(B, K, D) residual sums -> (B, K*D) intra-normalised, L2-normalised VLAD."""
        v = l2_normalize(vlad, axis=2).reshape(vlad.shape[0], -1)
        return l2_normalize(v, axis=1)

    def whiten(self, vlad: np.ndarray) -> np.ndarray:
        """(B, K*D) VLAD -> (B, P) whitened, L2-normalised descriptors."""
        if self.pca_weight is None:
            return vlad
        y = vlad @ self.pca_weight.T
        if self.pca_bias is not None:
            y = y + self.pca_bias
        return l2_normalize(y, axis=1)

    def global_from_whitened(self, whitened: np.ndarray) -> np.ndarray:
        """(B, P) whitened descriptors -> (B, descriptor_dim) re-normalised global descriptors."""
        return l2_normalize(whitened[:, : self.descriptor_dim], axis=1)

    def describe(self, feature_map: np.ndarray) -> np.ndarray:
        """(D, H, W) feature map -> (P,) whitened descriptor of the whole map (reference path)."""
        d = feature_map.shape[0]
        vlad = self.residual_sums(feature_map.reshape(d, -1).T)[None]
        return self.whiten(self.normalize_vlad(vlad))[0]
