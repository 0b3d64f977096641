"""Sequence matching inside the pipeline (issue #22): windows per robot and map, restarts,
the merged order and message fields, excluded ids, standardisation, backend and dataset
checks. Stand-in engine (test_pipeline.VectorEngine): an image value picks a descriptor."""
from __future__ import annotations

import numpy as np
import pytest
from test_pipeline import VectorEngine, img

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.evaluation.protocol import SEQUENCE_BREAKS_FILE, sequence_breaks
from maqbool_ros.core.pipeline import LoopClosurePipeline
from maqbool_ros.core.sequence.history import SequenceHistory, Standardizer


def pipeline(**fields) -> LoopClosurePipeline:
    cfg = MaqboolConfig(method="netvlad", exclude_recent_keyframes=0, exclude_recent_seconds=0.0, top_k=10,
                        verification_enabled=False, sequence_length=5).replace(**fields)
    return LoopClosurePipeline(cfg, engine=VectorEngine())


def feed(p, image: int, kf_id: int, robot: str = "r0", map_id: str = "", stamp: float | None = None,
         add: bool = True):
    kf = p.describe(img(image), kf_id, robot, float(kf_id) if stamp is None else stamp)
    kf.map_id = map_id
    return p.query(kf, add_to_database=add)


def test_window_grows_caps_and_orders_by_sequence_score():
    p = pipeline()
    for i in range(30):  # lap 1: places 0..29
        feed(p, i, i, robot="mapper")
    lengths = []
    for i in range(10):  # lap 2 by another robot: places 10..19, noiseless
        res = feed(p, 10 + i, 100 + i, robot="visitor", add=False)
        lengths.append(res.sequence_length)
        assert res.keyframe_ids[0] == 10 + i and res.robot_ids[0] == "mapper"
        assert np.all(np.diff(res.scores) <= 0) and res.score_kind == "sequence_similarity"
        np.testing.assert_array_equal(res.scores, res.sequence_scores)
        assert res.sequence_aligned[0] == min(i + 1, 5)
        assert res.timings_ms["sequence"] >= 0
    assert lengths == [1, 2, 3, 4, 5, 5, 5, 5, 5, 5]


def test_windows_never_mix_robots_or_maps_and_restart_on_stamps():
    h = SequenceHistory(capacity=10)
    d = np.eye(4, dtype=np.float32)
    hits = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    h.push(("a", ""), 1.0, d[0], hits)
    h.push(("b", ""), 2.0, d[1], hits)
    h.push(("a", "m2"), 3.0, d[2], hits)
    w = h.window(("a", ""), 4.0, d[3], hits, length=5)
    np.testing.assert_array_equal(w.descriptors, d[[3, 0]])  # only robot a, map "": the current + one
    assert len(h.window(("a", ""), 0.5, d[3], hits, length=5)) == 1  # stamp went back: a new traversal
    h.push(("a", ""), 0.5, d[3], hits)
    assert h.restarts == 1 and len(h.window(("a", ""), 0.6, d[0], hits, length=5)) == 2  # only the new one
    h.break_stream(("b", ""))
    assert len(h.window(("b", ""), 9.0, d[3], hits, length=5)) == 1


def test_excluded_ids_never_come_back_through_runs():
    p = pipeline()
    for i in range(20):
        feed(p, i, i)
    for i in range(3):
        feed(p, 5 + i, 200 + i, robot="q", add=False)
    kf = p.describe(img(8), 203, "q", 203.0)  # excluded ids are the query robot's: r0's 8 stays
    res = p.query(kf, add_to_database=False, excluded_ids=[8, 7])
    assert (res.robot_ids[0], int(res.keyframe_ids[0])) == ("r0", 8)
    kf = p.describe(img(9), 204, "r0", 204.0)
    res = p.query(kf, add_to_database=False, excluded_ids=[9, 8])
    assert not {9, 8} & {int(i) for i, r in zip(res.keyframe_ids, res.robot_ids, strict=True) if r == "r0"}


