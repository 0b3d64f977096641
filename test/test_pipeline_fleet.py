"""Pipeline side of issue #14: per-keyframe map ids stored and returned (and persisted),
excluded ids of the query's robot, truncation, recent-keyframe exclusion per robot, and the
database's per-robot counts. Stand-in engine (test_pipeline.py), no ROS."""
from __future__ import annotations

import pytest
from test_pipeline import VectorEngine, img

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.database import KeyframeDatabase
from maqbool_ros.core.database.map_ids import MAP_ID_BYTES, decode_map_ids, encode_map_id
from maqbool_ros.core.pipeline import LoopClosurePipeline


def pipeline(**fields) -> LoopClosurePipeline:
    cfg = MaqboolConfig(method="netvlad", exclude_recent_keyframes=0, exclude_recent_seconds=0.0, top_k=5,
                        verification_enabled=False).replace(**fields)
    return LoopClosurePipeline(cfg, engine=VectorEngine())


def add(p: LoopClosurePipeline, image: int, kf_id: int, robot: str = "robot0", map_id: str = "",
        stamp: float = 0.0) -> None:
    kf = p.describe(img(image), kf_id, robot, stamp)
    kf.map_id = map_id
    p.query(kf, add_to_database=True, query=False)


def test_map_ids_are_stored_returned_and_persisted(tmp_path):
    p = pipeline(database_path=str(tmp_path / "map"))
    add(p, 1, 1)  # before any map id: reads back as ""
    for i in range(2, 6):
        add(p, i, i, map_id="séance-2" if i % 2 else "map_a")
    kf = p.describe(img(3), 100, "robot0", 1.0)
    kf.map_id = "q"
    res = p.query(kf, add_to_database=False)
    assert res.map_id == "q" and res.keyframe_ids[0] == 3 and res.map_ids[0] == "séance-2"
    assert dict(zip(res.keyframe_ids.tolist(), res.map_ids)) == {1: "", 2: "map_a", 3: "séance-2", 4: "map_a",
                                                                 5: "séance-2"}
    p.database.close()
    db = KeyframeDatabase.load(tmp_path / "map")  # from the log: the map ids came with the keyframes
    rows, ids, _ = db.keyframes()
    assert decode_map_ids(db.get_extras(rows), len(rows)) == ["", "map_a", "séance-2", "map_a", "séance-2"]


def test_map_id_checks_name_the_field():
    assert encode_map_id("").tolist() == [0] * MAP_ID_BYTES
    with pytest.raises(ValueError, match="map_id: 65 bytes"):
        encode_map_id("m" * 65)
    with pytest.raises(ValueError, match="keyframe.map_id: .* control characters"):
        encode_map_id("a\0b", "keyframe.map_id")


def test_excluded_ids_are_of_the_query_robot_and_top_k_is_refilled():
    p = pipeline(top_k=3)
    for i in range(10):
        add(p, i, i)
    add(p, 2, 2, robot="other")  # the same place and id, another robot: not excluded
    kf = p.describe(img(2), 100, "robot0", 1.0)
    plain = p.query(kf, add_to_database=False)
    assert plain.keyframe_ids[:2].tolist() == [2, 2]
    res = p.query(kf, add_to_database=False, excluded_ids=[2, int(plain.keyframe_ids[2])])
    assert len(res) == 3 and list(zip(res.robot_ids, res.keyframe_ids.tolist()))[0] == ("other", 2)
    assert ("robot0", 2) not in zip(res.robot_ids, res.keyframe_ids.tolist())
    res.truncate(1)
    assert len(res) == 1 and len(res.checks.verified) == 1 and len(res.map_ids) == 1


def test_recent_exclusion_is_per_robot_and_database_counts_per_robot():
    p = pipeline(exclude_recent_keyframes=3, top_k=10)
    for i in range(4):
        add(p, i, i, robot="a")
    add(p, 9, 0, robot="b")
    kf = p.describe(img(3), 10, "b", 1.0)  # b's last 3 keyframes (its only one) are excluded; a's are not
    res = p.query(kf, add_to_database=False)
    assert set(res.robot_ids) == {"a"} and sorted(res.keyframe_ids.tolist()) == [0, 1, 2, 3]
    kf = p.describe(img(3), 10, "a", 1.0)
    res = p.query(kf, add_to_database=False)
    assert list(zip(res.robot_ids, res.keyframe_ids.tolist())) in ([("a", 0), ("b", 0)], [("b", 0), ("a", 0)])
    assert p.database.robot_counts() == {"a": 4, "b": 1}
    p.database.remove([1, 2], "a")
    assert p.database.robot_counts() == {"a": 2, "b": 1}


def test_map_ids_on_a_milvus_map(tmp_path):
    """The Milvus backend keeps the map id column in its extras JSON like any other."""
    pytest.importorskip("pymilvus", reason="pymilvus is not installed (requirements-python.txt pins it)")
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (requirements-python.txt pins it)")
    p = pipeline(database_backend="milvus", database_uri=str(tmp_path / "m.db"))
    try:
        add(p, 1, 1)
        add(p, 2, 2, map_id="map_b")
        kf = p.describe(img(2), 100, "robot0", 1.0)
        res = p.query(kf, add_to_database=False)
        assert dict(zip(res.keyframe_ids.tolist(), res.map_ids)) == {1: "", 2: "map_b"}
        assert p.database.robot_counts() == {}  # not counted per robot on Milvus (documented)
    finally:
        p.close()
