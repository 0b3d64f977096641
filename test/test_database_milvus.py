"""Milvus backend of the keyframe database (milvus-lite file, in process): equality with the FAISS
backend, removal, extras, validation, reopening, and the backend factory. The search contract
(brute-force equality, exclusions) runs on both backends in test_database.py (its `backend`
fixture)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus is not installed (requirements-python.txt pins it)")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (requirements-python.txt pins it)")

from test_database import ROBOTS, check_against_brute_force, fill, make_keyframes  # noqa: E402  (shared oracle)

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.database.backend import make_database  # noqa: E402
from maqbool_ros.core.database.keyframes import KeyframeDatabase  # noqa: E402
from maqbool_ros.core.database.milvus import MilvusKeyframeDatabase  # noqa: E402
from maqbool_ros.core.database.milvus_schema import keyframe_pk, search_filter  # noqa: E402


@pytest.fixture(scope="module")
def milvus_synthetic(tmp_path_factory):
    desc, robots, stamps = make_keyframes(3000, 32, seed=1)
    db = MilvusKeyframeDatabase(32, str(tmp_path_factory.mktemp("milvus") / "kf.db"))
    fill(db, desc, robots, stamps)
    yield db, desc, robots, stamps
    db.close()


def test_milvus_equals_faiss_backend(milvus_synthetic):
    db, desc, robots, stamps = milvus_synthetic
    faiss_db = KeyframeDatabase(32)
    fill(faiss_db, desc, robots, stamps, extras=False)
    rng = np.random.default_rng(11)
    for _ in range(20):
        q = desc[rng.integers(0, len(desc))] + 0.3 * rng.standard_normal(32)
        rules = dict(robot_id=str(rng.choice(ROBOTS)), stamp=float(stamps[-1]), exclude_recent_keyframes=20,
                     exclude_recent_seconds=10.0, robot_filter=str(rng.choice(["all", "inter_robot"])))
        a, b = db.search(q, 10, **rules), faiss_db.search(q, 10, **rules)
        assert a.keyframe_ids.tolist() == b.keyframe_ids.tolist() and a.robot_ids == b.robot_ids
        np.testing.assert_allclose(a.distances, b.distances, atol=2e-5)


def test_milvus_extras_roundtrip(milvus_synthetic):
    db = milvus_synthetic[0]
    cands, extras = db.search_with_extras(milvus_synthetic[1][42], 5, robot_id="alpha")
    assert cands.keyframe_ids[0] == 42 and set(extras) == {"regions", "areas"}
    assert extras["regions"].dtype == np.float16 and extras["regions"].shape == (5, 4, 6)
    np.testing.assert_array_equal(extras["areas"][:, 0], cands.keyframe_ids.astype(np.float32))
    again = db.get_extras(cands.rows)
    for key in extras:
        np.testing.assert_array_equal(again[key], extras[key])


def test_milvus_remove_keeps_the_recent_window_and_reopens(tmp_path):
    desc, robots, stamps = make_keyframes(400, 16, seed=5)
    path = str(tmp_path / "kf.db")
    db = MilvusKeyframeDatabase(16, path)
    fill(db, desc, robots, stamps, extras=False)
    alive = np.ones(len(desc), bool)
    last_alpha = [i for i in range(len(desc)) if robots[i] == "alpha"][-6:]
    assert db.remove(last_alpha[-3:], robot_id="alpha") == 3  # the newest: the counter must not go back
    assert db.remove([1, 2, 3]) == 3  # every robot's ids 1..3
    assert db.remove([10**6], robot_id="alpha") == 0
    alive[last_alpha[-3:]] = False
    alive[[1, 2, 3]] = False
    assert len(db) == int(alive.sum())
    check_against_brute_force(db, desc, robots, stamps, alive, np.random.default_rng(3), queries=20)
    db.close()
    reopened = MilvusKeyframeDatabase(16, path)  # a restarted node: counters come from the collection
    assert len(reopened) == int(alive.sum())
    check_against_brute_force(reopened, desc, robots, stamps, alive, np.random.default_rng(4), queries=20)
    # The window "alpha's last 3 added" is the 3 removed keyframes, after a restart too:
    # alpha's newest remaining keyframe is a valid candidate of its own query.
    newest = last_alpha[-4]
    got = reopened.search(desc[newest], 1, robot_id="alpha", robot_filter="intra_robot", exclude_recent_keyframes=3)
    assert got.keyframe_ids.tolist() == [newest]
    with pytest.raises(ValueError, match="already in the database"):
        reopened.add(5, robots[5], 1.0, desc[5])
    reopened.add(1, robots[1], float(stamps[1]), desc[1])  # a removed id may come back
    assert len(reopened) == int(alive.sum()) + 1
    reopened.close()


def test_milvus_add_validation_names_the_field(tmp_path):
    db = MilvusKeyframeDatabase(8, str(tmp_path / "kf.db"))
    v = np.ones(8)
    for args, field in [((1, "r", float("nan"), v), "stamp"), ((1, "r", 0.0, np.zeros(8)), "descriptor"),
                        ((2**63, "r", 0.0, v), "keyframe_id"), ((1, "", 0.0, v), "robot_id"),
                        ((1, "r", 0.0, v, {"big": np.zeros(40_000, np.float32)}), "extras")]:
        with pytest.raises(ValueError, match=field):
            db.add(*args)
    assert len(db) == 0
    db.add(1, "r", 0.0, v, {"a": np.ones(3, np.float32)})
    assert db.bytes_per_keyframe() == 8 * 4 + 64 + (16 + 48)  # vector, scalars, base64 of 12 B + JSON keys
    with pytest.raises(ValueError, match=r"extras\['a'\]"):
        db.add(2, "r", 0.0, v, {"a": np.ones(4, np.float32)})
    with pytest.raises(ValueError, match="dim"):
        MilvusKeyframeDatabase(16, str(tmp_path / "kf.db"))
    assert len(db) == 1
    db.close()


def test_milvus_robot_ids_with_quotes_are_filtered_exactly(tmp_path):
    db = MilvusKeyframeDatabase(4, str(tmp_path / "kf.db"))
    odd = ['a"b', "a\\", "a' or robot_id != 'x", "a"]
    for i, r in enumerate(odd):
        db.add(i, r, float(i), np.eye(4)[0] + 0.01 * i)
    for r in odd:
        got = db.search(np.eye(4)[0], 10, robot_id=r, robot_filter="intra_robot")
        assert got.robot_ids == [r]
        assert r not in db.search(np.eye(4)[0], 10, robot_id=r, robot_filter="inter_robot").robot_ids
    db.close()


def test_search_filter_expressions():
    assert search_filter(None, 1.0, 5, 3, 2.0, "all") == ""
    assert search_filter("r", None, 5, 0, 2.0, "all") == ""  # no rule applies
    assert search_filter("r", 1.0, 5, 0, 0.0, "inter_robot") == 'robot_id != "r"'
    assert search_filter("r", 10.0, 5, 3, 2.0, "intra_robot") == \
        'robot_id == "r" and not (seq >= 2 or (stamp > 8.0 and stamp < 12.0))'
    assert keyframe_pk("r", 1) != keyframe_pk("r", 2) != keyframe_pk("s", 1)
    assert 0 <= keyframe_pk("r", -(2**63)) < 2**63


def test_backend_factory(tmp_path):
    assert isinstance(make_database(MaqboolConfig(), 8), KeyframeDatabase)  # default: faiss, no server
    cfg = MaqboolConfig(database_backend="milvus", database_uri=str(tmp_path / "kf.db"))
    db = make_database(cfg, 8)
    assert isinstance(db, MilvusKeyframeDatabase) and db.collection == cfg.database_collection
    db.close()
    with pytest.raises(ValueError, match="database_uri"):
        make_database(MaqboolConfig(database_backend="milvus"), 8)



def test_pipeline_evaluation_same_with_both_backends(tmp_path):
    # The pipeline end to end (engine -> database -> re-ranking) on a tiny model and
    # query/ref set: the milvus backend ranks every query exactly like faiss.
    from helpers.tiny_models import IMAGE_SIZE, tiny_model, tiny_query_ref
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.evaluation.protocol import evaluate_offline

    model = tiny_model(tmp_path / "tiny.onnx", 64)
    dataset = load_dataset(str(tiny_query_ref(tmp_path / "data", count=8)))
    base = MaqboolConfig(model_path=str(model), image_width=IMAGE_SIZE[0], image_height=IMAGE_SIZE[1],
                         resize_policy="exact", device="cpu", sequence_length=1)  # milvus: single-frame only
    ranked = {}
    for backend in ("faiss", "milvus"):
        cfg = base.replace(database_backend=backend, database_uri=str(tmp_path / "kf.db"))
        summary, records, pipeline = evaluate_offline(dataset, cfg, progress=False)
        assert type(pipeline.database).__name__ == ("KeyframeDatabase" if backend == "faiss"
                                                     else "MilvusKeyframeDatabase")
        pipeline.close()
        ranked[backend] = ([r.ranked.tolist() for r in records], {k: v for k, v in summary.items() if "recall" in k})
    assert ranked["milvus"] == ranked["faiss"] and ranked["faiss"][1]


def test_timed_out_insert_that_was_applied_is_not_stored_twice(tmp_path):
    # An insert whose answer is lost (timeout) may still have been applied; its retry
    # checks the keys first, since Milvus would store a second row with the same key.
    db = MilvusKeyframeDatabase(8, str(tmp_path / "kf.db"))
    db.outbox._backoff = (0.01, 0.05)
    client, real_insert, lost = db._client._client, db._client._client.insert, []

    def applied_then_timeout(*args, **kwargs):
        real_insert(*args, **kwargs)
        if not lost:
            lost.append(1)
            raise TimeoutError("deadline exceeded")

    client.insert = applied_then_timeout
    db.add(1, "r", 0.0, np.ones(8))  # accepted: buffered after the "timeout"
    assert len(db.outbox) == 1 and db.outbox.stats.failed_attempts == 1
    db.flush()  # retried: found stored, not inserted again
    assert len(db.outbox) == 0 and db.dropped_duplicates == 1
    assert db._server_count() == 1 and len(db) == 1
    assert db.search(np.ones(8), 5).keyframe_ids.tolist() == [1]
    db.close()


def test_collections_created_by_another_robot_meanwhile_are_used(tmp_path):
    # Two robots starting together: both see no collection, one creates it, the other's
    # create fails; that one must use the collection, not fail to start.
    from pymilvus import MilvusClient

    from maqbool_ros.core.database import milvus_store

    path = str(tmp_path / "kf.db")
    first = MilvusKeyframeDatabase(8, path)
    first.add(1, "a", 0.0, np.ones(8))
    client, asked = MilvusClient(uri=path), set()

    class Racing:  # has_collection says "no" once per name, as before the other robot's create
        def __getattr__(self, name):
            return getattr(client, name)

        def has_collection(self, name, **kw):
            if name not in asked:
                asked.add(name)
                return False
            return client.has_collection(name, **kw)

    milvus_store.open_collections(Racing(), "maqbool_keyframes", "maqbool_keyframes_robots", 8, "flat")
    assert asked == {"maqbool_keyframes", "maqbool_keyframes_robots"}
    assert first.search(np.ones(8), 3).keyframe_ids.tolist() == [1]
    first.close()
