"""Several robots on one Milvus database: two processes writing to and querying one
milvus-lite server, and a server outage (stop, restart) that loses no accepted keyframe."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus is not installed (requirements-python.txt pins it)")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (requirements-python.txt pins it)")

from helpers.milvus_server import MilvusLiteServer  # noqa: E402
from maqbool_ros.core.database.milvus import MilvusKeyframeDatabase  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLACES, DIM = 60, 32

# One robot: adds its keyframes (the shared places, its own noise) through the pipeline's
# backend factory, waits until the other robot's are visible, then queries inter_robot.
ROBOT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.database.backend import make_database
    uri, robot, seed, places, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    centres = np.random.default_rng(0).standard_normal((places, dim))
    rng = np.random.default_rng(seed)
    db = make_database(MaqboolConfig(database_backend="milvus", database_uri=uri, database_map_id=robot), dim)
    for p in range(places):
        db.add(p, robot, float(p), centres[p] + 0.2 * rng.standard_normal(dim))
    deadline = time.monotonic() + 120
    while db._server_count() < 2 * places:  # the other robot may still be writing
        if time.monotonic() > deadline:
            raise SystemExit("the other robot's keyframes never appeared")
        time.sleep(0.1)
    found = []
    for p in range(places):
        c = db.search(centres[p] + 0.2 * rng.standard_normal(dim), 3, robot_id=robot, stamp=float(places),
                      exclude_recent_keyframes=20, exclude_recent_seconds=10.0, robot_filter="inter_robot")
        found.append([c.robot_ids, c.keyframe_ids.tolist()])
    db.close()
    print(json.dumps(found))
""")


@pytest.fixture
def server(tmp_path):
    srv = MilvusLiteServer(tmp_path / "milvus").start()
    yield srv
    srv.stop()


def test_two_robot_processes_share_one_database(server):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = {robot: subprocess.Popen([sys.executable, "-c", ROBOT, server.uri, robot, str(seed), str(PLACES), str(DIM)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for robot, seed in (("robot_a", 1), ("robot_b", 2))}
    try:
        outputs = {robot: proc.communicate(timeout=300) for robot, proc in procs.items()}
    finally:
        for proc in procs.values():  # a timed-out robot must not outlive the test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for robot, (out, err) in outputs.items():
        assert procs[robot].returncode == 0, err[-3000:]
        found = json.loads(out.strip().splitlines()[-1])
        other = "robot_b" if robot == "robot_a" else "robot_a"
        assert all(set(robots) == {other} for robots, _ in found)  # inter_robot: the other robot only
        top1 = [ids[0] == p for p, (_, ids) in enumerate(found)]
        assert sum(top1) >= 0.9 * PLACES  # the same place, seen by the other robot
    db = MilvusKeyframeDatabase(DIM, server.uri)
    assert len(db) == 2 * PLACES
    db.close()


def wait_until(cond, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_server_restart_loses_no_accepted_keyframe(server):
    rng = np.random.default_rng(4)
    desc = rng.standard_normal((60, DIM))
    db = MilvusKeyframeDatabase(DIM, server.uri, buffer_max=30, timeout_s=2.0)
    db.outbox._backoff = (0.05, 0.5)  # short backoff: the test need not wait for the default 10 s cap
    for i in range(20):
        db.add(i, "r", float(i), desc[i], {"a": np.full(3, i, np.float32)})
    # Let milvus-lite persist what it acknowledged before the outage: stopped while still writing
    # its segment, it once came back unable to read it ("file seems not fully written"), a
    # milvus-lite matter, not the outbox's that this test is about.
    db.flush()
    server.stop()
    accepted = list(range(20))
    for i in range(20, 60):  # while the server is down: buffered up to buffer_max, then refused
        try:
            db.add(i, "r", float(i), desc[i], {"a": np.full(3, i, np.float32)})
            accepted.append(i)
        except ValueError as e:
            assert "database_buffer_max" in str(e)
    assert accepted == list(range(50))  # 30 buffered, 10 refused
    assert db.outbox.stats.failed_attempts >= 1 and db.outbox.stats.refused_full == 10
    assert len(db) == 50
    assert len(db.search(desc[0], 5, robot_id="r")) == 0 and db.search_failures == 1  # no exception
    server.start()
    wait_until(lambda: len(db.outbox) == 0, "the retry thread delivering the buffer")
    assert db.outbox.stats.delivered_late == 30
    report = db.outage_report()  # how many waited, and for how long
    assert report["outages"] == 1 and report["max_buffered"] == 30 and report["buffered"] == 0
    assert report["longest_wait_s"] > 0 and report["outage_s_total"] > 0 and report["waiting_s"] == 0
    db.flush()
    db.close()
    server.stop()  # and once more: what the server acknowledged survives its restart
    server.start()
    fresh = MilvusKeyframeDatabase(DIM, server.uri)
    assert len(fresh) == 50
    for i in accepted:
        c, ex = fresh.search_with_extras(desc[i], 1, robot_id="r")
        assert c.keyframe_ids.tolist() == [i] and c.distances[0] < 1e-5 and ex["a"][0, 0] == i
    # insertion numbers continued in order across the outage: the last 5 added are 45..49
    got = fresh.search(desc[47], 60, robot_id="r", exclude_recent_keyframes=5)
    assert set(got.keyframe_ids.tolist()) == set(range(45))
    fresh.close()
