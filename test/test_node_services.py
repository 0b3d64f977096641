"""~/detect and ~/remove_keyframes on the real node (issue #14): a synchronous query with the
topic pipeline's stages, excluded ids, query-only vs stored, refused requests that name the
field and store nothing; removals that stay removed after a restart."""
from __future__ import annotations

import signal

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from sensor_msgs.msg import CompressedImage  # noqa: E402

from helpers.configs import SINGLE_FRAME  # noqa: E402
from helpers.node_proc import Driver, NodeProcess, drained  # noqa: E402
from helpers.rgbd_scene import rotation, texture, view  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.srv import Detect, RemoveKeyframes  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def revisit(seed: int) -> np.ndarray:
    rgb, _ = view(texture(seed), rotation(2.0, -5.0, 1.0), np.array([0.2, -0.05, 0.1]), 3.0)
    return rgb


def detect(driver: Driver, msg, *, add: bool = False, excluded=(), max_candidates: int = 0):
    request = Detect.Request(keyframe=msg, add_to_database=add, excluded_ids=[int(i) for i in excluded],
                             max_candidates=max_candidates)
    return driver.call(Detect, "detect", request)


def database_size(driver: Driver) -> int:
    """The size in a stats message computed after this call (the one after the next: the next
    may have been computed while a service call was still running)."""
    driver.latest_stats()
    return driver.latest_stats()["database_size"]


def test_detect_and_remove_keyframes_round_trip_and_survive_a_restart(tmp_path):
    cfg = MaqboolConfig(**SINGLE_FRAME, method="netvlad", robot_id="rover", top_k=4, stats_period_s=0.2,
                        database_path=str(tmp_path / "map"), save_interval_s=0.0, exclude_recent_keyframes=0,
                        exclude_recent_seconds=0.0)
    node = NodeProcess(cfg, tmp_path, "first")
    driver = Driver(node)
    try:
        driver.wait_for_node()
        for i in range(6):  # a small map through the topic
            driver.publish_and_wait(driver.keyframe_msg(i, texture(i), map_id="session1"))
        assert database_size(driver) == 6

        # query only: the right candidate, with the message's own fields; nothing stored
        res = detect(driver, driver.keyframe_msg(100, revisit(2), map_id="session2", frame_id="cam"))
        assert res.success, res.message
        out = res.result
        assert (out.query_keyframe_id, out.map_id, out.header.frame_id) == (100, "session2", "cam")
        assert out.candidates[0].keyframe_id == 2 and out.candidates[0].map_id == "session1"
        assert len(out.candidates) == 4 and out.method == "netvlad"
        assert database_size(driver) == 6

        # excluded ids of the query's robot are never proposed; top_k is still filled
        res = detect(driver, driver.keyframe_msg(100, revisit(2)), excluded=[2, 3])
        ids = [c.keyframe_id for c in res.result.candidates]
        assert res.success and 2 not in ids and 3 not in ids and len(ids) == 4
        res = detect(driver, driver.keyframe_msg(100, revisit(2)), max_candidates=1)
        assert [c.keyframe_id for c in res.result.candidates] == [2]

        # refused requests name the field, store nothing
        jpeg = driver.keyframe_msg(101)
        jpeg.compressed_image = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0 not a jpeg")
        both = driver.keyframe_msg(102, texture(40))
        both.compressed_image = CompressedImage(format="jpeg", data=b"\xff\xd8")
        for msg, field in ((driver.keyframe_msg(103), "keyframe.image / keyframe.compressed_image"),
                           (both, "both are set"), (jpeg, "keyframe.compressed_image:"),
                           (driver.keyframe_msg(104, texture(41), robot_id="x" * 257), "keyframe.robot_id")):
            res = detect(driver, msg, add=True)
            assert not res.success and field in res.message, res.message
        assert database_size(driver) == 6

        # stored on request, once
        res = detect(driver, driver.keyframe_msg(100, revisit(2)), add=True)
        assert res.success and "stored" in res.message
        assert database_size(driver) == 7
        res = detect(driver, driver.keyframe_msg(100, revisit(4)), add=True)
        assert not res.success and "keyframe.keyframe_id" in res.message and "already in the database" in res.message

        # remove: counted, unknown ids are not an error, gone from the candidates
        removed = driver.call(RemoveKeyframes, "remove_keyframes", RemoveKeyframes.Request(keyframe_ids=[2, 999]))
        assert removed.success and removed.removed == 1
        bad = driver.call(RemoveKeyframes, "remove_keyframes",
                          RemoveKeyframes.Request(keyframe_ids=[1], robot_id="y" * 300))
        assert not bad.success and "robot_id" in bad.message
        other = driver.call(RemoveKeyframes, "remove_keyframes",
                            RemoveKeyframes.Request(keyframe_ids=[1], robot_id="someone_else"))
        assert other.success and other.removed == 0
        res = detect(driver, driver.keyframe_msg(200, revisit(2)))
        assert 2 not in [c.keyframe_id for c in res.result.candidates]
        assert database_size(driver) == 6
        # a call while the topic pipeline works: both go on (own callback group, a lock per stage)
        for i in range(10, 13):
            driver.pub.publish(driver.keyframe_msg(i, texture(i)))
        res = detect(driver, driver.keyframe_msg(201, texture(4)))
        assert res.success and res.result.candidates[0].keyframe_id == 4
        stats = driver.wait_stats(lambda s: s["counts"].get("processed", 0) >= 9 and drained(s), 120,
                                  "the three keyframes published during the call")
        assert stats["database_size"] == 9 and stats["counts"].get("callback_errors", 0) == 0
    finally:
        driver.close()
    assert node.stop(signal.SIGTERM) == 0

    node = NodeProcess(cfg, tmp_path, "second")
    driver = Driver(node)
    try:
        driver.wait_for_node()
        assert database_size(driver) == 9
        res = detect(driver, driver.keyframe_msg(300, revisit(2)), excluded=[100])
        ids = [c.keyframe_id for c in res.result.candidates]
        assert res.success and 2 not in ids and 100 not in ids and len(ids) == 4
    finally:
        driver.close()
        assert node.stop() == 0
