"""Local features, their fixed-shape database extras, camera validation, the parameters and
temporal consistency (checked against brute force)."""
from __future__ import annotations

import dataclasses
import itertools
import types

import numpy as np
import pytest

from maqbool_ros.core.database import KeyframeDatabase
from maqbool_ros.core.verification import (
    Camera,
    LocalFeatureExtractor,
    LocalFeatures,
    TemporalConsistency,
    VerificationParams,
    bytes_per_keyframe,
    depth_to_metres,
    match_features,
    sample_depth,
    verify,
    verify_candidates,
)
from maqbool_ros.core.verification.features import orb_level_centres


def textured(seed: int, h: int = 480, w: int = 640) -> np.ndarray:
    """A random blocky texture (plenty of corners) as RGB uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8), dtype=np.uint8)
    grey = np.kron(small, np.ones((8, 8), np.uint8))
    return np.repeat(grey[:, :, None], 3, axis=2)


@pytest.mark.parametrize("kind", ["orb", "sift"])
def test_extraction_is_capped_and_in_full_size_pixels(kind):
    params = VerificationParams(features=kind, max_features=300, max_image_side=320)
    f = LocalFeatureExtractor(params).extract(textured(0))
    assert 200 <= len(f) <= 300 and f.kind == kind and f.image_size == (640, 480)
    assert f.keypoints.dtype == np.float32 and f.descriptors.dtype == np.uint8
    assert f.descriptors.shape[1] == (32 if kind == "orb" else 128)
    # extraction ran at half size, keypoints are in full-size pixels: they spread over the full image
    assert f.keypoints[:, 0].max() > 500 and f.keypoints[:, 1].max() > 380


@pytest.mark.parametrize("kind", ["orb", "sift"])
def test_shifted_image_matches_with_the_shift(kind):
    img = textured(1)
    shifted = np.zeros_like(img)
    shifted[:, 24:] = img[:, :-24]  # the scene moved 24 px to the right
    ex = LocalFeatureExtractor(VerificationParams(features=kind, max_image_side=0))
    a, b = ex.extract(img), ex.extract(shifted)
    pairs = match_features(a, b)
    assert len(pairs) > 100
    d = b.keypoints[pairs[:, 1]] - a.keypoints[pairs[:, 0]]
    assert np.mean(np.linalg.norm(d - [24, 0], axis=1) < 1.5) > 0.9


def test_extras_round_trip_and_fit_the_keyframe_database(tmp_path):
    ex = LocalFeatureExtractor(VerificationParams(max_features=500))
    depth = np.full((480, 640), 2500, np.uint16)
    depth[:, :100] = 0
    f = ex.extract(textured(2), depth=depth)
    extras = f.to_extras(500)
    assert sum(a.nbytes for a in extras.values()) == bytes_per_keyframe("orb", 500) == 500 * 44 + 12
    db = KeyframeDatabase(4)
    db.add(0, "r", stamp=0.0, descriptor=np.array([1.0, 0, 0, 0], np.float32), extras=extras)
    none = LocalFeatureExtractor(VerificationParams(max_features=500)).extract(textured(3))
    db.add(1, "r", stamp=1.0, descriptor=np.array([0, 1.0, 0, 0], np.float32), extras=none.to_extras(500))
    db.save(tmp_path / "db")
    back = KeyframeDatabase.load(tmp_path / "db")
    rows = back.get_extras(np.array([0, 1]))
    g = LocalFeatures.from_extras({k: v[0] for k, v in rows.items()}, "orb")
    np.testing.assert_array_equal(g.keypoints, f.keypoints)
    np.testing.assert_array_equal(g.descriptors, f.descriptors)
    assert g.image_size == (640, 480)
    valid = f.keypoints[:, 0] >= 100.5
    np.testing.assert_allclose(g.depths[valid], 2.5)
    assert np.all(g.depths[f.keypoints[:, 0] < 99] == 0)
    h = LocalFeatures.from_extras({k: v[1] for k, v in rows.items()}, "orb")
    assert h.depths is None and len(h) == len(none)
    with pytest.raises(ValueError, match="lf_desc is .* but sift descriptors"):
        LocalFeatures.from_extras({k: v[0] for k, v in rows.items()}, "sift")
    with pytest.raises(ValueError, match="extras lack lf_kp"):
        LocalFeatures.from_extras({"lf_desc": extras["lf_desc"]}, "orb")


def test_depth_formats_and_invalid_values():
    d16 = np.array([[0, 1500], [65535, 2000]], np.uint16)
    np.testing.assert_allclose(depth_to_metres(d16), [[0, 1.5], [65.535, 2.0]], rtol=1e-6)
    d32 = np.array([[np.nan, 1.5], [np.inf, -1.0]], np.float32)
    np.testing.assert_allclose(depth_to_metres(d32), [[0, 1.5], [0, 0]])
    z = sample_depth(d16, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), (2, 2), max_depth_m=10.0)
    np.testing.assert_allclose(z, [1.5, 0.0, 2.0])
    # a half-resolution depth image of a full-size colour image
    z = sample_depth(np.array([[1000, 2000]], np.uint16), np.array([[0.2, 0.4], [3.4, 1.0]]), (4, 2))
    np.testing.assert_allclose(z, [1.0, 2.0])
    with pytest.raises(ValueError, match="dtype"):
        depth_to_metres(np.zeros((2, 2), np.int32))


K9 = [500.0, 0, 320, 0, 500.0, 240, 0, 0, 1]


@pytest.mark.parametrize("fields, match", [
    (dict(k=[1.0, 2.0]), "K must be 9"),
    (dict(k=[0.0, 0, 320, 0, 500, 240, 0, 0, 1]), "focal"),
    (dict(k=[500.0, 0, 320, 0, 500, 240, 1, 0, 1]), "upper triangular"),
    (dict(k=[500.0, 0, np.nan, 0, 500, 240, 0, 0, 1]), "finite"),
    (dict(d=[0.1, 0.0, 0.0]), "D has 3 coefficients"),
    (dict(d=[0.1, np.nan, 0, 0, 0]), "D .*NaN"),
    (dict(distortion_model="kannala"), "distortion_model"),
    (dict(distortion_model="rational_polynomial", d=[0.1, 0, 0, 0, 0]), "D has 5"),
    (dict(width=0), "width/height"),
])
def test_camera_validation_names_the_field(fields, match):
    info = dict(k=K9, d=[0.0] * 5, width=640, height=480, distortion_model="plumb_bob")
    info.update(fields)
    with pytest.raises(ValueError, match=match):
        Camera.from_camera_info(types.SimpleNamespace(**info))


def test_camera_from_camera_info_and_size_check():
    cam = Camera.from_camera_info(types.SimpleNamespace(k=K9, d=[0.0] * 5, width=640, height=480,
                                                        distortion_model="plumb_bob"))
    assert not cam.has_distortion and cam.K[0, 2] == 320
    f = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), None, (320, 240), "orb")
    with pytest.raises(ValueError, match="query features is 320x240 but the camera"):
        verify(f, f, cam)


@pytest.mark.parametrize("field, value", [("features", "akaze"), ("min_inliers", 2), ("ratio", 1.5),
                                          ("temporal_k", 0), ("max_image_side", 10)])
def test_params_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        VerificationParams(**{field: value})


def test_params_from_config_read_the_verification_section():
    from maqbool_ros.core.config import MaqboolConfig

    cfg = MaqboolConfig(verification_min_inliers=30, verification_features="sift", verification_temporal_k=0)
    p = VerificationParams.from_config(cfg)
    assert p.min_inliers == 30 and p.features == "sift" and p.ratio == 0.8 and p.temporal_k == 1
    assert VerificationParams.from_section({"min_inliers": 30, "features": "sift", "enabled": True}) == p
    assert LocalFeatureExtractor.from_config(cfg).kind == "sift"


def test_params_take_their_defaults_from_the_schema():
    """No restated defaults: every field named like a verification parameter has its schema default."""
    from maqbool_ros.core.config import FIELD_OF, MaqboolConfig

    section = MaqboolConfig().section("verification")
    shared = [f.name for f in dataclasses.fields(VerificationParams) if f"verification.{f.name}" in FIELD_OF]
    assert len(shared) >= 14
    for name in shared:
        default = next(f.default for f in dataclasses.fields(VerificationParams) if f.name == name)
        assert default == max(1, section[name]) if name == "temporal_k" else default == section[name], name


def test_min_inliers_zero_means_the_feature_types_own_default():
    """One place (params.DEFAULT_MIN_INLIERS): orb/sift 20, aliked 60; the config default is 0."""
    from maqbool_ros.core.config import MaqboolConfig, check_value
    from maqbool_ros.core.verification.stage import params_from_config

    assert MaqboolConfig().verification_min_inliers == 0
    for kind, expected in (("orb", 20), ("sift", 20), ("aliked", 60)):
        assert VerificationParams(features=kind).min_inliers == expected
        assert VerificationParams.from_section({"min_inliers": 0, "features": kind}).min_inliers == expected
    assert params_from_config(MaqboolConfig()).min_inliers == 20
    assert VerificationParams(features="aliked", min_inliers=25).min_inliers == 25  # explicit wins
    check_value("verification_min_inliers", 0)
    with pytest.raises(ValueError, match="verification.min_inliers"):
        check_value("verification_min_inliers", 3)


def test_verify_candidates_respects_top_n_deadline_and_missing_features():
    f = LocalFeatureExtractor().extract(textured(4))
    res = verify_candidates(f, [f, None, f, f], None, VerificationParams(top_n=3))
    assert res[0].verified and res[1] is None and res[2].verified and res[3] is None
    assert verify_candidates(f, [f, f], None, deadline=0.0) == [None, None]


def brute_force_lengths(history, near):
    """Longest chain ending at each candidate of the last query, by enumerating all chains."""
    last = history[-1]
    out = {}
    for c in last:
        best = 1
        for L in range(2, len(history) + 1):
            steps = history[-L:]
            if any(not s for s in steps):
                break
            for chain in itertools.product(*steps[:-1]):
                full = (*chain, c)
                if all(near(a, b) for a, b in zip(full, full[1:])):
                    best = L
                    break
        out[c] = best
    return out


def test_temporal_consistency_matches_brute_force():
    rng = np.random.default_rng(0)
    near = lambda a, b: abs(a - b) <= 2  # noqa: E731
    for trial in range(30):
        k = int(rng.integers(1, 5))
        tc = TemporalConsistency(k=k, window=2)
        history = []
        for _ in range(12):
            cands = sorted(set(rng.integers(0, 15, int(rng.integers(0, 4))).tolist()))
            history.append(cands)
            accepted = tc.update(cands)
            expected = brute_force_lengths(history, near)
            assert tc.chain_lengths() == expected, (trial, history)
            assert accepted == {c: n >= k for c, n in expected.items()}


def test_temporal_consistency_k_live_robots_and_breaks():
    tc = TemporalConsistency(k=3, window=1)
    assert tc.update([10]) == {10: False}
    assert tc.update([11]) == {11: False}
    assert tc.update([12, 40]) == {12: True, 40: False}
    tc.set_k(4)
    assert tc.update([13]) == {13: True}        # chain 10-11-12-13 is 4 long
    assert tc.update([]) == {}                   # a query with nothing verified breaks the chain
    assert tc.update([14]) == {14: False}
    tc.set_k(1)
    assert tc.update([("r1", 5)]) == {("r1", 5): True}
    tc2 = TemporalConsistency(k=2, window=1)
    tc2.update([("r1", 5)])
    assert tc2.update([("r2", 5), ("r1", 6)]) == {("r2", 5): False, ("r1", 6): True}
    with pytest.raises(ValueError, match="k = 0"):
        tc.set_k(0)


def test_orb_level_keypoints_sit_at_their_level_pixel_centres():
    """ORB's level 1 is the image resized by 1/1.2; ORB run on that resized image finds the same
    corners at level 0. Mapped to the small image, the big image's level-1 keypoints must land on
    them: with the pixel-centre correction exactly, with OpenCV's raw `pt` 0.5 (s - 1) px off."""
    import cv2

    big = cv2.cvtColor(textured(5), cv2.COLOR_RGB2GRAY)
    h, w = big.shape
    small = cv2.resize(big, (round(w / 1.2), round(h / 1.2)), interpolation=cv2.INTER_LINEAR_EXACT)
    orb = cv2.ORB_create(nfeatures=5000, scaleFactor=1.2, nlevels=2, edgeThreshold=19, patchSize=19,
                         fastThreshold=20)
    kb = [k for k in orb.detect(big, None) if k.octave == 1]
    ks = np.array([k.pt for k in orb.detect(small, None) if k.octave == 0])
    raw = np.array([k.pt for k in kb])
    fixed = orb_level_centres(raw, np.ones(len(kb), np.int64), w, h)
    sx, sy = w / small.shape[1], h / small.shape[0]

    def offsets(pts):  # big-image pixels -> small-image pixels, then distance to the nearest small keypoint
        p = np.stack([(pts[:, 0] + 0.5) / sx - 0.5, (pts[:, 1] + 0.5) / sy - 0.5], axis=1)
        return np.linalg.norm(p[:, None] - ks[None], axis=2).min(axis=1)

    assert len(kb) > 100
    assert np.mean(offsets(fixed) < 1e-3) > 0.9
    assert np.median(offsets(raw)) > 0.1  # the bias the correction removes (about 0.12 px here)
    f = LocalFeatureExtractor(VerificationParams(max_features=500)).extract(textured(5))
    assert f.sigmas is not None  # 640 px: no downscale, so each sigma is 1.2 ** level
    assert np.all(np.min(np.abs(f.sigmas[:, None] - 1.2 ** np.arange(8)), axis=1) < 1e-4)


def test_keypoint_sigmas_round_trip_and_old_extras_lack_them():
    f = LocalFeatureExtractor(VerificationParams(max_features=300)).extract(textured(6))
    extras = f.to_extras(300)
    back = LocalFeatures.from_extras(extras, "orb")
    np.testing.assert_allclose(back.sigmas, f.sigmas, rtol=1e-3)  # float16
    old = {k: v for k, v in extras.items() if k != "lf_sigma"}  # a database from before the field
    assert LocalFeatures.from_extras(old, "orb").sigmas is None
    np.testing.assert_array_equal(LocalFeatures.from_extras(old, "orb").keypoint_sigmas(np.arange(3)), 1.0)
