"""Region NetVLAD descriptors from one feature map (docs/method-reference.md, M4.3-M4.4).

A region descriptor is the NetVLAD head (preL2 -> soft assignment -> residuals ->
intra-norm -> L2 -> WPCA -> L2) applied to a crop of the feature map. preL2 and the
soft assignment act per location, so they are computed once for the whole map; each
box then only needs its residual sums. We batch all boxes in one GEMM:
V[b] = (mask_b * a)^T x - (mask_b . a) c, where a (N, K) is the soft assignment and x
(N, D) the normalised features. Measured faster than integral images at <= 50 boxes
(docs/maqbool.md, benchmarks/rerank.py). Identical boxes (frequent after quantising to
cells, and every padding box) are computed once.
"""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.descriptor.netvlad_head import NetVLADHead, l2_normalize


def crop_ranges(cells: np.ndarray, map_h: int, map_w: int) -> np.ndarray:
    """(n, 4) (qx, qy, qw, qh) cells -> (n, 4) int64 (r0, r1, c0, c1) half-open ranges.

    M4.3 in 0-based Python: rows max(qy,1)-1 : min(qy+qh, H'), cols likewise.
    Ranges are clamped to at least one cell inside the map, so degenerate boxes from
    other region sources still get a descriptor.
    """
    cells = np.asarray(cells, np.int64).reshape(-1, 4)
    qx, qy, qw, qh = cells.T
    r0 = np.clip(np.maximum(qy, 1) - 1, 0, map_h - 1)
    c0 = np.clip(np.maximum(qx, 1) - 1, 0, map_w - 1)
    r1 = np.maximum(np.minimum(qy + qh, map_h), r0 + 1)
    c1 = np.maximum(np.minimum(qx + qw, map_w), c0 + 1)
    return np.stack([r0, r1, c0, c1], axis=1)


def _check(feature_map: np.ndarray, head: NetVLADHead) -> None:
    if feature_map.ndim != 3 or feature_map.shape[0] != head.feature_dim:
        raise ValueError(f"feature_map: expected (D={head.feature_dim}, H', W'), got {feature_map.shape}")


def region_descriptors_naive(feature_map: np.ndarray, cells: np.ndarray, head: NetVLADHead) -> np.ndarray:
    """Reference: crop the map per box and run the whole head on the crop -> (n, P) float32."""
    _check(feature_map, head)
    _, h, w = feature_map.shape
    out = []
    for r0, r1, c0, c1 in crop_ranges(cells, h, w):
        out.append(head.describe(np.ascontiguousarray(feature_map[:, r0:r1, c0:c1])))
    return np.asarray(out, np.float32).reshape(len(out), head.output_dim)


def region_descriptors(feature_map: np.ndarray, cells: np.ndarray, head: NetVLADHead) -> np.ndarray:
    """Fast path, equal to :func:`region_descriptors_naive` -> (n, P) float32."""
    _check(feature_map, head)
    d, h, w = feature_map.shape
    ranges = crop_ranges(cells, h, w)
    if len(ranges) == 0:
        return np.zeros((0, head.output_dim), np.float32)
    unique, inverse = np.unique(ranges, axis=0, return_inverse=True)
    x = l2_normalize(feature_map.reshape(d, -1).T.astype(np.float32), axis=1)  # (N, D) preL2
    a = head.soft_assign(x).astype(np.float32)  # (N, K)
    a_t = np.ascontiguousarray(a.T)  # (K, N): contiguous rows make the broadcast below ~3x faster
    masks = np.zeros((len(unique), h, w), np.float32)
    for i, (r0, r1, c0, c1) in enumerate(unique):
        masks[i, r0:r1, c0:c1] = 1.0
    masks = masks.reshape(len(unique), -1)  # (u, N)
    k = head.num_clusters
    weighted = (masks[:, None, :] * a_t[None]).reshape(len(unique) * k, -1)  # (u*K, N)
    vlad = (weighted @ x).reshape(len(unique), k, d)
    vlad -= (masks @ a)[:, :, None] * head.centroids[None].astype(np.float32)
    desc = head.whiten(head.normalize_vlad(vlad)).astype(np.float32)
    return desc[np.asarray(inverse).reshape(-1)]
