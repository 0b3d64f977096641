"""Region proposals for MAQBOOL: OpenCV Edge Boxes on a thin edge map we compute.

The structured-edge model the authors used is not obtainable here, so Edge Boxes gets
a thin edge map built from the image itself: Canny (thin, non-maximum suppressed) gated
Sobel magnitude, with the gradient direction (mod pi) as edge orientation.

Speed (see docs/maqbool.md): Edge Boxes' cost grows with edge density, image size and
the number of box sizes it scans. MAQBOOL keeps only boxes covering more than 35 % of
the image and quantises them to feature-map cells (16 px), so we (1) run on a
downscaled image (``proposal_max_side``, a few pixels per cell is still sub-cell) and
(2) set Edge Boxes' ``minBoxArea`` just under that 35 % bound, which removes the scan of
every box size the filter would discard anyway.

:func:`filter_quantise_pad` is step M4.2 of docs/method-reference.md, kept separate so any region source
(pixels boxes) can be turned into map cells the same way.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

#: M4.2 (docs/method-reference.md): boxes must cover more than this fraction of the image.
MIN_AREA_FRACTION = 0.35
#: M8: query boxes per image (+ the whole image as row 0).
NUM_BOXES = 50


def thin_edges(image_rgb: np.ndarray, low: float = 50.0, high: float = 150.0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> (edges, orientation), float32 HxW each.

    edges: Sobel gradient magnitude (scaled to [0, 1]) kept only on Canny's thin edge
    pixels; orientation: gradient direction mod pi, as cv2.ximgproc Edge Boxes expects.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"image_rgb: expected HxWx3 uint8, got {image_rgb.shape} {image_rgb.dtype}")
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    gray = cv2.GaussianBlur(gray, (3, 3), 0)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    thin = cv2.Canny(gray, low, high, L2gradient=True) > 0
    peak = float(mag.max())
    edges = np.where(thin, mag / peak if peak > 0 else mag, 0.0).astype(np.float32)
    orientation = np.mod(np.arctan2(gy, gx), np.pi).astype(np.float32)
    return edges, orientation


def propose_boxes(image_rgb: np.ndarray, proposal_max_side: int = 320, alpha: float = 0.65,
                  beta: float = 0.75, max_boxes: int = 10000,
                  min_area_fraction: float | None = MIN_AREA_FRACTION,
                  edge_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Edge Boxes on image_rgb -> (boxes, scores), best first.

    boxes: (M, 4) float32 (x, y, w, h) in pixels of image_rgb, 0-based as OpenCV returns
    them. proposal_max_side: the longer side of the image Edge Boxes runs on (0: full
    size). min_area_fraction: boxes smaller than this fraction of the image are not
    searched (None: Edge Boxes' default minBoxArea of 1000 px at full scale).
    edge_fn: image -> (edges, orientation) on the proposal image (default :func:`thin_edges`;
    regions.hed.hed_edges for learned edges). Other settings are Edge Boxes' defaults (M4.1).
    """
    h, w = image_rgb.shape[:2]
    scale = 1.0
    small = image_rgb
    if proposal_max_side and max(h, w) > proposal_max_side:
        scale = proposal_max_side / max(h, w)
        small = cv2.resize(image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    min_box_area = 1000.0 * scale * scale
    if min_area_fraction is not None:
        # 0.9 margin: the exact area test happens later in full-size pixels.
        min_box_area = max(min_box_area, 0.9 * min_area_fraction * sw * sh)
    edges, orientation = (edge_fn or thin_edges)(small)
    eb = cv2.ximgproc.createEdgeBoxes(alpha=alpha, beta=beta, maxBoxes=max_boxes,
                                      minBoxArea=float(min_box_area))
    boxes, scores = eb.getBoundingBoxes(edges, orientation)
    if boxes is None or len(boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / scale
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order]


def quantise(v: np.ndarray | float, stride: int) -> np.ndarray:
    """M4.2: q(v) = floor(v / stride + 0.5)."""
    return np.floor(np.asarray(v, np.float64) / stride + 0.5).astype(np.int64)


def padding_box(image_w: int, image_h: int, stride: int) -> np.ndarray:
    """The near-full box (0, 0, W/s - 1, H/s - 1) in map cells, rounded like q()."""
    return np.array([0, 0, quantise(image_w / stride - 1, 1), quantise(image_h / stride - 1, 1)], np.int64)


def filter_quantise_pad(boxes_px: np.ndarray, image_w: int, image_h: int, stride: int,
                        num_boxes: int = NUM_BOXES,
                        min_area_fraction: float = MIN_AREA_FRACTION) -> np.ndarray:
    """M4.2: score-ordered 0-based (x, y, w, h) pixel boxes -> (num_boxes, 4) int64 cells.

    Keeps boxes with w*h/(W*H) > min_area_fraction in order, converts to 1-based x, y
    (MATLAB convention the crop rule expects), quantises every value with q(), pads
    with the near-full box and keeps the first num_boxes.
    """
    boxes_px = np.asarray(boxes_px, np.float64).reshape(-1, 4)
    if image_w <= 0 or image_h <= 0 or stride <= 0:
        raise ValueError(f"filter_quantise_pad: bad image size {image_w}x{image_h} or stride {stride}")
    keep = boxes_px[:, 2] * boxes_px[:, 3] / float(image_w * image_h) > min_area_fraction
    kept = boxes_px[keep][:num_boxes].copy()
    kept[:, :2] += 1.0  # OpenCV is 0-based, the authors' boxes are 1-based
    cells = quantise(kept, stride).reshape(-1, 4)
    pad = np.repeat(padding_box(image_w, image_h, stride)[None], num_boxes - len(cells), axis=0)
    return np.concatenate([cells, pad.reshape(-1, 4)], axis=0)


def region_pool(boxes_px: np.ndarray, image_w: int, image_h: int, stride: int,
                num_boxes: int = NUM_BOXES, min_area_fraction: float = MIN_AREA_FRACTION
                ) -> tuple[np.ndarray, int]:
    """The region pool rule (issue #15; config region_min_area below 0.35): score-ordered 0-based
    pixel boxes -> ((num_boxes, 4) int64 1-based cells, number of real boxes).

    First the spec's boxes (area fraction > 0.35) in score order, then the remaining boxes with
    area fraction > min_area_fraction in score order; a box whose quantised cells equal an earlier
    one's is skipped (so every real row is a distinct region), and zero-size cells are dropped.
    The rest is padded with the near-full box, as M4.2 pads. With min_area_fraction >= 0.35 the
    first stage alone runs, i.e. M4.2 with duplicates removed.
    """
    boxes_px = np.asarray(boxes_px, np.float64).reshape(-1, 4)
    if image_w <= 0 or image_h <= 0 or stride <= 0:
        raise ValueError(f"region_pool: bad image size {image_w}x{image_h} or stride {stride}")
    frac = boxes_px[:, 2] * boxes_px[:, 3] / float(image_w * image_h)
    big = frac > MIN_AREA_FRACTION
    small = ~big & (frac > min_area_fraction)
    ordered = np.concatenate([boxes_px[big], boxes_px[small]])
    ordered[:, :2] += 1.0  # 1-based, as filter_quantise_pad
    cells = quantise(ordered, stride).reshape(-1, 4)
    cells = cells[(cells[:, 2] > 0) & (cells[:, 3] > 0)]
    _, first = np.unique(cells, axis=0, return_index=True)
    cells = cells[np.sort(first)][:num_boxes]
    real = len(cells)
    pad = np.repeat(padding_box(image_w, image_h, stride)[None], num_boxes - real, axis=0)
    return np.concatenate([cells, pad.reshape(-1, 4)], axis=0), real


def box_area_fractions(cells: np.ndarray, image_w: int, image_h: int, stride: int) -> np.ndarray:
    """M4.5: a = (s*qw)(s*qh)/(W*H) per box (float32)."""
    cells = np.asarray(cells, np.float64).reshape(-1, 4)
    return ((stride * cells[:, 2]) * (stride * cells[:, 3]) / float(image_w * image_h)).astype(np.float32)
