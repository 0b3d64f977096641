"""Keyframe database integrity: every field is validated before anything is written, an
insert is all-or-nothing (memory and log), log replay skips and reports records it
cannot apply, and torn log tails are counted and kept (issue 11, defects 1 and 7)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from maqbool_ros.core.database import log as db_log
from maqbool_ros.core.database.keyframes import KeyframeDatabase
from maqbool_ros.core.database.storage import LOG_MAGIC

DIM = 8


def extras(kf: int) -> dict[str, np.ndarray]:
    return {"regions": np.full((3, 4), kf % 100, np.float16), "areas": np.arange(3, dtype=np.float32) + kf}


def vec(kf: int) -> np.ndarray:
    return np.random.default_rng(kf).standard_normal(DIM)


def add_good(db: KeyframeDatabase, ids, robot: str = "r") -> None:
    for i in ids:
        db.add(i, robot, float(i), vec(i), extras(i))


def log_file(root):
    return next(p for p in root.glob("log-*.bin"))


def assert_holds(db: KeyframeDatabase, ids, robot: str = "r") -> None:
    rows, kf_ids, robots = db.keyframes()
    assert sorted(kf_ids.tolist()) == sorted(ids) and set(robots) <= {robot}
    ex = db.get_extras(rows)
    np.testing.assert_array_equal(ex["areas"][:, 0], kf_ids.astype(np.float32))
    hit = db.search(vec(ids[-1]), 1)
    assert hit.keyframe_ids.tolist() == [ids[-1]]


BAD_ADDS = {  # name -> (keyword changes to a good add, field the error must name)
    "id 2**64": (dict(keyframe_id=2 ** 64), "keyframe_id"),
    "id -2**63-1": (dict(keyframe_id=-2 ** 63 - 1), "keyframe_id"),
    "id uint64 max": (dict(keyframe_id=np.uint64(2 ** 64 - 1)), "keyframe_id"),
    "id float": (dict(keyframe_id=3.0), "keyframe_id"),
    "id bool": (dict(keyframe_id=True), "keyframe_id"),
    "robot empty": (dict(robot_id=""), "robot_id"),
    "robot over-long": (dict(robot_id="x" * 1000), "robot_id"),
    "robot None": (dict(robot_id=None), "robot_id"),
    "robot control char": (dict(robot_id="a\nb"), "robot_id"),
    "stamp nan": (dict(stamp=float("nan")), "stamp"),
    "stamp inf": (dict(stamp=float("-inf")), "stamp"),
    "stamp text": (dict(stamp="noon"), "stamp"),
    "stamp None": (dict(stamp=None), "stamp"),
    "descriptor nan": (dict(descriptor=np.r_[np.ones(DIM - 1), np.nan]), "descriptor"),
    "descriptor inf": (dict(descriptor=np.r_[np.ones(DIM - 1), np.inf]), "descriptor"),
    "descriptor short": (dict(descriptor=np.ones(DIM - 1)), "descriptor"),
    "descriptor 2-D": (dict(descriptor=np.ones((2, DIM // 2))), "descriptor"),
    "descriptor text": (dict(descriptor=["a"] * DIM), "descriptor"),
    "descriptor complex": (dict(descriptor=np.ones(DIM, np.complex64)), "descriptor"),
    "descriptor zeros": (dict(descriptor=np.zeros(DIM)), "descriptor"),
    "extras wrong shape": (dict(extras={"regions": np.zeros((3, 5), np.float16)}), "extras['regions']"),
    "extras wrong dtype": (dict(extras={"regions": np.zeros((3, 4), np.float32)}), "extras['regions']"),
    "extras nan": (dict(extras={"areas": np.array([0, np.nan, 1], np.float32)}), "extras['areas']"),
    "extras new key nan": (dict(extras={"fresh": np.array([np.inf], np.float64)}), "extras['fresh']"),
    "extras object": (dict(extras={"fresh": np.array([object()])}), "extras['fresh']"),
    "extras complex": (dict(extras={"fresh": np.ones(2, np.complex64)}), "extras['fresh']"),
    "extras datetime": (dict(extras={"fresh": np.array(["2020-01-01"], "datetime64[D]")}), "extras['fresh']"),
    "extras bad key": (dict(extras={"../x": np.zeros(2)}), "extras key"),
    "extras not a dict": (dict(extras=[np.zeros(2)]), "extras"),
    "duplicate": (dict(keyframe_id=1), "already"),
}


@pytest.mark.parametrize("persistent", [False, True], ids=["memory", "persistent"])
@pytest.mark.parametrize("case", sorted(BAD_ADDS))
def test_bad_field_is_rejected_before_anything_is_written(tmp_path, persistent, case):
    """Each bad field raises a ValueError naming it; memory, log and columns are untouched,
    the database stays usable and reopens with every earlier keyframe."""
    root = tmp_path / "db"
    db = KeyframeDatabase.open(root, dim=DIM, flush_interval_s=0) if persistent else KeyframeDatabase(DIM)
    add_good(db, [0, 1, 2])
    log_before = db.log_bytes
    spec_before = db.extras_spec()
    good = dict(keyframe_id=3, robot_id="r", stamp=3.0, descriptor=vec(3), extras=extras(3))
    changes, field = BAD_ADDS[case]
    with pytest.raises(ValueError) as err:
        db.add(**{**good, **changes})
    assert field in str(err.value)
    assert len(db) == db.num_rows == 3 and db.log_bytes == log_before and db.extras_spec() == spec_before
    assert db.robots == ["r"]
    db.add(**good)  # still usable, columns in step
    assert_holds(db, [0, 1, 2, 3])
    if persistent:
        db.close()
        for again in (KeyframeDatabase.load(root), KeyframeDatabase.open(root, dim=DIM)):
            assert_holds(again, [0, 1, 2, 3])
            assert again.recovery_report.lost_records == 0
            again.close()


def test_id_policy_negative_and_extreme_ids_are_keyframes(tmp_path):
    """Negative ids and the int64 limits are valid ids (as before); only ids outside int64 are refused."""
    db = KeyframeDatabase.open(tmp_path / "db", dim=DIM)
    ids = [-5, 2 ** 63 - 1, -2 ** 63, int(np.int64(7))]
    for i in ids:
        db.add(i, "r", 0.0, vec(abs(i) % 1000 + 1), extras(0))
    db.add(np.int32(9), "r", 0.0, np.full(DIM, 1e300), extras(0))  # huge but finite: a valid direction
    np.testing.assert_allclose(db.descriptors([db.row_of(9, "r")])[0], np.full(DIM, DIM ** -0.5), rtol=1e-6)
    assert db.remove([2 ** 63 - 1], robot_id="r") == 1
    with pytest.raises(ValueError, match="keyframe_ids"):
        db.remove([2 ** 64])
    with pytest.raises(ValueError, match="keyframe_ids"):
        db.remove([1.5])
    db.close()
    assert sorted(KeyframeDatabase.load(tmp_path / "db").keyframes()[1].tolist()) == [-2 ** 63, -5, 7, 9]


def test_failure_inside_the_insert_rolls_back_memory_and_log(tmp_path, monkeypatch):
    """A failure after validation (here: the search index refuses the row) leaves neither a
    row nor a log record behind: later keyframes stay in step with their columns."""
    from maqbool_ros.core.database.index import HalfScan

    db = KeyframeDatabase.open(tmp_path / "db", dim=DIM)
    add_good(db, [0, 1])
    size, spec = db.log_bytes, db.extras_spec()
    real_add = HalfScan.add

    def broken(self, vector):
        raise MemoryError("simulated")

    monkeypatch.setattr(HalfScan, "add", broken)
    with pytest.raises(MemoryError):
        db.add(2, "newbot", 2.0, vec(2), {**extras(2), "new_key": np.ones(2, np.int32)})
    monkeypatch.setattr(HalfScan, "add", real_add)
    assert len(db) == db.num_rows == 2 and db.log_bytes == size and db.extras_spec() == spec
    assert db.robots == ["r"]
    add_good(db, [3, 4])
    assert_holds(db, [0, 1, 3, 4])
    db.close()
    assert_holds(KeyframeDatabase.load(tmp_path / "db"), [0, 1, 3, 4])


def append_raw(path, records: list[bytes]) -> None:
    with open(path, "ab") as f:
        for r in records:
            f.write(r)


def bad_records() -> list[bytes]:
    """Records an older, buggy version could have written: each passes the CRC but cannot be applied."""
    enc = db_log.encode_record
    good_arrays = {"descriptor": np.ones(DIM, np.float32)}
    return [
        enc({"op": "add", "kf": 2 ** 64, "robot": "r", "stamp": 1.0}, good_arrays),
        enc({"op": "add", "kf": 50, "robot": "r", "stamp": 1.0}, {"descriptor": np.ones(DIM + 3, np.float32)}),
        enc({"op": "add", "kf": 51, "robot": "r", "stamp": None}, good_arrays),
        enc({"op": "add", "kf": 1, "robot": "r", "stamp": 1.0}, good_arrays),  # duplicate of a snapshot row
        enc({"op": "add", "kf": 52, "robot": "r", "stamp": 1.0},
            {**good_arrays, "x.areas": np.ones(7, np.float32)}),  # extras shape differs from the column
        enc({"op": "add", "kf": 53, "robot": "", "stamp": 1.0}, good_arrays),
        enc({"op": "add", "kf": 54, "robot": "r", "stamp": 1.0}, {}),  # no descriptor
        enc({"op": "remove", "robot": "r", "ids": [2 ** 64]}, {}),
        enc({"op": "teleport", "kf": 5}, {}),
    ]


def test_replay_skips_and_reports_records_it_cannot_apply(tmp_path, caplog):
    root = tmp_path / "db"
    db = KeyframeDatabase.open(root, dim=DIM)
    add_good(db, [0, 1, 2])
    db.save()
    add_good(db, [3, 4])
    db.close()
    enc = db_log.encode_record
    good_after = [enc({"op": "add", "kf": k, "robot": "r", "stamp": float(k)},
                      {"descriptor": (vec(k) / np.linalg.norm(vec(k))).astype(np.float32),
                       **{f"x.{n}": a for n, a in extras(k).items()}}) for k in (5, 6)]
    bad = bad_records()
    append_raw(log_file(root), bad[:4] + good_after[:1] + bad[4:] + good_after[1:]
               + [enc({"op": "remove", "robot": "r", "ids": [4]}, {})])
    with caplog.at_level(logging.WARNING):
        loaded = KeyframeDatabase.load(root)
    assert_holds(loaded, [0, 1, 2, 3, 5, 6])
    report = loaded.recovery_report
    assert report.skipped_records == len(bad) and report.lost_records == len(bad) and report.torn_records == 0
    assert len(report.skipped_reasons) == len(bad) and any("keyframe_id" in r for r in report.skipped_reasons)
    assert report.skipped_copy is None  # load() writes nothing
    assert "skipped" in caplog.text and "keyframe_id" in caplog.text
    files_before = sorted(p.name for p in root.iterdir())
    db = KeyframeDatabase.open(root, dim=DIM)  # the node's start: succeeds, keeps the bad records aside
    assert sorted(p.name for p in root.iterdir()) != files_before
    copy = db.recovery_report.skipped_copy
    assert copy is not None and copy.is_file() and db.recovery_report.as_dict()["skipped_records"] == len(bad)
    kept = db_log.read_log(copy)
    assert len(kept.records) == len(bad)
    add_good(db, [7])
    db.save()  # compacts the good records into a snapshot; the copy stays
    db.close()
    assert copy.is_file()
    again = KeyframeDatabase.open(root, dim=DIM)
    assert_holds(again, [0, 1, 2, 3, 5, 6, 7])
    assert again.recovery_report.lost_records == 0
    again.close()


def test_torn_tail_is_counted_reported_and_its_copy_kept(tmp_path, caplog):
    root = tmp_path / "db"
    db = KeyframeDatabase.open(root, dim=DIM)
    add_good(db, range(5))
    db.close()
    logf = log_file(root)
    data = logf.read_bytes()
    logf.write_bytes(data[:-7])  # the last add was torn by a crash
    with caplog.at_level(logging.WARNING):
        loaded = KeyframeDatabase.load(root)
    assert len(loaded) == 4 and "1 record" in caplog.text
    assert loaded.recovery_report.torn_records == 1 and loaded.recovery_report.torn_bytes > 0
    assert loaded.recovery_report.torn_copy is None and logf.read_bytes() == data[:-7]  # load() writes nothing
    db = KeyframeDatabase.open(root, dim=DIM)
    first = db.recovery_report.torn_copy
    assert first is not None and first.read_bytes() == data[len(data) - db.recovery_report.torn_bytes - 7:-7]
    assert db.recovery_report.as_dict()["lost_records"] == 1
    add_good(db, [10, 11])
    db.close()
    logf = log_file(root)
    data = logf.read_bytes()
    logf.write_bytes(data[:-3])  # torn again, same generation
    db = KeyframeDatabase.open(root, dim=DIM)
    second = db.recovery_report.torn_copy
    assert second is not None and second != first and first.is_file() and second.is_file()
    db.save()  # a new generation: the torn copies are never deleted automatically
    add_good(db, [20])
    db.save()
    db.close()
    assert first.is_file() and second.is_file()
    assert sorted(KeyframeDatabase.load(root).keyframes()[1].tolist()) == [0, 1, 2, 3, 10, 20]


def test_truncation_inside_a_run_of_records_counts_every_record_started(tmp_path):
    """A log cut in the middle of record k with the start of record k+1 copied over it
    (e.g. zero-filled or half-written blocks): every record header seen in the dropped tail counts."""
    root = tmp_path / "db"
    db = KeyframeDatabase.open(root, dim=DIM)
    add_good(db, range(3))
    db.close()
    logf = log_file(root)
    recs = [db_log.encode_record({"op": "add", "kf": k, "robot": "r", "stamp": 0.0},
                                 {"descriptor": np.ones(DIM, np.float32)}) for k in (7, 8, 9)]
    with open(logf, "ab") as f:
        f.write(recs[0][:-5] + recs[1][:30] + recs[2][:-1])  # three damaged records, none whole
    report = KeyframeDatabase.load(root).recovery_report
    assert report.torn_records == 3 and report.torn_bytes == len(recs[0]) - 5 + 30 + len(recs[2]) - 1


def test_clean_database_reports_nothing(tmp_path):
    assert KeyframeDatabase(DIM).recovery_report.lost_records == 0
    db = KeyframeDatabase.open(tmp_path / "db", dim=DIM)
    add_good(db, [0])
    db.close()
    report = KeyframeDatabase.open(tmp_path / "db", dim=DIM).recovery_report
    assert report.as_dict() == {"torn_records": 0, "torn_bytes": 0, "torn_copy": None, "skipped_records": 0,
                                "skipped_reasons": [], "skipped_copy": None, "lost_records": 0,
                                "lost_records_exact": True, "lost_records_text": "0"}
    assert not [p for p in (tmp_path / "db").iterdir() if ".torn" in p.name or ".skipped" in p.name]
    assert (tmp_path / "db" / log_file(tmp_path / "db").name).read_bytes().startswith(LOG_MAGIC)
    assert os.path.exists(tmp_path / "db" / "manifest.json")


def test_truncated_log_reports_an_honest_lower_bound_and_keeps_the_whole_tail(tmp_path):
    """A log truncated to 44 bytes lost 10 records; the log cannot say how many followed the
    cut, so the report must say "at least 1" (not "1") and keep every byte after the last whole record."""
    root = tmp_path / "db"
    db = KeyframeDatabase.open(root, dim=DIM)
    add_good(db, range(10))
    db.close()
    logf = log_file(root)
    data = logf.read_bytes()[:44]
    logf.write_bytes(data)
    db = KeyframeDatabase.open(root, dim=DIM)
    report = db.recovery_report.as_dict()
    db.close()
    assert report["lost_records"] == 1 and report["lost_records_exact"] is False
    assert report["lost_records_text"].startswith("at least 1 ") and "unknown" in report["lost_records_text"]
    assert Path(report["torn_copy"]).read_bytes() == data[len(LOG_MAGIC):]  # the whole torn tail
    pytest.importorskip("diagnostic_msgs", reason="the node's diagnostics need ROS 2 messages")
    from maqbool_ros.ros.stats import Health  # the diagnostics say it too

    assert "at least 1 " in Health().assess({}, 0.0, report)[1]
