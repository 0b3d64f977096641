"""The real node's input QoS and /diagnostics health (issue #11 defects 9 and 10)."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402

from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

SMALL = MaqboolConfig(**IMAGE_INPUT, method="netvlad", resize_policy="native", stats_period_s=0.3,
                      exclude_recent_keyframes=0, exclude_recent_seconds=0.0)


pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def _frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)


def _values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_best_effort_publisher_reaches_the_node_with_default_qos(tmp_path):
    node = NodeProcess(SMALL, tmp_path)
    driver = Driver(node, reliability=ReliabilityPolicy.BEST_EFFORT)
    try:
        driver.wait_for_node()
        for i in range(3):
            assert driver.publish_and_wait(driver.image_msg(_frame(i), frame_id=str(i)), timeout=60)
        stats = driver.latest_stats()
        assert stats["counts"]["processed"] == 3
        assert stats["counts"].get("qos_best_effort_fallbacks") == 1
    finally:
        driver.close()
        assert node.stop() == 0


def test_incompatible_qos_and_silence_show_in_diagnostics(tmp_path):
    """reliable subscription + best-effort publisher: ERROR naming QoS; no keyframe: WARN."""
    cfg = SMALL.replace(image_qos_reliability="reliable", no_keyframe_timeout_s=1.0)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node, reliability=ReliabilityPolicy.BEST_EFFORT)
    try:
        # silence first: WARN, with the node's full name in the status name and the figures as key-values
        driver.wait_until(lambda: any("no keyframe" in s.message for s in driver.diagnostics), 60,
                          "a no-keyframe warning")
        status = next(s for s in driver.diagnostics if "no keyframe" in s.message)
        assert status.name == f"{node.fqn}: loop closure"
        assert status.level in (DiagnosticStatus.WARN, DiagnosticStatus.ERROR)
        assert _values(status)["database_size"] == "0" and _values(status)["count.accepted"] == "0"
        driver.wait_until(lambda: any(s.level == DiagnosticStatus.ERROR and "incompatible QoS" in s.message
                                      for s in driver.diagnostics), 60, "an incompatible-QoS error")
        assert "RELIABILITY" in next(s.message for s in driver.diagnostics if "incompatible QoS" in s.message)
    finally:
        driver.close()
        assert node.stop() == 0


def test_warning_reflects_recent_drops_only(tmp_path):
    """A malformed keyframe makes the next status WARN; later periods without problems are OK."""
    node = NodeProcess(SMALL, tmp_path)
    driver = Driver(node)
    try:
        driver.wait_for_node()
        driver.publish_and_wait(driver.image_msg(_frame(0), frame_id="0"))
        bad = driver.image_msg(_frame(1), frame_id="1")
        bad.step = 7
        driver.pub.publish(bad)
        driver.wait_until(lambda: any(s.level == DiagnosticStatus.WARN and "malformed images" in s.message
                                      for s in driver.diagnostics), 60, "a WARN for the malformed keyframe")
        warned = next(i for i, s in enumerate(driver.diagnostics) if "malformed images" in s.message)
        driver.wait_until(lambda: any(s.level == DiagnosticStatus.OK for s in driver.diagnostics[warned:]), 60,
                          "the status to return to OK")
        ok = next(s for s in driver.diagnostics[warned:] if s.level == DiagnosticStatus.OK)
        assert _values(ok)["count.malformed_images"] == "1" and _values(ok)["count.processed"] == "1"
    finally:
        driver.close()
        assert node.stop() == 0


def test_lost_log_records_show_in_stats_and_diagnostics(tmp_path):
    """A map whose append log was torn by a crash opens, and the loss is reported (issue #11.7)."""
    from maqbool_ros.core.database import KeyframeDatabase

    root = tmp_path / "map"
    db = KeyframeDatabase.open(root, dim=512)
    rng = np.random.default_rng(0)
    for i in range(4):
        db.add(i, "robot0", float(i), rng.standard_normal(512).astype(np.float32))
    db.close()
    log = next(root.glob("log-*.bin"))
    log.write_bytes(log.read_bytes()[:-5])  # the last record torn
    node = NodeProcess(SMALL.replace(database_path=str(root), save_interval_s=0.0), tmp_path)
    driver = Driver(node)
    try:
        driver.wait_for_node()
        stats = driver.latest_stats()
        assert stats["database_size"] == 3
        assert stats["database_recovery"]["lost_records"] == 1 and stats["database_recovery"]["torn_copy"]
        driver.wait_until(lambda: any("lost" in s.message for s in driver.diagnostics), 60, "a lost-records WARN")
        status = next(s for s in driver.diagnostics if "lost" in s.message)
        assert status.level == DiagnosticStatus.WARN
        assert _values(status)["database_recovery.lost_records"] == "1"
    finally:
        driver.close()
        assert node.stop() == 0
