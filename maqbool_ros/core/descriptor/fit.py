"""Unsupervised adaptation of a NetVLAD model to a set of images, as NetVLAD initialises:
k-means centroids of the backbone's (L2-normalised) local features, soft-assignment
sharpness alpha from the data, then whitening PCA learned on VLAD descriptors.

Few images give few descriptors, so PCA also learns from VLADs of random sub-windows of
each feature map (the same kind of descriptor MAQBOOL's regions are): enough of them to
make the P-dim PCA full rank where the images allow. Eigenvalues get a small relative
regulariser; directions without data (rank < P) get zero rows (documented in the docs).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from maqbool_ros.core.descriptor.netvlad_head import NetVLADHead, l2_normalize
from maqbool_ros.core.images.io import as_rgb_uint8, read_image, resize_for_network

ImageSource = Path | str | np.ndarray | Callable[[], np.ndarray]


def _load(src: ImageSource) -> np.ndarray:
    if isinstance(src, (str, Path)):
        return read_image(src)
    if callable(src):
        return as_rgb_uint8(src())
    return as_rgb_uint8(src)


def extract_feature_maps(model, images: Sequence[ImageSource], image_size: tuple[int, int] = (640, 480),
                         resize_policy: str = "keep_aspect", progress: bool = True) -> list[np.ndarray]:
    """Run the backbone on each image; returns (D, H', W') float32 feature maps.

    The backbone runs in onnxruntime (exported on the fly): faster than eager torch on CPU
    and without busy-waiting threads on a shared machine."""
    from tqdm import tqdm

    from maqbool_ros.core.descriptor.export import cpu_session, export_onnx_bytes

    session = cpu_session(export_onnx_bytes(model))
    maps = []
    for src in tqdm(images, desc="backbone features", unit="img", disable=not progress):
        img = resize_for_network(_load(src), image_size, resize_policy)
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        maps.append(session.run(["feature_map"], {"image": x})[0][0])
    return maps


def kmeans_netvlad_init(maps: list[np.ndarray], num_clusters: int, seed: int,
                        per_image: int = 100, max_total: int = 50000) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (K, D), assign_weight (K, D)) from k-means on preL2 local features.

    assign_weight = alpha * normalised centroids, with alpha chosen so the best cluster
    gets ~100x the runner-up's weight on average (NetVLAD's initialisation, no bias).
    """
    import faiss

    rng = np.random.default_rng(seed)
    per_image = max(per_image, math.ceil(min(max_total, 40 * num_clusters) / max(len(maps), 1)))
    samples = []
    for fmap in maps:
        x = fmap.reshape(fmap.shape[0], -1).T
        take = rng.choice(len(x), size=min(per_image, len(x)), replace=False)
        samples.append(x[take])
    feats = l2_normalize(np.concatenate(samples).astype(np.float32), axis=1)
    if len(feats) > max_total:
        feats = feats[rng.choice(len(feats), size=max_total, replace=False)]
    if len(feats) < num_clusters:
        raise ValueError(f"clusters: {num_clusters} clusters need at least as many local features, got {len(feats)}")
    faiss.omp_set_num_threads(2)
    km = faiss.Kmeans(feats.shape[1], num_clusters, niter=50, seed=int(seed), verbose=False,
                      max_points_per_centroid=100000)
    km.train(np.ascontiguousarray(feats))
    centroids = km.centroids.astype(np.float32)
    c_norm = l2_normalize(centroids, axis=1)
    dots = np.sort(feats @ c_norm.T, axis=1)[:, ::-1]
    gap = float(np.mean(dots[:, 0] - dots[:, 1]))
    alpha = -math.log(0.01) / max(gap, 1e-6)
    return centroids, (alpha * c_norm).astype(np.float32)


def vlad_training_set(head: NetVLADHead, maps: list[np.ndarray], target: int, seed: int,
                      min_side: float = 0.4) -> np.ndarray:
    """(N, K*D) normalised VLADs: each whole map plus random sub-windows, N >= target where possible."""
    rng = np.random.default_rng(seed)
    per_map = max(0, math.ceil(target / max(len(maps), 1)) - 1)
    out = []
    for fmap in maps:
        d, h, w = fmap.shape
        x = l2_normalize(fmap.reshape(d, -1).T.astype(np.float32), axis=1)
        a = head.soft_assign(x).reshape(h, w, -1)
        x = x.reshape(h, w, d)
        windows = [(0, 0, h, w)]
        for _ in range(per_map):
            wh = int(rng.integers(max(1, round(min_side * h)), h + 1))
            ww = int(rng.integers(max(1, round(min_side * w)), w + 1))
            y0, x0 = int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))
            windows.append((y0, x0, wh, ww))
        vl = np.empty((len(windows), head.num_clusters, d), np.float32)
        for i, (y0, x0, wh, ww) in enumerate(windows):
            aw = a[y0:y0 + wh, x0:x0 + ww].reshape(-1, a.shape[2])
            xw = x[y0:y0 + wh, x0:x0 + ww].reshape(-1, d)
            vl[i] = aw.T @ xw - aw.sum(0)[:, None] * head.centroids
        out.append(head.normalize_vlad(vl))
    return np.concatenate(out)


