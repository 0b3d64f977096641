"""SIGINT with keyframes queued: every accepted keyframe is stored (issue #11 defect 6)."""
from __future__ import annotations

import signal

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def test_sigint_with_queued_keyframes_keeps_every_accepted_one(tmp_path):
    n = 12
    cfg = MaqboolConfig(**IMAGE_INPUT, method="maqbool", database_path=str(tmp_path / "map"), queue_size=n,
                        image_qos_depth=2 * n, stats_period_s=0.2)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(n)]
    node = NodeProcess(cfg, tmp_path, "first")
    driver = Driver(node)
    try:
        driver.wait_for_node()
        for i, frame in enumerate(frames):
            driver.pub.publish(driver.image_msg(frame, frame_id=str(i)))
        stats = driver.wait_stats(lambda s: s["counts"].get("accepted", 0) == n, 60,
                                  f"the node to accept {n} keyframes")
        pending = sum(stats["queue_depth"].values()) + sum(stats["in_flight"].values())
    finally:
        driver.close()
    assert node.stop(signal.SIGINT) == 0
    log = node.log_text()
    print(f"{pending} keyframes were still queued or in a worker's hands at the last stats before SIGINT")
    assert "Traceback" not in log and "context is invalid" not in log, log[-3000:]

    node = NodeProcess(cfg, tmp_path, "second")
    driver = Driver(node)
    try:
        driver.wait_for_node()
        assert driver.latest_stats()["database_size"] == n
    finally:
        driver.close()
        assert node.stop() == 0
