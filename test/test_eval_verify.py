"""Scoring of verified loops (evaluation/verified.py) and the verification fields of records."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from maqbool_ros.core.evaluation.protocol import QueryRecord, records_from_candidates, summarize
from maqbool_ros.core.evaluation.verified import pose_errors, summarize_verified
from maqbool_ros.core.verification.geometry import make_T


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def _dataset(with_poses: bool):
    poses = np.stack([make_T(_rot_z(5 * i), [0.3 * i, 0.0, 0.0]) for i in range(6)])
    positives = [np.zeros(0, np.int64)] * 2 + [np.array([0]), np.array([1]), np.array([0]), np.array([1])]
    ds = SimpleNamespace(positives=positives, kind="sequence", name="toy")
    if with_poses:
        ds.poses = poses
    return ds, poses


def _record(q: int, ranked, verified, inliers, poses_est, types=None) -> QueryRecord:
    n = len(ranked)
    rec = QueryRecord(q, np.asarray(ranked, np.int64), 1.0)
    rec.attempted = np.ones(n, bool)
    rec.verified = np.asarray(verified, bool)
    rec.num_inliers = np.asarray(inliers, np.int64)
    rec.pose_types = types or ["metric" if v else "none" for v in verified]
    rec.relative_poses = np.stack(poses_est)
    return rec


def _records(poses):
    gt = lambda q, c: np.linalg.inv(poses[q]) @ poses[c]  # noqa: E731
    wrong = gt(3, 1) @ make_T(_rot_z(10.0), [0, 0, 0])     # right place, rotation 10 deg off
    return [
        QueryRecord(0, np.zeros(0, np.int64), float("-inf")),                       # no candidate
        QueryRecord(1, np.array([0]), 0.5),                                         # nothing verified
        _record(2, [1, 0], [False, True], [5, 120], [np.eye(4), gt(2, 0)]),          # TP (2nd in rank)
        _record(3, [1], [True], [60], [wrong]),                                      # FP: wrong pose
        _record(4, [2], [True], [40], [gt(4, 2)]),                                   # FP: not the place
        _record(5, [0, 1], [False, False], [3, 4], [np.eye(4), np.eye(4)]),          # revisit, none verified
    ]


def test_verified_counts_precision_recall_and_pose_errors():
    ds, poses = _dataset(with_poses=True)
    v = summarize_verified(ds, _records(poses))
    assert (v["true_positives"], v["false_positives"], v["false_positives_wrong_pose"]) == (1, 2, 1)
    assert v["precision"] == pytest.approx(1 / 3) and v["recall"] == pytest.approx(1 / 4)
    assert v["num_queries_with_revisit"] == 4 and v["num_queries_verified"] == 3
    # accepted from the most inliers down: the TP (120) first, then the FPs (60, 40)
    assert v["recall_at_100_precision"] == pytest.approx(1 / 4)
    assert v["rotation_error_deg_median"] == pytest.approx(0.0, abs=1e-4)  # errors 0, 10, 0 (arccos near 1)
    assert v["translation_error_m_median"] == pytest.approx(0.0, abs=1e-9)
    assert v["tolerances"]["rotation_deg"] == 5.0


def test_without_poses_a_verified_positive_is_a_true_positive_and_pose_figures_are_null():
    ds, poses = _dataset(with_poses=False)
    v = summarize_verified(ds, _records(poses))
    assert (v["true_positives"], v["false_positives"]) == (2, 1)
    assert v["rotation_error_deg_median"] is None and v["translation_error_m_median"] is None
    assert v["tolerances"] is None
    assert v["recall_at_100_precision"] == pytest.approx(2 / 4)


def test_summarize_adds_verified_only_when_asked():
    ds, poses = _dataset(with_poses=True)
    recs = _records(poses)
    assert "verified" not in summarize(ds, recs)
    keys = {"recall_at_100_precision", "precision", "recall", "false_positives", "rotation_error_deg_median",
            "translation_error_m_median"}
    assert keys <= set(summarize(ds, recs, verify=True)["verified"])


def test_monocular_pose_error_is_the_translation_direction():
    T_gt = make_T(np.eye(3), [1.0, 0.0, 0.0])
    e = pose_errors(make_T(_rot_z(2.0), [0.0, 1.0, 0.0]), T_gt, "rotation_unit_translation")
    assert e["rotation_deg"] == pytest.approx(2.0) and e["translation_direction_deg"] == pytest.approx(90.0)
    assert np.isnan(e["translation_m"])
    tiny = pose_errors(np.eye(4), make_T(np.eye(3), [0.01, 0, 0]), "rotation_unit_translation")
    assert np.isnan(tiny["translation_direction_deg"])  # baseline too short for a direction


def test_a_rotation_only_pose_is_judged_by_its_rotation_alone():
    """t = 0 (monocular, direction not observable: verification/twoview.py) claims no direction:
    the direction is not checked, the rotation is, and the loop is counted as rotation only."""
    T_gt = make_T(np.eye(3), [1.0, 0.0, 0.0])
    e = pose_errors(make_T(_rot_z(2.0), np.zeros(3)), T_gt, "rotation_unit_translation")
    assert np.isnan(e["translation_direction_deg"]) and e["rotation_deg"] == pytest.approx(2.0)
    ds, poses = _dataset(with_poses=True)
    gt = lambda q, c: np.linalg.inv(poses[q]) @ poses[c]  # noqa: E731
    right = make_T(gt(2, 0)[:3, :3], np.zeros(3))
    wrong = make_T(gt(3, 1)[:3, :3] @ _rot_z(10.0), np.zeros(3))
    mono = ["rotation_unit_translation"]
    recs = [_record(2, [0], [True], [50], [right], mono), _record(3, [1], [True], [40], [wrong], mono)]
    v = summarize_verified(ds, recs)
    assert (v["true_positives"], v["false_positives_wrong_pose"], v["num_rotation_only"]) == (1, 1, 2)
    assert v["translation_direction_error_deg_median"] is None


def test_online_records_carry_the_verification_fields():
    def cand(kf, verified, inliers, pose_type, xyz):
        pose = SimpleNamespace(position=SimpleNamespace(x=xyz[0], y=xyz[1], z=xyz[2]),
                               orientation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0))
        return SimpleNamespace(keyframe_id=kf, score=0.5, verified=verified, num_inliers=inliers,
                               pose_type=pose_type, has_relative_pose=verified and pose_type != 0,
                               relative_pose=SimpleNamespace(pose=pose))
    msg = SimpleNamespace(query_keyframe_id=3,
                          candidates=[cand(1, False, 4, 0, (0, 0, 0)), cand(0, True, 80, 2, (1, 2, 3))],
                          descriptor_ms=1.0, search_ms=1.0, rerank_ms=1.0, latency_ms=5.0, verify_ms=2.0,
                          reranking_complete=True, region_budget=0)
    ds = SimpleNamespace(kind="sequence", frames=[None] * 4, positives=[np.zeros(0, np.int64)] * 4)
    rec = records_from_candidates(ds, [msg])[3]
    assert rec.verified.tolist() == [False, True] and rec.num_inliers.tolist() == [4, 80]
    assert rec.pose_types == ["none", "metric"] and rec.timings_ms["verify"] == 2.0
    assert np.allclose(rec.relative_poses[1][:3, 3], [1, 2, 3])
    assert records_from_candidates(ds, [msg])[0].verified.tolist() == []  # no message: nothing verified


def test_offline_protocol_gives_the_pipeline_each_frames_camera_and_depth():
    from maqbool_ros.core.evaluation.protocol import run_offline
    from maqbool_ros.core.verification.stage import CandidateChecks

    calls = []

    class Result(SimpleNamespace):
        def __len__(self):
            return 1

    def process(image, keyframe_id, **kw):
        calls.append((keyframe_id, kw.get("camera"), kw.get("depth")))
        checks = CandidateChecks.none(1)
        checks.verified[0], checks.num_inliers[0], checks.pose_types[0] = True, 77, "metric"
        return Result(keyframe_ids=np.array([0]), scores=np.array([0.9]), timings_ms={}, complete=True,
                      region_budget=0, checks=checks)

    depths = [np.full((2, 2), float(i), np.float32) for i in range(3)]
    ds = SimpleNamespace(kind="sequence", frames=[np.zeros((2, 2, 3), np.uint8)] * 3, stamps=np.arange(3.0),
                         camera="CAM", depths=depths, positives=[np.zeros(0, np.int64)] * 3)
    records = run_offline(ds, SimpleNamespace(process=process), progress=False)
    assert [c[1] for c in calls] == ["CAM"] * 3
    assert [float(c[2][0, 0]) for c in calls] == [0.0, 1.0, 2.0]
    assert records[2].verified.tolist() == [True] and records[2].num_inliers.tolist() == [77]
    assert records[2].pose_types == ["metric"]


def test_best_verified_is_the_verified_candidate_with_the_most_inliers():
    """What `eval --verify` scores and `--pose-graph` adds as the query's loop: the strongest
    geometric support among the verified candidates (rank order on ties), as the bridge links."""
    from types import SimpleNamespace

    from maqbool_ros.core.evaluation.verified import best_verified

    rec = lambda v, n: SimpleNamespace(verified=v, num_inliers=n)  # noqa: E731
    assert best_verified(rec([False, True, True], [900, 30, 80])) == 2
    assert best_verified(rec([True, True], [50, 50])) == 0
    assert best_verified(rec([False, False], [90, 90])) is None
