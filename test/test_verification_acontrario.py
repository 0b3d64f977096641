"""The a-contrario inlier count (core/verification/acontrario.py) and the decision that uses it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from maqbool_ros.core.verification import acontrario, pnp
from maqbool_ros.core.verification import geometry as geo


def brute_force(residuals, size, model, thr):
    """NFA(k) with exact binomials, every k in turn: (k, log10 NFA) of the smallest."""
    s, n_out, kind = acontrario.MODELS[model]
    r = sorted(residuals)
    n, (w, h) = len(r), size
    best = (0, math.inf)
    for k in range(s + 1, n + 1):
        eps = r[k - 1]
        if eps > thr:
            break
        alpha = min(1.0, 2 * eps * math.hypot(w, h) / (w * h) if kind == "line" else math.pi * eps ** 2 / (w * h))
        nfa = n_out * (n - s) * math.comb(n, k) * math.comb(k, s) * alpha ** (k - s)
        lg = math.log10(nfa)
        if lg < best[1]:
            best = (k, lg)
    return best


@pytest.mark.parametrize("model", sorted(acontrario.MODELS))
def test_meaningful_count_equals_brute_force(model):
    rng = np.random.default_rng(7)
    for trial in range(20):
        n = int(rng.integers(10, 80))
        res = np.concatenate([np.abs(rng.normal(0, rng.uniform(0.2, 1.0), int(n * rng.uniform(0.3, 0.9)))),
                              rng.uniform(0, 40, n)])[:n]
        size = (int(rng.integers(64, 1300)), int(rng.integers(48, 1000)))
        got = acontrario.meaningful_inliers(res, size, model, 2.0)
        k, lg = brute_force(res, size, model, 2.0)
        assert got.num_inliers == k, (trial, model)
        if k:
            assert got.log10_nfa == pytest.approx(lg, abs=1e-9)
            assert got.threshold_px == pytest.approx(sorted(res)[k - 1]) and got.threshold_px <= 2.0


def test_chance_fits_are_left_out_on_a_small_image_and_kept_on_a_large_one():
    """20 tight inliers and 4 at the edge of a 2 px threshold: on a 160x120 image a random point
    lands that close to an epipolar line often enough that the 4 are not worth counting; on a
    640x480 image they are."""
    res = np.concatenate([np.linspace(0.02, 0.4, 20), [1.7, 1.8, 1.9, 1.95], np.linspace(5, 60, 6)])
    small = acontrario.meaningful_inliers(res, (160, 120), "fundamental", 2.0)
    large = acontrario.meaningful_inliers(res, (640, 480), "fundamental", 2.0)
    assert small.num_inliers == 20 and small.log10_nfa < 0
    assert large.num_inliers == 24 and large.log10_nfa < small.log10_nfa


def test_a_loose_consensus_among_few_matches_is_not_meaningful():
    """12 of 25 matches within 2 px, spread evenly over [0, 2] px, on a 160x120 image: what a
    7-dof model can reach on unrelated matches; not more than chance."""
    res = np.concatenate([np.linspace(0.15, 2.0, 12), np.linspace(5, 60, 13)])
    got = acontrario.meaningful_inliers(res, (160, 120), "fundamental", 2.0)
    assert got.log10_nfa > 0


def test_a_cap_reports_the_nfa_of_the_capped_count():
    res = np.concatenate([np.linspace(0.02, 0.4, 20), [1.7, 1.8, 1.9, 1.95], np.linspace(5, 60, 6)])
    capped = acontrario.meaningful_inliers(res, (640, 480), "fundamental", 2.0, max_inliers=22)
    k, lg = brute_force(np.sort(res)[:22].tolist() + [np.inf] * 8, (640, 480), "fundamental", 2.0)
    assert capped.num_inliers == k <= 22 and capped.log10_nfa == pytest.approx(lg, abs=1e-9)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="model"):
        acontrario.meaningful_inliers(np.ones(10), (64, 48), "homography", 2.0)
    with pytest.raises(ValueError, match="NaN"):
        acontrario.meaningful_inliers(np.array([0.1, np.nan]), (64, 48), "pnp", 2.0)
    assert acontrario.meaningful_inliers(np.full(5, 0.1), (64, 48), "fundamental", 2.0).num_inliers == 0


def test_distances_match_their_definitions():
    rng = np.random.default_rng(3)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    X = rng.uniform([-2, -2, 4], [2, 2, 8], (30, 3))
    R, _ = np.linalg.qr(np.eye(3) + 0.05 * rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    t = np.array([0.3, -0.1, 0.05])
    uv_b = (X @ K.T)[:, :2] / X[:, 2:]
    Xa = X @ R.T + t
    uv_a = (Xa @ K.T)[:, :2] / Xa[:, 2:]
    assert np.allclose(pnp.reprojection_errors(R, t, X, uv_a, K), 0, atol=1e-9)
    Kinv = np.linalg.inv(K)
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = Kinv.T @ tx @ R @ Kinv
    assert np.allclose(geo.sampson_distance(F, uv_b, uv_a), 0, atol=1e-6)
    off = uv_a + rng.normal(0, 1.0, uv_a.shape)
    assert np.allclose(geo.sampson_distance(F, uv_b, off), np.abs(geo.sampson_residuals(R, t, uv_b, off, K)))
    shifted = uv_a + np.array([0.0, 1.0])  # off the epipolar line by at most 1 px in one image
    d = geo.sampson_distance(F, uv_b, shifted)
    assert np.all(d > 0) and np.all(d <= 1.0 + 1e-6)
    assert pnp.reprojection_errors(R, t, -X, uv_a, K)[0] == np.inf  # behind the camera


def test_corridor_chance_inliers_no_longer_verify_a_neighbour_outside_the_ground_truth(corridor_dir):
    """corridor query 61 -> ref 64 (one frame outside its ground-truth window 59-63) reached ORB's
    20 inliers with chance fits of the uncalibrated fundamental matrix (docs/verification.md); its
    meaningful count is below 20. A clear revisit (query 9 -> ref 10) keeps its verification."""
    from maqbool_ros.core.data.datasets import load_query_ref_folder
    from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, verify

    corridor = load_query_ref_folder(corridor_dir)
    p = VerificationParams()
    ext = LocalFeatureExtractor(p)
    wrong = verify(ext.extract(corridor.queries[61]), ext.extract(corridor.refs[64]), None, params=p)
    assert 64 not in set(corridor.positives[61].tolist())
    assert wrong.num_inliers >= p.min_inliers  # what RANSAC counted
    assert wrong.meaningful_inliers < p.min_inliers and not wrong.verified
    right = verify(ext.extract(corridor.queries[9]), ext.extract(corridor.refs[10]), None, params=p)
    assert 10 in set(corridor.positives[9].tolist())
    assert right.verified and right.log10_nfa < 0 and right.meaningful_inliers <= right.num_inliers
