"""The keyframe database owns its lock (issue 12): every public method, the deferred
flush timer included, runs under it, so callers need no lock of their own."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from maqbool_ros.core.database import log as db_log
from maqbool_ros.core.database.keyframes import KeyframeDatabase

DIM = 8


def vec(kf: int) -> np.ndarray:
    return np.random.default_rng(kf).standard_normal(DIM)


def extras(kf: int) -> dict[str, np.ndarray]:
    return {"areas": np.full(2, kf, np.float32)}


def test_timed_flush_runs_under_the_database_lock(tmp_path, monkeypatch):
    seen: list[bool] = []
    fired = threading.Event()
    real_flush = db_log.LogWriter.flush

    def spy(self):
        if threading.current_thread() is not threading.main_thread():
            seen.append(db._lock._is_owned())
            fired.set()
        real_flush(self)

    monkeypatch.setattr(db_log.LogWriter, "flush", spy)
    db = KeyframeDatabase.open(tmp_path / "db", dim=DIM, flush_interval_s=0.2)
    db.add(0, "r", 0.0, vec(0))  # first add after open: the interval has not elapsed, a timer is armed
    assert fired.wait(10.0), "the deferred flush never ran"
    assert seen == [True]
    db.close()


def test_concurrent_writers_readers_and_saves_stay_consistent(tmp_path):
    """Adds, removes, snapshot saves (which renumber rows), searches with their region
    cache and flushes from several threads: every answer's extras belong to its keyframes,
    nothing raises, and the reopened database holds exactly what the writer kept."""
    db = KeyframeDatabase.open(tmp_path / "db", dim=DIM, flush_interval_s=0.01)
    errors: list[BaseException] = []
    done = threading.Event()
    kept: set[int] = set()

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)
            finally:
                done.set()
        return run

    def writer():
        for i in range(400):
            db.add(i, f"r{i % 2}", float(i), vec(i), extras(i))
            kept.add(i)
            if i % 5 == 4:
                db.remove([i - 2], robot_id=f"r{(i - 2) % 2}")
                kept.discard(i - 2)
            if i % 97 == 96:
                db.save()

    def reader():
        rng = np.random.default_rng(1)
        while not done.is_set():
            cands, ex = db.search_with_extras(rng.standard_normal(DIM), 10, robot_id="r0",
                                              exclude_recent_keyframes=3)
            if len(cands):
                np.testing.assert_array_equal(ex["areas"][:, 0], cands.keyframe_ids.astype(np.float32))

    def flusher():
        while not done.is_set():
            db.flush()
            _ = len(db), db.log_bytes, db.keyframes()

    threads = [threading.Thread(target=guard(f)) for f in (writer, reader, flusher)]
    for t in threads:
        t.start()
    threads[0].join(120)
    done.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    db.close()
    again = KeyframeDatabase.load(tmp_path / "db")
    assert set(again.keyframes()[1].tolist()) == kept


@pytest.mark.parametrize("persistent", [False, True], ids=["memory", "persistent"])
def test_reset_empties_the_same_object_and_keeps_old_files(tmp_path, persistent):
    root = tmp_path / "db"
    db = KeyframeDatabase.open(root, dim=DIM) if persistent else KeyframeDatabase(DIM)
    for i in range(5):
        db.add(i, "r", float(i), vec(i), extras(i))
    db.reset()
    assert len(db) == db.num_rows == 0 and db.robots == [] and db.extras_spec() == {}
    assert len(db.search(vec(1), 3)) == 0
    db.add(1, "r", 1.0, vec(1), {"other": np.ones(3, np.int8)})  # a fresh schema is accepted
    assert db.search(vec(1), 1).keyframe_ids.tolist() == [1]
    if persistent:
        with pytest.raises(RuntimeError, match="open for writing elsewhere"):
            KeyframeDatabase.open(root, dim=DIM)  # still this writer's directory
        db.close()
        aside = list(tmp_path.glob("db.prev-*"))
        assert len(aside) == 1 and sorted(KeyframeDatabase.load(aside[0]).keyframes()[1].tolist()) == list(range(5))
        assert KeyframeDatabase.load(root).keyframes()[1].tolist() == [1]
