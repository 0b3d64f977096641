"""The synthetic RGB-D room loop (data/rgbd_sequence.py): exact rendering, ground truth, and the
issue #13 acceptance figures for verified loops on it (default verification parameters)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from maqbool_ros.core.data import rgbd_sequence as rs
from maqbool_ros.core.evaluation.verified import TOLERANCES, pose_errors, pose_within_tolerance
from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, verify


@pytest.fixture(scope="module")
def seq():
    return rs.synthetic_rgbd_sequence()


@pytest.fixture(scope="module")
def features(seq):
    """ORB features of every frame with depth (metric), and the same without depth (monocular)."""
    ex = LocalFeatureExtractor(VerificationParams())
    rgbd = [ex.extract(seq.frames[i], depth=seq.depths[i]) for i in range(len(seq.frames))]
    return rgbd, [dataclasses.replace(f, depths=None) for f in rgbd]


def test_frames_depth_and_poses_are_deterministic_and_consistent(seq):
    again = rs.synthetic_rgbd_sequence()
    assert np.array_equal(seq.frames[40], again.frames[40])
    assert seq.frames[40].shape == (480, 480 * 4 // 3, 3) and seq.frames[40].dtype == np.uint8
    assert seq.depths[40].dtype == np.float32 and seq.depth_mm(40).dtype == np.uint16
    assert seq.camera.width == 640 and seq.camera.height == 480
    assert seq.poses.shape == (len(seq.frames), 4, 4)
    assert rs.synthetic_mono_sequence().depths is None
    # exactness: pixels of frame q back-projected with its depth land, in frame c, on pixels whose
    # own rendered depth is the same surface point (up to the pixel rounding)
    q = 45
    c = _best_positive(seq, rs.covisibility(seq.poses), q)
    K = seq.camera.K
    v, u = np.mgrid[10:470:20, 10:630:20]
    z = seq.depths[q][v, u]
    Xq = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z]).reshape(3, -1)
    T_cq = seq.relative_pose(c, q)
    Xc = T_cq[:3, :3] @ Xq + T_cq[:3, 3:4]
    uc, vc = K[0, 0] * Xc[0] / Xc[2] + K[0, 2], K[1, 1] * Xc[1] / Xc[2] + K[1, 2]
    inside = (uc >= 0) & (uc < 639.5) & (vc >= 0) & (vc < 479.5)
    assert inside.sum() > 300
    zc = seq.depths[c][np.rint(vc[inside]).astype(int), np.rint(uc[inside]).astype(int)]
    agree = np.abs(zc - Xc[2, inside]) < 0.02 * Xc[2, inside]
    assert agree.mean() > 0.9  # the rest: occlusion edges, where the rounded pixel sees another surface


def test_positives_are_earlier_covisible_frames(seq):
    overlap = rs.covisibility(seq.poses)
    both = np.minimum(overlap, overlap.T)
    for i, pos in enumerate(seq.positives):
        assert all(seq.stamps[i] - seq.stamps[p] >= rs.MIN_GAP_S for p in pos)
        assert all(both[i, p] >= rs.MIN_OVERLAP for p in pos)
    lap2 = np.flatnonzero(seq.laps == 2)
    assert all(len(seq.positives[i]) for i in lap2)  # every frame of the second lap revisits
    assert not any(len(seq.positives[i]) for i in range(30))  # the first lap is new ground


def _best_positive(seq, overlap, q) -> int:
    """The positive of q that shares most of its view."""
    pos = seq.positives[q]
    return int(pos[np.argmax(np.minimum(overlap, overlap.T)[q, pos])])


def test_verified_loops_meet_the_pose_targets(seq, features):
    """Issue #13: RGB-D median rotation error <= 1 deg and translation <= 3 cm over verified loops,
    none with a pose outside TOLERANCES; monocular median rotation <= 2 deg and translation
    direction <= 5 deg, and few monocular poses outside TOLERANCES (docs/verification.md)."""
    rgbd, mono = features
    overlap = rs.covisibility(seq.poses)
    errs = {"metric": [], "mono": []}
    queries = [q for q in range(len(seq.frames)) if len(seq.positives[q])]
    wrong_mono = rotation_only = 0
    for q in queries:
        c = _best_positive(seq, overlap, q)
        T_gt = seq.relative_pose(q, c)
        for kind, feats in (("metric", rgbd), ("mono", mono)):
            v = verify(feats[q], feats[c], seq.camera)
            if v.verified:
                e = pose_errors(v.T, T_gt, v.pose_type)
                assert kind == "mono" or pose_within_tolerance(e), (kind, q, c, e)
                errs[kind].append(e)
                if kind == "mono":
                    wrong_mono += not pose_within_tolerance(e)
                    rotation_only += not v.translation_known
                    assert v.translation_known == bool(np.any(v.t)), (q, c)
    assert len(errs["metric"]) >= 0.9 * len(queries) and len(errs["mono"]) >= 0.9 * len(queries)
    assert all(e["translation_m"] >= 0 for e in errs["metric"])  # the metric path was taken
    assert np.median([e["rotation_deg"] for e in errs["metric"]]) <= 1.0
    assert np.median([e["translation_m"] for e in errs["metric"]]) <= 0.03
    assert np.median([e["rotation_deg"] for e in errs["mono"]]) <= 2.0
    assert np.nanmedian([e["translation_direction_deg"] for e in errs["mono"]]) <= 5.0
    assert TOLERANCES["rotation_deg"] >= 1.0  # the per-loop tolerance is looser than the median target
    # model selection (verification/twoview.py): the wall-dominated pairs whose essential matrix
    # picked the wrong homography twin (11 of 35 poses outside tolerance before) now report rotation
    # only; 2 essential-matrix poses stay wrong (docs/verification.md)
    assert wrong_mono <= 3, wrong_mono
    assert rotation_only <= 0.6 * len(errs["mono"]), rotation_only  # most poses keep their direction


def test_no_verified_loop_between_places_that_share_nothing(seq, features):
    """Different places (no co-visible pixel at all) are never verified, with or without depth."""
    rgbd, mono = features
    overlap = rs.covisibility(seq.poses)
    both = np.minimum(overlap, overlap.T)
    rng = np.random.default_rng(0)
    pairs = []
    for q in range(20, len(seq.frames)):
        far = np.flatnonzero(both[q, :q] == 0.0)
        pairs += [(q, int(c)) for c in rng.choice(far, size=min(2, len(far)), replace=False)]
    assert len(pairs) >= 80
    for q, c in pairs:
        assert not verify(rgbd[q], rgbd[c], seq.camera).verified, (q, c)
        assert not verify(mono[q], mono[c], seq.camera).verified, (q, c)
