"""The real node (`maqbool-node` in its own process) driven over real ROS 2 topics."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.configs import SINGLE_FRAME  # noqa: E402
from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess, drained  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.data.datasets import load_query_ref_folder  # noqa: E402
from maqbool_ros.core.evaluation.protocol import evaluate_offline, protocol_config, records_from_candidates, summarize  # noqa: E402

# Corridor images are 160x120: run them at native size so the test is quick; the same
# settings feed the offline evaluation we compare against.
# Single-frame: the replay puts refs and queries on one stream, the offline protocol on two.
CORRIDOR_CFG = MaqboolConfig(**IMAGE_INPUT, **SINGLE_FRAME, method="netvlad", resize_policy="native", top_k=20)


pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


@pytest.fixture(scope="module")
def corridor(corridor_dir):
    return load_query_ref_folder(corridor_dir)


@pytest.fixture(scope="module")
def offline_recall(corridor):
    summary, _, _ = evaluate_offline(corridor, CORRIDOR_CFG, progress=False)
    return summary


def _replay_corridor(driver: Driver, corridor, compressed: bool) -> None:
    """Refs (inserted), then queries (query only), one keyframe at a time."""
    base = len(corridor.refs)
    root = Path(corridor.source)

    def msg(kind: str, images, i: int, kf_id: int):
        if compressed:
            return driver.image_msg(frame_id=str(kf_id), jpeg=(root / kind / images.names[i]).read_bytes())
        return driver.image_msg(images[i], frame_id=str(kf_id))

    for r in range(base):
        driver.publish_and_wait(msg("ref", corridor.refs, r, r))
    assert driver.set_parameter("database.insert_keyframes", False) == (True, "")
    for q in range(len(corridor.queries)):
        out = driver.publish_and_wait(msg("query", corridor.queries, q, base + q))
        assert out.query_keyframe_id == base + q and out.method == "netvlad"


@pytest.mark.parametrize("compressed", [False, True], ids=["Image", "CompressedImage"])
def test_node_recall_equals_offline_eval_and_survives_bad_input(tmp_path, corridor, offline_recall, compressed):
    cfg = protocol_config(corridor, CORRIDOR_CFG).replace(
        image_transport="compressed" if compressed else "raw", stats_period_s=0.5)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node, compressed=compressed)
    try:
        driver.wait_for_node()
        _replay_corridor(driver, corridor, compressed)
        online = summarize(corridor, records_from_candidates(corridor, driver.candidates))
        assert online["num_queries"] == len(corridor.queries)
        assert online["recall@1"] == pytest.approx(offline_recall["recall@1"], abs=1e-9)
        assert online["recall@5"] == pytest.approx(offline_recall["recall@5"], abs=1e-9)

        # Malformed keyframes are logged and counted; the database is untouched.
        size_before = driver.latest_stats()["database_size"]
        published_before = len(driver.candidates)
        if compressed:
            jpeg = (Path(corridor.source) / "query" / corridor.queries.names[0]).read_bytes()
            bad = [driver.image_msg(jpeg=jpeg[:200]), driver.image_msg(jpeg=b"")]
        else:
            wrong_step = driver.image_msg(corridor.queries[0])
            wrong_step.step = 10
            unknown = driver.image_msg(corridor.queries[0])
            unknown.encoding = "yuv422_weird"
            empty = driver.image_msg(np.zeros((0, 0, 3), np.uint8))
            bad = [wrong_step, unknown, empty]
        for m in bad:
            driver.pub.publish(m)
        driver.wait_stats(lambda s: s["counts"].get("malformed_images", 0) == len(bad), 30,
                          "malformed images to be counted")
        stats = driver.latest_stats()
        assert stats["database_size"] == size_before == len(corridor.refs)
        assert len(driver.candidates) == published_before and node.alive()
        assert "malformed images" in node.log_text()
        # and it keeps working
        assert driver.set_parameter("database.insert_keyframes", True) == (True, "")
        if compressed:
            jpeg = (Path(corridor.source) / "query" / corridor.queries.names[1]).read_bytes()
            good = driver.image_msg(frame_id="9999", jpeg=jpeg)
        else:
            good = driver.image_msg(corridor.queries[1], frame_id="9999")
        after = driver.publish_and_wait(good)
        assert after.query_keyframe_id == 9999
        assert driver.latest_stats()["database_size"] == len(corridor.refs) + 1
    finally:
        driver.close()
        assert node.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_node_shuts_down_cleanly_on_signals(tmp_path, sig):
    node = NodeProcess(MaqboolConfig(**IMAGE_INPUT, method="netvlad"), tmp_path)
    driver = Driver(node)
    try:
        driver.wait_for_node()
    finally:
        driver.close()
    assert node.stop(sig, timeout=30) == 0
    assert "Traceback" not in node.log_text()


def test_region_budget_changes_live_and_rejects_out_of_range(tmp_path, corridor):
    cfg = MaqboolConfig(**IMAGE_INPUT, method="maqbool", region_budget=50, exclude_recent_keyframes=0,
                        exclude_recent_seconds=0.0, top_k=10)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node)
    try:
        driver.wait_for_node()
        for r in range(4):
            driver.publish_and_wait(driver.image_msg(corridor.refs[r], frame_id=str(r)))
        before = driver.publish_and_wait(driver.image_msg(corridor.queries[0], frame_id="100"))
        assert before.method == "maqbool" and before.region_budget == 50
        ok, reason = driver.set_parameter("maqbool.region_budget", 5)
        assert ok, reason
        after = driver.publish_and_wait(driver.image_msg(corridor.queries[1], frame_id="101"))
        assert after.region_budget == 5 and len(after.candidates) > 0
        for bad in (51, 4):
            ok, reason = driver.set_parameter("maqbool.region_budget", bad)
            assert not ok and "region_budget" in reason
        ok, reason = driver.set_parameter("rerank.method", "landmarks")  # read-only while running
        assert not ok and "method" in reason
        again = driver.publish_and_wait(driver.image_msg(corridor.queries[2], frame_id="102"))
        assert again.region_budget == 5
    finally:
        driver.close()
        assert node.stop() == 0


def test_flood_drops_and_counts_but_stays_responsive(tmp_path):
    """Publish 10x faster than the node processes: bounded memory, counted drops, no crash,
    and every keyframe the node received is accounted for once the backlog is worked off."""
    cfg = MaqboolConfig(**IMAGE_INPUT, method="maqbool", queue_size=4, stats_period_s=0.5)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node)
    rng = np.random.default_rng(0)
    frames = [np.ascontiguousarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) for _ in range(4)]
    try:
        driver.wait_for_node()
        t0 = time.monotonic()
        for i in range(3):  # warm up and measure the processing time per keyframe
            driver.publish_and_wait(driver.image_msg(frames[i % 4], frame_id=str(i)))
        per_keyframe = (time.monotonic() - t0) / 3
        rss_start = node.rss_mb()
        period = per_keyframe / 10
        n = max(60, int(8.0 / period))
        for i in range(n):
            driver.pub.publish(driver.image_msg(frames[i % 4], frame_id=str(100 + i)))
            time.sleep(period)
        # responsive: a parameter change is served while the backlog is worked off
        assert driver.set_parameter("maqbool.region_budget", 10, timeout=30) == (True, "")
        assert node.alive()
        assert node.rss_mb() - rss_start < 300, (rss_start, node.rss_mb())
        stats = driver.wait_stats(drained, 120, "the backlog to drain")
        counts = stats["counts"]
        assert max(stats["queue_depth"].values()) <= cfg.queue_size
        dropped = counts.get("dropped_ingress", 0) + counts.get("dropped_rerank", 0)
        assert dropped > 0, stats
        # DDS may drop samples before the callback under a flood (reader history depth), but
        # nothing the node received may vanish: once drained, received = processed + dropped.
        assert 0.5 * (n + 3) <= counts["received"] <= n + 3
        assert counts["received"] == counts["accepted"] == counts["processed"] + dropped, stats
        last = driver.publish_and_wait(driver.image_msg(frames[0], frame_id="99999"))
        assert last.query_keyframe_id == 99999 and last.region_budget == 10
    finally:
        driver.close()
        assert node.stop() == 0


def test_database_persists_across_restarts_and_services(tmp_path, corridor):
    """save/reset services, and a restart with default parameters keeps the map."""
    db = tmp_path / "map"
    cfg = MaqboolConfig(**IMAGE_INPUT, **SINGLE_FRAME, method="netvlad", resize_policy="native", database_path=str(db),
                        save_interval_s=0.0, stats_period_s=0.5,
                        exclude_recent_keyframes=0, exclude_recent_seconds=0.0)

    node = NodeProcess(cfg, tmp_path, "first")
    driver = Driver(node)
    try:
        driver.wait_for_node()
        for r in range(5):
            driver.publish_and_wait(driver.image_msg(corridor.refs[r], frame_id=str(r)))
        saved = driver.call_trigger("save_database")
        assert saved.success and "5 keyframes" in saved.message
    finally:
        driver.close()
    assert node.stop(signal.SIGTERM) == 0

    node = NodeProcess(cfg, tmp_path, "second")
    driver = Driver(node)
    try:
        driver.wait_for_node()
        assert driver.latest_stats()["database_size"] == 5
        assert not list(tmp_path.glob("map.prev-*")), "a restart with defaults must not move the map aside"
        again = driver.publish_and_wait(driver.image_msg(corridor.refs[2], frame_id="50"))
        assert again.candidates[0].keyframe_id == 2  # the reloaded map answers
        reset = driver.call_trigger("reset_database")
        assert reset.success
        assert driver.latest_stats()["database_size"] == 0
        assert list(tmp_path.glob("map.prev-*")), "reset must keep the old map on disk"
    finally:
        driver.close()
        assert node.stop() == 0
