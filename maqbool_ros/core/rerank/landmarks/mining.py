"""ConvNet-landmark region mining (Chen et al. 2017, docs/method-reference.md, L3.2-L3.4 and L7B).

Regions are 8-connected clusters of non-zero activations inside one channel of the
guidance maps A (C, H, W). All channels are labelled in ONE ``scipy.ndimage.label`` call
over the whole volume with a structure that connects pixels only within a channel, so
there is no Python loop over channels or pixels. Energies come from ``np.bincount``,
rectangles from ``ndimage.find_objects`` (only for the selected clusters), and the region
vectors are one matrix multiply of a (m, H*W) weight matrix with the local descriptors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from maqbool_ros.core.config import default_of
from maqbool_ros.core.descriptor.netvlad_head import l2_normalize
from maqbool_ros.core.rerank.blas import single_thread_blas

#: 3x3x3 structure, true only in its middle plane: 8-connectivity within a channel,
#: never across channels.
CHANNEL_8_CONNECTIVITY = np.zeros((3, 3, 3), dtype=bool)
CHANNEL_8_CONNECTIVITY[1] = True

SUPPORTS = ("rect", "component")


@dataclass
class Regions:
    """Mined clusters, highest energy first.

    channels: (m,) guidance channel of each cluster.
    rects: (m, 4) int (row0, col0, row1, col1), inclusive, in map cells.
    energies: (m,) mean guidance activation over the cluster (eq. 2).
    labels: (C, H, W) int32, 0 outside the selected clusters, t+1 on cluster t.
    num_components: clusters found before the top-M selection.
    """

    channels: np.ndarray
    rects: np.ndarray
    energies: np.ndarray
    labels: np.ndarray
    num_components: int

    def __len__(self) -> int:
        return int(len(self.energies))


def _check_map(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"{name}: expected a (C, H, W) map, got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def mine_regions(guidance: np.ndarray, max_regions: int = default_of("landmarks.max_regions"), *,
                 keep_ties: bool = True) -> Regions:
    """Top-M clusters of a (C, H, W) non-negative guidance map (L3.2-L3.3).

    Each channel is binarised at its minimum (A_c > min A_c; for ReLU maps with zeros this
    is A_c > 0). Every cluster whose energy is >= the M-th largest is kept (ties can give
    slightly more than M, as in the authors' code) unless keep_ties is False; with fewer
    than M clusters all are kept.
    """
    a = _check_map("guidance", guidance)
    if max_regions < 1:
        raise ValueError(f"max_regions: must be >= 1, got {max_regions}")
    mask = a > a.min(axis=(1, 2), keepdims=True)
    labels, n = ndimage.label(mask, structure=CHANNEL_8_CONNECTIVITY)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:]
    sums = np.bincount(flat, weights=a.ravel(), minlength=n + 1)[1:]
    energy = sums / np.maximum(counts, 1)
    if n > max_regions:
        tau = np.partition(energy, n - max_regions)[n - max_regions]
        candidates = np.flatnonzero(energy >= tau)
    else:
        candidates = np.arange(n)
    # Highest energy first; equal energies keep label order (deterministic).
    chosen = candidates[np.argsort(-energy[candidates], kind="stable")]
    if not keep_ties:
        chosen = chosen[:max_regions]
    m = len(chosen)
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[chosen + 1] = np.arange(1, m + 1, dtype=np.int32)
    selected = remap[labels]
    rects = np.zeros((m, 4), dtype=np.int64)
    channels = np.zeros(m, dtype=np.int64)
    for t, sl in enumerate(ndimage.find_objects(selected, max_label=m)):  # m slices, not pixels
        channels[t] = sl[0].start
        rects[t] = (sl[1].start, sl[2].start, sl[1].stop - 1, sl[2].stop - 1)
    return Regions(channels, rects, energy[chosen].astype(np.float32), selected, int(n))


def pooling_weights(regions: Regions, guidance: np.ndarray, support: str = "rect") -> np.ndarray:
    """(m, H*W) pooling weights: guidance channel c_t over the support of region t (eq. 4).

    rect: the whole bounding rectangle (authors' code, the default); component: only the
    cluster's own pixels. Weights are not normalised: the pooled vector is L2-normalised
    afterwards, so a common scale has no effect.
    """
    if support not in SUPPORTS:
        raise ValueError(f"support: {support!r} is not one of {list(SUPPORTS)}")
    a = _check_map("guidance", guidance)
    _, h, w = a.shape
    m = len(regions)
    if support == "component":
        flat = regions.labels.ravel()
        hit = np.flatnonzero(flat)
        weights = np.zeros((m, h * w), dtype=np.float32)
        # Clusters are disjoint, so each (region, cell) pair is written at most once.
        weights[flat[hit] - 1, hit % (h * w)] = a.ravel()[hit]
        return weights
    r0, c0, r1, c1 = regions.rects.T
    rows, cols = np.arange(h), np.arange(w)
    in_rows = (rows >= r0[:, None]) & (rows <= r1[:, None])
    in_cols = (cols >= c0[:, None]) & (cols <= c1[:, None])
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return (a[regions.channels] * inside).reshape(m, h * w)


def pool_regions(regions: Regions, guidance: np.ndarray, features: np.ndarray,
                 support: str = "rect") -> np.ndarray:
    """(m, D2) unit region vectors P = normalize(W @ X) from (D2, H, W) local features."""
    x = _check_map("features", features)
    if x.shape[1:] != np.shape(guidance)[1:]:
        raise ValueError(f"features: spatial size {x.shape[1:]} differs from the guidance map's "
                         f"{np.shape(guidance)[1:]} (both must come from the same stride)")
    weights = pooling_weights(regions, guidance, support)
    with single_thread_blas():  # small GEMM beside the network worker (see matching.py)
        pooled = weights @ x.reshape(x.shape[0], -1).T
    return l2_normalize(pooled, axis=1).astype(np.float32)


def landmark_boxes(guidance: np.ndarray, stride: int, max_boxes: int = 50, *,
                   max_regions: int = default_of("landmarks.max_regions"), min_cells: int = 2, pad: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region boxes for MAQBOOL from a guidance map (L7B), highest energy first.

    Mines clusters, removes duplicate rectangles (many channels fire on the same blob;
    the highest-energy copy stays), drops boxes narrower or shorter than min_cells and
    keeps max_boxes. With pad, the list is padded to max_boxes with the whole map (energy 0),
    as MAQBOOL pads Edge Boxes.

    Returns boxes (n, 4) int (x, y, w, h) in map cells, 0-based (cells x..x+w-1,
    y..y+h-1), pixel areas (n,) = stride^2 * w * h, and energies (n,).
    """
    a = _check_map("guidance", guidance)
    _, h, w = a.shape
    regions = mine_regions(a, max_regions)
    r0, c0, r1, c1 = regions.rects.T
    xywh = np.stack([c0, r0, c1 - c0 + 1, r1 - r0 + 1], axis=1)
    big = (xywh[:, 2] >= min_cells) & (xywh[:, 3] >= min_cells)
    xywh, energy = xywh[big], regions.energies[big]
    # np.unique returns the first index of each distinct box; rows are energy-sorted.
    _, first = np.unique(xywh, axis=0, return_index=True)
    first = np.sort(first)[:max_boxes]
    boxes, energies = xywh[first], energy[first]
    if pad and len(boxes) < max_boxes:
        fill = max_boxes - len(boxes)
        boxes = np.vstack([boxes, np.tile([0, 0, w, h], (fill, 1))])
        energies = np.concatenate([energies, np.zeros(fill, dtype=np.float32)])
    areas = (stride * stride * boxes[:, 2] * boxes[:, 3]).astype(np.float64)
    return boxes.astype(np.int64), areas, energies.astype(np.float32)
