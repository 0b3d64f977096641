"""Node start-up failures and untrusted strings in its log (issue #23 items 2 and 4): a bad
input ends the node with exit status 2 and one line naming the input and what to do, with
nothing touched; robot ids are truncated and escaped in every log line and diagnostic."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.database.keyframes import KeyframeDatabase  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (root itself when a file) -> sha256: "nothing touched"."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _fails_with_one_line(cfg: MaqboolConfig, tmp_path: Path, *needles: str) -> str:
    node = NodeProcess(cfg, tmp_path, name="startup")
    rc = node.proc.wait(timeout=120)
    lines = [line for line in node.log_text().splitlines() if line.strip()]
    assert rc == 2, node.log_text()[-3000:]
    assert len(lines) == 1 and "Traceback" not in lines[0], node.log_text()[-3000:]
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def test_deleted_log_file(tmp_path):
    root = tmp_path / "map"
    db = KeyframeDatabase.open(root, dim=512)
    db.add(0, "robot0", 0.0, np.random.default_rng(0).standard_normal(512))
    db.close()
    next(root.glob("log-*.bin")).unlink()
    before = _tree(tmp_path / "map")
    line = _fails_with_one_line(MaqboolConfig(**IMAGE_INPUT, database_path=str(root)), tmp_path,
                                "database.path", str(root), "log-", "database.load_on_start")
    assert "No such file" in line or "missing" in line
    assert _tree(tmp_path / "map") == before and not list(tmp_path.glob("map.prev-*"))


def test_model_path_is_a_text_file(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_text("this is not an ONNX model\n")
    before = _tree(model)
    _fails_with_one_line(MaqboolConfig(**IMAGE_INPUT, model_path=str(model), database_path=str(tmp_path / "map")),
                         tmp_path, "descriptor.model_path", str(model))
    assert _tree(model) == before and not (tmp_path / "map").exists()


def test_database_path_is_a_file(tmp_path):
    target = tmp_path / "map"
    target.write_text("a file where the database folder should be\n")
    before = _tree(target)
    _fails_with_one_line(MaqboolConfig(**IMAGE_INPUT, database_path=str(target)), tmp_path,
                         "database.path", str(target))
    assert _tree(target) == before


def test_untrusted_robot_ids_are_truncated_and_escaped(tmp_path):
    cfg = MaqboolConfig(stats_period_s=0.2)
    node = NodeProcess(cfg, tmp_path, name="hygiene")
    driver = Driver(node)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    try:
        driver.wait_for_node()
        driver.pub.publish(driver.keyframe_msg(1, image, robot_id="r" * 10_000))
        stats = driver.wait_stats(lambda s: s["counts"].get("malformed_keyframes", 0) == 1, 60, "long id counted")
        assert "robot_id: 10000 characters" in stats["last_error"] and len(stats["last_error"]) < 600
        rtl = "ab\u202ecd\x1b[31m"
        driver.pub.publish(driver.keyframe_msg(2, image, robot_id=rtl))
        stats = driver.wait_stats(lambda s: s["counts"].get("malformed_keyframes", 0) == 2, 60, "RTL id counted")
        assert "ab\\u202ecd\\x1b[31m" in stats["last_error"] and "\u202e" not in stats["last_error"]
        driver.wait_until(lambda: any(v.key == "last_error" and "\\u202e" in v.value
                                      for d in list(driver.diagnostics) for v in d.values), 30,
                          "diagnostics carrying the escaped id")
        log = node.log_text()
        assert max(len(line) for line in log.splitlines()) < 1200, "an untrusted string was echoed in full"
        assert "\u202e" not in log and "\x1b" not in log
        assert node.alive()
    finally:
        driver.close()
        assert node.stop() == 0
