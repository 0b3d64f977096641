"""The real node refuses decompression bombs with its own (live) max_image_pixels: they are
counted as malformed and never inserted into the map."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.image_bombs import zero_png  # noqa: E402
from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def test_node_refuses_bombs_and_follows_live_max_image_pixels(tmp_path):
    cfg = MaqboolConfig(**IMAGE_INPUT, image_transport="compressed", resize_policy="native", stats_period_s=0.5)
    small = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))[1].tobytes()
    node = NodeProcess(cfg, tmp_path, name="image_limits")
    driver = Driver(node, compressed=True)
    try:
        driver.wait_for_node()
        assert driver.publish_and_wait(driver.image_msg(frame_id="1", jpeg=small)).query_keyframe_id == 1
        driver.pub.publish(driver.image_msg(frame_id="2", jpeg=zero_png(10000, 10000)))  # 1 MB, 800 MB decoded
        # the node's own config reaches the decoder, live: now the small image is too big as well
        assert driver.set_parameter("max_image_pixels", 128 * 96 - 1)[0]
        driver.pub.publish(driver.image_msg(frame_id="3", jpeg=small))
        driver.wait_stats(lambda s: s["counts"].get("malformed_images", 0) == 2, 60,
                          "both oversized images to be counted as malformed")
        stats = driver.latest_stats()
        assert stats["database_size"] == 1 and stats["counts"]["processed"] == 1
        log = node.log_text()
        assert "data: PNG 10000x10000 = 100.0 MP exceeds max_image_pixels" in log
        assert "data: JPEG 128x96" in stats["last_error"]  # its log line may be rate-limited
        assert node.alive()
    finally:
        driver.close()
        assert node.stop() == 0