def pca_whitening(x: np.ndarray, dim: int, reg: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Whitening PCA of rows of x: (weight (dim, F), bias (dim,), rank used).

    reg damps the whitening: reg=0 is full whitening, large reg tends to a plain PCA
    projection. Few training images make full whitening amplify noise (measured on
    corridor: R@1 0.59 at reg 1e-3, 0.83 at reg 1), hence the default of 1.

    y = weight @ v + bias = diag(1/sqrt(lam + reg*mean(lam))) U^T (v - mean). Computed from
    the smaller of the Gram and covariance matrices; directions with (numerically) no
    variance get zero rows rather than amplified noise.
    """
    n, f = x.shape
    if dim > f:
        raise ValueError(f"dim: {dim} whitened dims exceed the VLAD dimension {f}")
    mean = x.mean(0, dtype=np.float64)
    # float32 halves the cost of the (n x n) or (f x f) product and eigensolver, the
    # dominant step for P=4096; the regulariser dwarfs float32 error in small eigenvalues
    xc = (x - mean).astype(np.float32)
    if n <= f:
        lam, v = np.linalg.eigh(xc @ xc.T)
        lam, v = lam[::-1], v[:, ::-1]
        keep = lam > lam[0] * 1e-5  # float32 round-off level
        lam, v = lam[keep], v[:, keep]
        u = (xc.T @ v) / np.sqrt(lam)  # (F, r) orthonormal principal directions
        u = u / np.linalg.norm(u, axis=0)  # re-orthonormalise away float32 drift
    else:
        lam, u = np.linalg.eigh(xc.T @ xc)
        lam, u = lam[::-1], u[:, ::-1]
        keep = lam > lam[0] * 1e-5  # float32 round-off level
        lam, u = lam[keep], u[:, keep]
    lam = lam.astype(np.float64) / max(n - 1, 1)
    r = min(dim, len(lam))
    scale = 1.0 / np.sqrt(lam[:r] + reg * lam[:r].mean())
    weight = np.zeros((dim, f), np.float64)
    weight[:r] = (u[:, :r] * scale).T
    bias = -weight @ mean
    return weight.astype(np.float32), bias.astype(np.float32), r


def fit_model(images: Sequence[ImageSource], backbone: str = "mobilenetv2", pca_dim: int = 512,
              num_clusters: int = 64, seed: int = 0, image_size: tuple[int, int] = (640, 480),
              resize_policy: str = "keep_aspect", descriptor_dim: int | None = None,
              model=None, progress: bool = True, pca_reg: float = 1.0):
    """A :class:`NetVLADModel` adapted to ``images`` (paths, arrays or loaders).

    pca_reg: whitening regulariser relative to the mean eigenvalue (see pca_whitening).

    ``model``: start from this model's backbone (e.g. a checkpoint's VGG16) instead of
    the shipped ImageNet weights of ``backbone``. Deterministic for a given seed.
    """
    import torch

    from maqbool_ros.core.descriptor.models.checkpoints import load_imagenet_backbone
    from maqbool_ros.core.descriptor.models.netvlad import NetVLADModel

    if len(images) == 0:
        raise ValueError("images: no images to fit on")
    torch.manual_seed(seed)
    new = NetVLADModel(model.backbone.name if model is not None else backbone, num_clusters, pca_dim, descriptor_dim)
    if model is not None:
        new.backbone.load_state_dict(model.backbone.state_dict())
    else:
        load_imagenet_backbone(new, backbone)
    maps = extract_feature_maps(new, images, image_size, resize_policy, progress)
    head, info = fit_head(maps, pca_dim, num_clusters, seed, descriptor_dim, pca_reg)
    new.set_head(head.centroids, head.assign_weight, None, head.pca_weight, head.pca_bias)
    new.fit_info = info
    return new.eval()


def fit_head(maps: list[np.ndarray], pca_dim: int, num_clusters: int = 64, seed: int = 0,
             descriptor_dim: int | None = None, pca_reg: float = 1.0) -> tuple[NetVLADHead, dict]:
    """NetVLAD centroids + WPCA from precomputed (D, H', W') feature maps: (head, info)."""
    centroids, assign = kmeans_netvlad_init(maps, num_clusters, seed)
    head = NetVLADHead(centroids, assign, None, None, None, num_clusters * centroids.shape[1])
    vlads = vlad_training_set(head, maps, target=int(1.25 * pca_dim), seed=seed)
    weight, bias, rank = pca_whitening(vlads, pca_dim, pca_reg)
    head = NetVLADHead(centroids, assign, None, weight, bias, int(descriptor_dim or pca_dim))
    return head, {"num_images": len(maps), "num_pca_samples": len(vlads), "pca_rank": rank}
