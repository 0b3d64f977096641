"""MAQBOOL regions: Edge Boxes proposals, the spec's filter/quantise/pad, region descriptors."""
from __future__ import annotations

import numpy as np
import pytest

from maqbool_ros.core.descriptor.netvlad_head import NetVLADHead
from maqbool_ros.core.rerank.regions.edge_boxes import (
    box_area_fractions,
    filter_quantise_pad,
    padding_box,
    propose_boxes,
    quantise,
    thin_edges,
)
from maqbool_ros.core.rerank.regions.region_descriptors import crop_ranges, region_descriptors, region_descriptors_naive


def random_head(rng, k=8, d=16, p=32, pca=True, bias=False) -> NetVLADHead:
    return NetVLADHead(
        centroids=rng.normal(size=(k, d)).astype(np.float32),
        assign_weight=(3 * rng.normal(size=(k, d))).astype(np.float32),
        assign_bias=rng.normal(size=k).astype(np.float32) if bias else None,
        pca_weight=rng.normal(size=(p, k * d)).astype(np.float32) if pca else None,
        pca_bias=rng.normal(size=p).astype(np.float32) if pca else None,
        descriptor_dim=min(p, 16))


def block_image(rng, h=240, w=320) -> np.ndarray:
    img = np.full((h, w, 3), 40, np.uint8)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
        img[y0:y0 + rng.integers(40, h - y0), x0:x0 + rng.integers(40, w - x0)] = rng.integers(60, 255, 3)
    return img


def test_quantise_rounds_half_up():
    assert quantise(np.array([7.9, 8.0, 23.99, 24.0, 0.0]), 16).tolist() == [0, 1, 1, 2, 0]


def test_filter_quantise_pad_follows_the_spec():
    w, h, s = 640, 480, 16
    boxes = np.array([[10, 20, 400, 300],    # 0.39 of the image: kept
                      [0, 0, 100, 100],      # small: dropped
                      [31, 47, 600, 440],    # kept
                      [5, 5, 448, 240]],     # exactly 0.35: dropped (strictly greater)
                     np.float64)
    cells = filter_quantise_pad(boxes, w, h, s, num_boxes=5)
    expected_first = [[quantise(11, s), quantise(21, s), quantise(400, s), quantise(300, s)],
                      [quantise(32, s), quantise(48, s), quantise(600, s), quantise(440, s)]]
    assert cells[:2].tolist() == expected_first
    assert cells.shape == (5, 4)
    assert (cells[2:] == padding_box(w, h, s)).all()
    assert padding_box(w, h, s).tolist() == [0, 0, 39, 29]
    assert box_area_fractions(cells[:1], w, h, s)[0] == pytest.approx(16 * 25 * 16 * 19 / (640 * 480))


def test_crop_ranges_match_spec_rule():
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 30, size=(200, 4))
    hh, ww = 20, 25
    for (qx, qy, qw, qh), (r0, r1, c0, c1) in zip(cells, crop_ranges(cells, hh, ww)):
        er0, er1 = max(qy, 1) - 1, min(qy + qh, hh)
        ec0, ec1 = max(qx, 1) - 1, min(qx + qw, ww)
        if er1 > er0 and ec1 > ec0 and er0 < hh and ec0 < ww:  # the spec's non-degenerate crops
            assert (r0, r1, c0, c1) == (er0, er1, ec0, ec1)
        assert 0 <= r0 < r1 <= hh and 0 <= c0 < c1 <= ww


@pytest.mark.parametrize("pca,bias", [(True, False), (False, True)])
def test_fast_region_descriptors_equal_naive(pca, bias):
    rng = np.random.default_rng(1)
    head = random_head(rng, pca=pca, bias=bias)
    fmap = rng.normal(size=(16, 15, 20)).astype(np.float32)
    cells = np.concatenate([rng.integers(0, 12, size=(40, 2)), rng.integers(1, 14, size=(40, 2))], axis=1)
    cells = np.concatenate([cells, cells[:5], np.tile([0, 0, 19, 14], (5, 1))])  # duplicates + pads
    fast = region_descriptors(fmap, cells, head)
    naive = region_descriptors_naive(fmap, cells, head)
    assert fast.shape == (50, head.output_dim) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, naive, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_whole_map_box_equals_global_describe():
    rng = np.random.default_rng(2)
    head = random_head(rng)
    fmap = rng.normal(size=(16, 6, 8)).astype(np.float32)
    whole = region_descriptors(fmap, np.array([[1, 1, 8, 6]]), head)[0]
    np.testing.assert_allclose(whole, head.describe(fmap), atol=1e-5)


def test_region_descriptors_reject_wrong_map():
    head = random_head(np.random.default_rng(3))
    with pytest.raises(ValueError, match="feature_map"):
        region_descriptors(np.zeros((5, 4, 4), np.float32), np.array([[1, 1, 2, 2]]), head)


def test_thin_edges_are_thin_and_oriented():
    img = block_image(np.random.default_rng(4))
    edges, orient = thin_edges(img)
    assert edges.shape == img.shape[:2] and edges.dtype == np.float32
    assert 0 < (edges > 0).mean() < 0.2 and edges.max() <= 1.0
    assert orient.min() >= 0 and orient.max() <= np.pi


def test_propose_boxes_on_synthetic_image():
    img = block_image(np.random.default_rng(5), 480, 640)
    boxes, scores = propose_boxes(img, proposal_max_side=320)
    assert len(boxes) > 0 and np.all(np.diff(scores) <= 0)
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= 640 + 2)
    with pytest.raises(ValueError, match="image_rgb"):
        propose_boxes(np.zeros((10, 10), np.uint8))


def test_proposals_on_real_image(corridor_dir):
    import cv2

    path = sorted((corridor_dir / "ref").iterdir())[0]
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (640, 480))
    boxes, _ = propose_boxes(img)
    cells = filter_quantise_pad(boxes, 640, 480, 16)
    assert cells.shape == (50, 4)
    assert (box_area_fractions(cells, 640, 480, 16) > 0.3).all()
    # a real image gives real (non-padding) boxes
    assert (cells != padding_box(640, 480, 16)).any(axis=1).sum() >= 5
