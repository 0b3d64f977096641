"""Bounded hand-over queues: never block, drop by policy, count every drop."""
from __future__ import annotations

import threading

import pytest

from maqbool_ros.ros.queues import Closed, DropQueue
from maqbool_ros.ros.stats import LatencyStats


def test_drop_oldest_keeps_newest_and_counts():
    q = DropQueue(3, "drop_oldest")
    drops = [q.put(i) for i in range(10)]
    assert sum(drops) == 7 and q.dropped == 7 and len(q) == 3
    assert [q.get(timeout=1) for _ in range(3)] == [7, 8, 9]


def test_keep_latest_holds_one():
    q = DropQueue(5, "keep_latest")
    for i in range(4):
        q.put(i)
    assert len(q) == 1 and q.dropped == 3 and q.get(timeout=1) == 3


def test_close_wakes_consumer_after_draining():
    q = DropQueue(2)
    q.put("a")
    got = []

    def consume():
        while True:
            try:
                got.append(q.get())
            except Closed:
                return

    t = threading.Thread(target=consume)
    t.start()
    q.close()
    t.join(timeout=5)
    assert not t.is_alive() and got == ["a"]
    with pytest.raises(TimeoutError):
        DropQueue(1).get(timeout=0.01)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="queue_size"):
        DropQueue(0)
    with pytest.raises(ValueError, match="overload_policy"):
        DropQueue(2, "block")


def test_latency_percentiles():
    s = LatencyStats(window=100)
    for v in range(1, 201):
        s.add({"total": float(v)})
    row = s.summary()["total"]
    assert row["count"] == 100 and row["p50"] == pytest.approx(150.5)


def test_taken_items_stay_visible_until_done():
    q = DropQueue(4)
    q.put("a")
    q.put("b")
    assert q.get(timeout=1) == "a"
    assert len(q) == 1 and q.pending() == 2
    assert q.counters() == {"accepted": 2, "dropped": 0, "waiting": 1, "in_flight": 1}
    q.done()
    assert q.pending() == 1


def test_health_warns_on_recent_problems_only():
    from maqbool_ros.ros.stats import OK, WARN, Health

    now = [0.0]
    h = Health(clock=lambda: now[0])
    h.keyframe()
    assert h.assess({"dropped_ingress": 0}, 30.0)[0] == OK
    level, text = h.assess({"dropped_ingress": 2}, 30.0)
    assert level == WARN and "2 dropped ingress" in text
    assert h.assess({"dropped_ingress": 2}, 30.0)[0] == OK  # nothing new since the last period
    now[0] = 31.0
    level, text = h.assess({"dropped_ingress": 2}, 30.0)
    assert level == WARN and "no keyframe for 31 s" in text


def test_health_warns_while_log_records_are_lost():
    from maqbool_ros.ros.stats import OK, WARN, Health

    h = Health(clock=lambda: 0.0)
    h.keyframe()
    assert h.assess({}, 30.0, {"lost_records": 0})[0] == OK
    for _ in range(2):  # not a one-period event: it stays until the map is reset
        level, text = h.assess({}, 30.0, {"lost_records": 3, "torn_copy": "/m/log-1.bin.torn"})
        assert level == WARN and "3 database log record(s) lost" in text and "log-1.bin.torn" in text
