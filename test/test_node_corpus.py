"""A seeded corpus of malformed keyframes streamed through the real node: no crash, every
bad message counted under its kind, the map unchanged, and a good keyframe still answered."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.configs import SINGLE_FRAME  # noqa: E402
from helpers.corpus import malformed, malformed_keyframes  # noqa: E402
from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess, drained  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

CHUNK = 50


pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


@pytest.mark.parametrize("compressed,count", [(False, 400), (True, 150)], ids=["Image", "CompressedImage"])
def test_malformed_corpus_is_counted_and_leaves_the_map_alone(tmp_path, compressed, count):
    cfg = MaqboolConfig(**IMAGE_INPUT, method="netvlad", resize_policy="native",
                        image_transport="compressed" if compressed else "raw",
                        queue_size=1000, image_qos_depth=1000, stats_period_s=0.2,
                        exclude_recent_keyframes=0, exclude_recent_seconds=0.0)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node, compressed=compressed)
    rng = np.random.default_rng(1)
    refs = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(3)]
    import cv2

    def good(i: int, frame_id: str):
        jpeg = cv2.imencode(".jpg", refs[i])[1].tobytes() if compressed else None
        return driver.image_msg(refs[i], frame_id=frame_id, jpeg=jpeg)

    try:
        driver.wait_for_node()
        for i in range(3):
            driver.publish_and_wait(good(i, str(i)))
        corpus = malformed(seed=7, count=count, compressed=compressed)
        expected = {"malformed_headers": 0, "malformed_images": 0}
        for start in range(0, count, CHUNK):  # chunks the reader history holds: DDS loses nothing
            for msg, kind in corpus[start:start + CHUNK]:
                driver.pub.publish(msg)
                expected[kind] += 1
            sent = 3 + min(start + CHUNK, count)
            driver.wait_stats(lambda s: s["counts"].get("received", 0) == sent, 60, f"{sent} keyframes received")
        stats = driver.wait_stats(
            lambda s: all(s["counts"].get(k, 0) == v for k, v in expected.items()), 60,
            f"every malformed keyframe counted ({expected})")
        counts = stats["counts"]
        assert counts["processed"] == 3 and counts.get("descriptor_errors", 0) == 0, counts
        assert counts.get("rerank_errors", 0) == 0 and counts.get("dropped_ingress", 0) == 0, counts
        assert stats["database_size"] == 3 and len(driver.candidates) == 3

        answer = driver.publish_and_wait(good(1, "1000"))
        assert answer.candidates[0].keyframe_id == 1
        assert node.alive()
        log = node.log_text()
        assert "malformed headers: header." in log and "Traceback" not in log  # names the field
        header_lines = sum("malformed headers" in line for line in log.splitlines())
        assert 1 <= header_lines < expected["malformed_headers"], "malformed keyframes are logged rate-limited"
    finally:
        driver.close()
        assert node.stop() == 0


def test_malformed_keyframe_messages_are_counted_and_leave_the_map_alone(tmp_path):
    """Keyframe messages: image missing / both set, bad ids, undecodable images, bad depth."""
    count = 120
    cfg = MaqboolConfig(**SINGLE_FRAME, method="netvlad", resize_policy="native", queue_size=1000, stats_period_s=0.2,
                        exclude_recent_keyframes=0, exclude_recent_seconds=0.0)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node)
    rng = np.random.default_rng(2)
    refs = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(3)]
    try:
        driver.wait_for_node()
        for i in range(3):
            driver.publish_and_wait(driver.keyframe_msg(i, refs[i], robot_id="robot_a"))
        corpus = malformed_keyframes(seed=11, count=count)
        expected = {"malformed_keyframes": 0, "malformed_images": 0, "malformed_depth": 0}
        for start in range(0, count, CHUNK):
            for msg, kind in corpus[start:start + CHUNK]:
                driver.pub.publish(msg)
                expected[kind] += 1
            sent = 3 + min(start + CHUNK, count)
            driver.wait_stats(lambda s: s["counts"].get("received", 0) == sent, 60, f"{sent} keyframes received")
        assert all(expected.values()), expected  # the seed covers every kind
        stats = driver.wait_stats(
            lambda s: all(s["counts"].get(k, 0) == v for k, v in expected.items()) and drained(s), 60,
            f"every malformed keyframe counted ({expected})")
        counts, kept = stats["counts"], 3 + expected["malformed_depth"]
        assert counts["processed"] == kept and counts.get("descriptor_errors", 0) == 0, counts
        assert counts.get("rerank_errors", 0) == 0 and counts.get("duplicate_keyframes", 0) == 0, counts
        assert stats["database_size"] == kept
        answer = driver.publish_and_wait(driver.keyframe_msg(1000, refs[1], robot_id="robot_b"))
        assert (answer.candidates[0].robot_id, answer.candidates[0].keyframe_id) == ("robot_a", 1)
        log = node.log_text()
        assert "malformed keyframes: keyframe" in log and "Traceback" not in log
    finally:
        driver.close()
        assert node.stop() == 0
