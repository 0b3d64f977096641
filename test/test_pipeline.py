"""LoopClosurePipeline with a stand-in engine: ordering, live config, insert flag, reset."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.configs import SINGLE_FRAME
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.pipeline import LIVE_FIELDS, LoopClosurePipeline
from maqbool_ros.core.types import EngineOutput


class VectorEngine:
    """'Images' are 1x1x3 arrays whose descriptor is a fixed seeded vector per image value."""

    metadata = {"descriptor_dim": 512}

    def __init__(self):
        self.table = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)

    def compute(self, image):
        d = self.table[int(image[0, 0, 0])]
        d = d / np.linalg.norm(d)
        return EngineOutput(d, d, np.zeros((1, 1, 1), np.float32), None, image, 16)


def img(i: int) -> np.ndarray:
    return np.full((1, 1, 3), i, np.uint8)


@pytest.fixture
def pipeline():
    cfg = MaqboolConfig(method="netvlad", exclude_recent_keyframes=0, exclude_recent_seconds=0.0, top_k=5,
                        **SINGLE_FRAME)
    return LoopClosurePipeline(cfg, engine=VectorEngine())


def test_candidates_are_brute_force_nearest(pipeline):
    for i in range(40):
        pipeline.process(img(i), keyframe_id=i, stamp=float(i), query=False)
    res = pipeline.process(img(7), keyframe_id=100, stamp=100.0, add_to_database=False)
    table = pipeline.engine.table[:40] / np.linalg.norm(pipeline.engine.table[:40], axis=1, keepdims=True)
    q = table[7]
    expected = np.argsort(((table - q) ** 2).sum(1), kind="stable")[:5]
    assert res.keyframe_ids.tolist() == expected.tolist() and res.keyframe_ids[0] == 7
    assert res.method == "netvlad" and res.complete and res.num_reranked == 5
    assert np.all(np.diff(res.descriptor_distances) >= 0)
    assert {"descriptor", "search", "rerank", "total"} <= set(res.timings_ms)


def test_live_changes_apply_and_read_only_fields_are_refused(pipeline):
    for i in range(10):
        pipeline.process(img(i), keyframe_id=i, stamp=float(i), query=False)
    pipeline.update_config(top_k=2)
    assert len(pipeline.process(img(3), keyframe_id=50, add_to_database=False)) == 2
    with pytest.raises(ValueError, match="region_budget"):
        pipeline.update_config(region_budget=60)
    with pytest.raises(ValueError, match="method"):
        pipeline.update_config(method="maqbool")
    assert "method" not in LIVE_FIELDS and "region_budget" in LIVE_FIELDS
    assert pipeline.config.top_k == 2  # a rejected change leaves the config as it was


def test_insert_keyframes_flag_and_reset(pipeline):
    pipeline.update_config(insert_keyframes=False)
    pipeline.process(img(1), keyframe_id=1)
    assert len(pipeline.database) == 0
    pipeline.update_config(insert_keyframes=True)
    pipeline.process(img(1), keyframe_id=1)
    assert len(pipeline.database) == 1
    pipeline.reset_database()
    assert len(pipeline.database) == 0


def test_model_dimension_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="descriptor_dim"):
        LoopClosurePipeline(MaqboolConfig(method="netvlad", descriptor_dim=4096), engine=VectorEngine())


def test_query_result_take_reorders_every_per_candidate_field_together():
    """Geometric re-ranking permutes a QueryResult: each candidate keeps its own ids, scores,
    sequence evidence and verification checks (a field left behind would pair a pose with the
    wrong keyframe)."""
    from maqbool_ros.core.pipeline import QueryResult
    from maqbool_ros.core.verification.stage import CandidateChecks

    n = 4
    res = QueryResult(keyframe_id=9, robot_id="r", stamp=1.0, keyframe_ids=np.arange(10, 10 + n),
                      robot_ids=[f"r{i}" for i in range(n)], stamps=np.arange(n) + 0.5,
                      descriptor_distances=np.arange(n) * 0.1, reranked_distances=np.arange(n) * 0.2,
                      scores=np.linspace(0.9, 0.6, n), method="netvlad", region_source="", region_budget=0,
                      num_reranked=n, complete=True, timings_ms={}, map_ids=[f"m{i}" for i in range(n)],
                      sequence_length=5, sequence_scores=np.linspace(0.8, 0.5, n).astype(np.float32),
                      sequence_aligned=np.arange(n))
    checks = CandidateChecks.none(n)
    checks.verified[2], checks.num_inliers[2] = True, 77
    checks.relative_poses[2][0, 3] = 1.5
    checks.match_points[2] = np.ones((3, 4), np.float32)
    res.checks = checks
    res.take([2, 0, 1, 3])
    assert res.keyframe_ids.tolist() == [12, 10, 11, 13] and res.robot_ids[0] == "r2" and res.map_ids[0] == "m2"
    assert res.stamps[0] == 2.5 and res.scores[0] == pytest.approx(0.7) and res.sequence_aligned[0] == 2
    assert res.checks.verified.tolist() == [True, False, False, False] and res.checks.num_inliers[0] == 77
    assert res.checks.relative_poses[0][0, 3] == 1.5 and res.checks.match_points[0].shape == (3, 4)
    assert res.best_score == pytest.approx(0.9)  # the largest score, wherever it now sits
