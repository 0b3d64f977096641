"""Verification wired into LoopClosurePipeline: local features stored per keyframe, the re-ranked
top-N verified inside the query stage's deadline, metric / monocular poses against a synthetic
scene with an exact relative pose, persistence, malformed depth and temporal consistency."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from helpers.rgbd_scene import HEIGHT, WIDTH, K, candidate_depth, rotation, rotation_error_deg, texture, view
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.pipeline import LoopClosurePipeline
from maqbool_ros.core.types import EngineOutput
from maqbool_ros.core.verification import Camera, LocalFeatureExtractor
from maqbool_ros.core.verification.stage import PREFIX

CAMERA = Camera(K=K, width=WIDTH, height=HEIGHT)
R_TRUE, T_TRUE, DEPTH_M = rotation(2.0, -4.0, 1.5), np.array([0.25, -0.05, 0.10]), 3.0


class ThumbnailEngine:
    """Descriptor = the normalised 16x32 grey thumbnail (similar views are near neighbours)."""

    metadata = {"descriptor_dim": 512}

    def compute(self, image):
        small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (32, 16), interpolation=cv2.INTER_AREA)
        d = small.astype(np.float32).ravel() - small.mean()
        d /= np.linalg.norm(d) + 1e-12
        return EngineOutput(d, d, np.zeros((1, 1, 1), np.float32), None, image, 16)


def config(**fields) -> MaqboolConfig:
    return MaqboolConfig(method="netvlad", exclude_recent_keyframes=0, exclude_recent_seconds=0.0, top_k=5,
                         **fields)


def build_map(pipe: LoopClosurePipeline, depth: bool = True) -> None:
    """Keyframe 0: the place revisited (texture 0); 1..4: other places."""
    for i in range(5):
        pipe.process(texture(i), keyframe_id=i, stamp=float(i), query=False, camera=CAMERA,
                     depth=candidate_depth(DEPTH_M, mm=bool(i % 2)) if depth else None)


def revisit(pipe: LoopClosurePipeline, kf_id: int = 100, **kwargs):
    rgb, _ = view(texture(0), R_TRUE, T_TRUE, DEPTH_M)
    return pipe.process(rgb, keyframe_id=kf_id, stamp=float(kf_id), add_to_database=False, camera=CAMERA, **kwargs)


def test_revisit_is_verified_with_a_metric_pose_within_tolerance():
    pipe = LoopClosurePipeline(config(), engine=ThumbnailEngine())
    build_map(pipe)
    res = revisit(pipe)
    assert res.keyframe_ids[0] == 0
    assert res.checks.verified[0] and res.checks.pose_types[0] == "metric" and res.checks.num_inliers[0] >= 100
    T = res.checks.relative_poses[0]
    assert np.linalg.norm(T[:3, 3] - T_TRUE) < 0.03  # metres, at 3 m depth
    assert rotation_error_deg(T[:3, :3], R_TRUE) < 0.5
    cov = res.checks.pose_covariances[0]
    assert np.all(np.isfinite(cov)) and np.all(np.linalg.eigvalsh(cov) > 0)
    # the other places were tried (top 3) and rejected, without a pose
    assert res.checks.attempted[:3].all() and not res.checks.attempted[3:].any()
    assert not res.checks.verified[1:].any() and res.checks.pose_types[1:] == ["none"] * 4
    assert np.all(np.isinf(np.diag(res.checks.pose_covariances[1])))
    assert res.checks.frame == "camera" and "verify" in res.timings_ms and "local_features" in res.timings_ms


def test_without_depth_the_pose_is_rotation_and_translation_direction():
    pipe = LoopClosurePipeline(config(), engine=ThumbnailEngine())
    build_map(pipe, depth=False)
    res = revisit(pipe)
    assert res.checks.verified[0] and res.checks.pose_types[0] == "rotation_unit_translation"
    T = res.checks.relative_poses[0]
    assert rotation_error_deg(T[:3, :3], R_TRUE) < 1.0
    assert np.degrees(np.arccos(T[:3, 3] @ T_TRUE / np.linalg.norm(T_TRUE))) < 5.0


def test_camera_to_base_expresses_the_pose_between_bases():
    # camera optical frame in a base with x forward, y left, z up (the usual ROS optical rotation)
    q = (-0.5, 0.5, -0.5, 0.5)
    pipe = LoopClosurePipeline(config(camera_to_base=f"0.1 0 0.5 {q[0]} {q[1]} {q[2]} {q[3]}"),
                               engine=ThumbnailEngine())
    build_map(pipe)
    res = revisit(pipe)
    A = np.array([[0, 0, 1, 0.1], [-1, 0, 0, 0], [0, -1, 0, 0.5], [0, 0, 0, 1]], float)
    truth = A @ np.block([[R_TRUE, T_TRUE[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]) @ np.linalg.inv(A)
    assert res.checks.verified[0] and res.checks.frame == "base"
    assert np.linalg.norm(res.checks.relative_poses[0][:3, 3] - truth[:3, 3]) < 0.03


def test_only_top_n_are_verified_and_the_deadline_stops_verification():
    pipe = LoopClosurePipeline(config(verification_top_n=1), engine=ThumbnailEngine())
    build_map(pipe)
    res = revisit(pipe)
    assert res.checks.verified[0] and res.checks.attempted.tolist() == [True, False, False, False, False]

    class SlowReranker:  # uses up the whole deadline before verification starts
        def __init__(self, inner):
            self.inner = inner

        def keyframe_extras(self, out):
            return self.inner.keyframe_extras(out)

        def rerank(self, query, cands, extras, deadline):
            while time.perf_counter() < deadline:
                time.sleep(0.005)
            return self.inner.rerank(query, cands, extras, deadline)

    pipe.update_config(verification_top_n=3, rerank_deadline_ms=10.0)
    pipe.reranker = SlowReranker(pipe.reranker)
    res = revisit(pipe, kf_id=101)
    assert len(res) == 5 and not res.checks.attempted.any() and not res.checks.verified.any()
    assert res.num_verified == 0 and res.checks.pose_types == ["none"] * 5


def test_local_features_survive_a_database_round_trip(tmp_path):
    cfg = config(database_path=str(tmp_path / "db"), save_interval_s=0.0)
    pipe = LoopClosurePipeline(cfg, engine=ThumbnailEngine())
    build_map(pipe)
    stored = pipe.database.get_extras(np.arange(5))
    pipe.close()
    reopened = LoopClosurePipeline(cfg, engine=ThumbnailEngine())
    assert len(reopened.database) == 5
    again = reopened.database.get_extras(np.arange(5))
    for key in ("kp", "desc", "depth", "info"):
        np.testing.assert_array_equal(again[f"{PREFIX}_{key}"], stored[f"{PREFIX}_{key}"])
    expected = LocalFeatureExtractor().extract(texture(3), depth=candidate_depth(DEPTH_M)).to_extras(1000)
    np.testing.assert_array_equal(again[f"{PREFIX}_desc"][3], expected[f"{PREFIX}_desc"])
    np.testing.assert_array_equal(again[f"{PREFIX}_depth"][3], expected[f"{PREFIX}_depth"])
    assert np.all(again[f"{PREFIX}_depth"][3][: expected[f"{PREFIX}_info"][0]] > 2000)
    res = revisit(reopened)
    assert res.checks.verified[0] and res.checks.pose_types[0] == "metric"
    assert np.linalg.norm(res.checks.relative_poses[0][:3, 3] - T_TRUE) < 0.03
    reopened.close()


def test_a_database_with_other_local_features_is_refused_at_start(tmp_path):
    cfg = config(database_path=str(tmp_path / "db"), save_interval_s=0.0)
    pipe = LoopClosurePipeline(cfg, engine=ThumbnailEngine())
    build_map(pipe)
    pipe.close()
    with pytest.raises(ValueError, match="verification_max_features"):
        LoopClosurePipeline(cfg.replace(verification_max_features=500), engine=ThumbnailEngine())


@pytest.mark.parametrize("bad", ["uint8", "aspect", "zeros", "nan", "3d"])
def test_malformed_query_depth_is_noted_and_the_keyframe_goes_on_in_2d(bad):
    pipe = LoopClosurePipeline(config(), engine=ThumbnailEngine())
    build_map(pipe, depth=False)  # no candidate depth: the query's depth alone would give PnP
    rgb, depth = view(texture(0), R_TRUE, T_TRUE, DEPTH_M)
    depth = {"uint8": depth.astype(np.uint8), "aspect": depth[:, :400], "zeros": np.zeros_like(depth),
             "nan": np.full_like(depth, np.nan), "3d": depth[:, :, None]}[bad]
    kf = pipe.describe(rgb, 100, "robot0", 100.0, camera=CAMERA, depth=depth)
    assert len(kf.notes) == 1 and kf.notes[0].startswith("malformed_depth:")
    res = pipe.query(kf, add_to_database=False)
    assert res.checks.verified[0] and res.checks.pose_types[0] == "rotation_unit_translation"
    # the good query depth gives the metric pose (PnP the other way, inverted)
    kf = pipe.describe(rgb, 101, "robot0", 101.0, camera=CAMERA, depth=view(texture(0), R_TRUE, T_TRUE, DEPTH_M)[1])
    res = pipe.query(kf, add_to_database=False)
    assert kf.notes == [] and res.checks.pose_types[0] == "metric"
    assert np.linalg.norm(res.checks.relative_poses[0][:3, 3] - T_TRUE) < 0.03


def test_intrinsics_from_parameters_and_a_mismatched_camera():
    pipe = LoopClosurePipeline(config(camera_fx=500.0), engine=ThumbnailEngine())  # cx, cy: image centre
    build_map(pipe)
    rgb, _ = view(texture(0), R_TRUE, T_TRUE, DEPTH_M)
    res = pipe.process(rgb, keyframe_id=100, add_to_database=False)  # no camera given: the parameters
    assert res.checks.pose_types[0] == "metric" and np.linalg.norm(res.checks.relative_poses[0][:3, 3] - T_TRUE) < 0.03
    small = Camera(K=K, width=320, height=240)
    kf = pipe.describe(rgb, 101, "robot0", 101.0, camera=small)
    assert kf.camera is None and kf.notes[0].startswith("camera_mismatch:")
    res = pipe.query(kf, add_to_database=False)
    assert res.checks.verified[0] and res.checks.pose_types[0] == "none"  # fundamental matrix: decision, no pose


def test_no_intrinsics_verifies_without_a_pose_and_disabled_verifies_nothing():
    pipe = LoopClosurePipeline(config(), engine=ThumbnailEngine())
    for i in range(5):
        pipe.process(texture(i), keyframe_id=i, stamp=float(i), query=False)
    rgb, _ = view(texture(0), R_TRUE, T_TRUE, DEPTH_M)
    res = pipe.process(rgb, keyframe_id=100, add_to_database=False)
    assert res.checks.verified[0] and res.checks.pose_types[0] == "none" and res.checks.num_inliers[0] >= 100
    off = LoopClosurePipeline(config(verification_enabled=False), engine=ThumbnailEngine())
    build_map(off)
    res = revisit(off)
    assert off.verifier is None and res.keyframe_ids[0] == 0 and not res.checks.attempted.any()
    assert f"{PREFIX}_desc" not in off.database.extras_spec()


def test_temporal_consistency_accepts_only_after_k_consecutive_queries():
    pipe = LoopClosurePipeline(config(verification_temporal_k=2), engine=ThumbnailEngine())
    build_map(pipe)
    first = revisit(pipe, kf_id=100)
    assert first.checks.attempted[0] and first.checks.num_inliers[0] >= 100 and not first.checks.verified[0]
    assert first.checks.pose_types[0] == "none"
    second = revisit(pipe, kf_id=101)
    assert second.checks.verified[0] and second.checks.pose_types[0] == "metric"
    pipe.update_config(verification_temporal_k=0)  # 0 = off
    assert pipe.verifier.temporal.k == 1


def test_tiny_images_give_no_local_features_instead_of_an_opencv_error():
    feats = LocalFeatureExtractor().extract(np.zeros((1, 1, 3), np.uint8))
    assert len(feats) == 0 and feats.image_size == (1, 1)
    assert len(LocalFeatureExtractor().extract(texture(0, 40, 30))) == 0


def test_an_opencv_estimator_error_rejects_the_pair_instead_of_raising(monkeypatch):
    """OpenCV's USAC asserts on some degenerate match sets (corridor refs 15/17, fundamental
    matrix: "!model.empty() in setModelParameters"); the pair must be rejected, not raise."""
    from maqbool_ros.core.verification import verify

    ex = LocalFeatureExtractor()
    q, c = ex.extract(view(texture(0), R_TRUE, T_TRUE, DEPTH_M)[0]), ex.extract(texture(0))

    def broken(*args, **kwargs):
        raise cv2.error("OpenCV(5.0.0) estimator.cpp:418: error: (-215:Assertion failed) !model.empty()")

    monkeypatch.setattr(cv2, "findFundamentalMat", broken)
    v = verify(q, c, None)
    assert not v.verified and v.pose_type == "none" and "model.empty" in v.error and v.num_matches >= 20


def test_opencv_assertion_on_a_real_degenerate_pair_is_a_rejection(corridor_dir, monkeypatch):
    from maqbool_ros.core.data.datasets import load_query_ref_folder
    from maqbool_ros.core.verification import features, verify

    refs = load_query_ref_folder(corridor_dir).refs
    # the keypoints as OpenCV reports them (before the level-centre correction): the input that raised
    monkeypatch.setattr(features, "orb_level_centres", lambda pts, *_: pts)
    ex = LocalFeatureExtractor()
    v = verify(ex.extract(refs[15]), ex.extract(refs[17]), None)  # raised cv2.error before
    assert not v.verified and v.error


def test_a_verification_failure_keeps_the_candidates(monkeypatch):
    from maqbool_ros.core.verification import stage

    pipe = LoopClosurePipeline(config(), engine=ThumbnailEngine())
    build_map(pipe)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(stage, "verify_candidates", broken)
    res = revisit(pipe)
    assert len(res) == 5 and res.keyframe_ids[0] == 0 and not res.checks.attempted.any()
    assert res.checks.error == "RuntimeError: boom"


def test_single_frame_best_is_verified_when_the_sequence_ranks_it_lower():
    """Revisit onset: the query's window still holds keyframes of another stretch, so the
    sequence order puts another place first; the re-ranker's single-frame best (the true place,
    keyframe 0) is verified too, beyond verification_top_n (docs/sequence.md)."""
    pipe = LoopClosurePipeline(config(verification_top_n=1, sequence_length=5, standardize_window=0)
                               .replace(top_k=10), engine=ThumbnailEngine())
    for i in range(10):
        pipe.process(texture(i), keyframe_id=i, stamp=float(i), query=False, camera=CAMERA,
                     depth=candidate_depth(DEPTH_M))
    for k, place in enumerate((6, 7, 8, 9)):  # the query robot drives the map's last stretch again
        pipe.process(texture(place), keyframe_id=200 + k, robot_id="q", stamp=200.0 + k, add_to_database=False,
                     camera=CAMERA)
    res = revisit(pipe, kf_id=300, robot_id="q")
    ids = res.keyframe_ids.tolist()
    best_run = int(np.argmax(res.sequence_scores))
    assert ids[best_run] != 0 and res.sequence_aligned[best_run] >= 3  # the sequence prefers the stretch it followed
    assert res.checks.attempted[ids.index(0)] and res.checks.verified[ids.index(0)]
    assert res.checks.attempted.sum() == 2  # top_n (1) + the single-frame best
    # geometric re-ranking: the verified true place is published first, ahead of the sequence's choice
    assert ids[0] == 0 and not res.checks.verified[ids.index(ids[best_run])]
