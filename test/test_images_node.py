"""The real node refuses decompression bombs with its own max_image_pixels (read-only: set at
start, never raised by another node on the domain), refuses images smaller than
MIN_KEYFRAME_SIDE and blank ones: all counted, none inserted into the map (issue #23)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.image_bombs import zero_png  # noqa: E402
from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def _jpeg(h: int, w: int, seed: int = 0) -> bytes:
    return cv2.imencode(".jpg", np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))[1].tobytes()


def test_node_refuses_bombs_tiny_and_blank_images_with_a_read_only_limit(tmp_path):
    limit = 128 * 96  # the node's own limit, given at start, reaches the decoder
    cfg = MaqboolConfig(**IMAGE_INPUT, image_transport="compressed", resize_policy="native", stats_period_s=0.5,
                        max_image_pixels=limit)
    node = NodeProcess(cfg, tmp_path, name="image_limits")
    driver = Driver(node, compressed=True)
    try:
        driver.wait_for_node()
        assert driver.publish_and_wait(driver.image_msg(frame_id="1", jpeg=_jpeg(96, 128))).query_keyframe_id == 1
        ok, reason = driver.set_parameter("input.max_image_pixels", 1 << 30)  # any node on the domain could try
        assert not ok and "max_image_pixels" in reason, reason
        driver.pub.publish(driver.image_msg(frame_id="2", jpeg=zero_png(10000, 10000)))  # 1 MB, 800 MB decoded
        driver.pub.publish(driver.image_msg(frame_id="3", jpeg=_jpeg(97, 128)))  # one row over the limit
        driver.pub.publish(driver.image_msg(frame_id="4", jpeg=zero_png(64, 48, bit_depth=16, colour_type=0)))
        driver.pub.publish(driver.image_msg(frame_id="5", jpeg=cv2.imencode(".png", np.full((48, 64), 77, np.uint8))[1]
                                            .tobytes()))  # a constant grey frame (lens cap, flat wall)
        driver.wait_stats(lambda s: s["counts"].get("malformed_images", 0) == 2
                          and s["counts"].get("uninformative_images", 0) == 2, 60,
                          "2 oversized and 2 blank images counted")
        driver.pub.publish(driver.image_msg(frame_id="6", jpeg=_jpeg(1, 1)))  # below MIN_KEYFRAME_SIDE
        stats = driver.wait_stats(lambda s: s["counts"].get("malformed_images", 0) == 3, 60, "the 1x1 image counted")
        assert "1x1 is smaller than the 32 px minimum" in stats["last_error"]  # its log line may be rate-limited
        assert stats["database_size"] == 1 and stats["counts"]["processed"] == 1
        assert driver.publish_and_wait(driver.image_msg(frame_id="7", jpeg=_jpeg(96, 128, 1))).query_keyframe_id == 7
        log = node.log_text()
        assert "data: PNG 10000x10000 = 100.0 MP exceeds max_image_pixels" in log
        assert "uninformative images: keyframe" in log and "every pixel is 0" in log
        assert node.alive()
    finally:
        driver.close()
        assert node.stop() == 0