def test_sequence_off_is_the_single_frame_order():
    on, off = pipeline(), pipeline(sequence_length=1)
    for p in (on, off):
        for i in range(15):
            feed(p, i, i)
    res = feed(off, 3, 99, robot="q", add=False)
    assert res.sequence_length == 1 and res.score_kind == "netvlad_similarity"
    assert np.all(res.sequence_scores == 0) and np.all(res.sequence_aligned == 0)


def test_map_filter_inter_map_asks_only_other_maps():
    p = pipeline(sequence_length=3, map_filter="inter_map")
    for i in range(10):
        feed(p, i, i, map_id="day")
    for i in range(10):
        res = feed(p, i, 100 + i, map_id="night")  # the same places again, stored too
        assert set(res.map_ids) <= {"day"}, res.map_ids
        assert res.keyframe_ids[0] == i


def test_standardizer_subtracts_the_causal_mean_of_its_own_stream():
    s = Standardizer()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    first = s.apply(("r", ""), x[0], window=3)
    np.testing.assert_allclose(first, x[0] / np.linalg.norm(x[0]), rtol=1e-6)  # no past: unchanged
    s.apply(("other", ""), x[5], window=3)  # another stream does not enter the mean
    for i in range(1, 5):
        out = s.apply(("r", ""), x[i], window=3)
        want = x[i] - x[max(0, i - 3):i].mean(axis=0)
        np.testing.assert_allclose(out, want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)


def test_sequences_off_on_milvus_with_a_note(tmp_path):
    p = LoopClosurePipeline(MaqboolConfig(database_backend="milvus", database_uri=str(tmp_path / "m.db"),
                                          verification_enabled=False), engine=VectorEngine())
    try:
        assert p.sequence_length_used() == 1 and "needs database.backend faiss" in p.sequence_note
        p.process(img(1), 1, stamp=1.0)
        res = p.process(img(1), 2, stamp=100.0, add_to_database=False)
        assert res.sequence_length == 1 and res.score_kind == "netvlad_similarity"
    finally:
        p.close()


def test_backend_without_runs_is_refused_by_name():
    with pytest.raises(ValueError, match="database.map_filter: 'inter_map' needs database.backend faiss"):
        LoopClosurePipeline(MaqboolConfig(database_backend="milvus", map_filter="inter_map"), engine=VectorEngine())
    p = pipeline(sequence_length=1)
    with pytest.raises(ValueError, match="sequence.min_velocity"):
        p.update_config(sequence_min_velocity=2.0, sequence_max_velocity=1.0)
    assert p.update_config(sequence_length=10).sequence_length == 10  # live


def test_sequence_breaks_file(tmp_path):
    class Data:
        kind, source = "sequence", str(tmp_path)
        frames = range(10)

    assert sequence_breaks(Data()) == set()
    (tmp_path / SEQUENCE_BREAKS_FILE).write_text("# new traversal\n4\n\n7  # after a gap\n")
    assert sequence_breaks(Data()) == {4, 7}
    (tmp_path / SEQUENCE_BREAKS_FILE).write_text("4\n12\n")
    with pytest.raises(ValueError, match=r"sequence_breaks.txt:2: '12' is not an index in \[0, 10\)"):
        sequence_breaks(Data())


def test_a_keyframe_queried_twice_is_standardised_once_per_pipeline():
    """Standardisation works on a copy: the keyframe (and an engine's cached output) is left as
    computed, so two pipelines fed the same Keyframe store the same descriptors."""
    a, b = pipeline(standardize_window=3), pipeline(standardize_window=3)
    for i in range(6):
        kf = a.describe(img(i), i, "r0", float(i))
        raw = kf.output.descriptor.copy()
        for p in (a, b):
            p.query(kf, add_to_database=True)
        np.testing.assert_array_equal(kf.output.descriptor, raw)
    rows, _, _ = a.database.keyframes()
    np.testing.assert_allclose(a.database.descriptors(rows), b.database.descriptors(rows), atol=1e-6)
