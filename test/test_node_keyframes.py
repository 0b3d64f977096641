"""Keyframe-message input and one shared node for a fleet (issue #14): ids, robot ids and map
ids come from the message, per-robot recent-keyframe exclusion, robot_filter, per-robot stats,
malformed / duplicate keyframes counted and never stored. Real node process, real topics.

Places are seeded textures (test/helpers/rgbd_scene.py); a revisit is the same place seen
from another pose (rendered through the scene's walls), so the right candidate is known."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from helpers.configs import SINGLE_FRAME  # noqa: E402
from helpers.node_proc import Driver, NodeProcess, drained  # noqa: E402
from helpers.rgbd_scene import rotation, texture, view  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)

# Default exclusion rules (last 20 keyframes / 10 s of the query's own robot) on purpose:
# they must not hide another robot's keyframes.
CFG = MaqboolConfig(**SINGLE_FRAME, method="netvlad", top_k=5, stats_period_s=0.3)


def revisit(seed: int) -> np.ndarray:
    """Place `seed` seen from a camera turned by a few degrees and moved 20 cm."""
    rgb, _ = view(texture(seed), rotation(2.0, -5.0, 1.0), np.array([0.2, -0.05, 0.1]), 3.0)
    return rgb


def wait_processed(driver: Driver, n: int) -> dict:
    return driver.wait_stats(lambda s: s["counts"].get("processed", 0) >= n and drained(s), 120,
                             f"{n} keyframes processed")


def test_keyframe_checks_name_the_field():
    """What the callback (and ~/detect, with the "keyframe." prefix) refuses, and why."""
    from maqbool_ros.msg import Keyframe
    from maqbool_ros.ros.inputs import MalformedKeyframe, arrival_from_keyframe

    def refused(msg, prefix: str = "") -> str:
        with pytest.raises(MalformedKeyframe) as err:
            arrival_from_keyframe(msg, "robot0", 0.0, prefix)
        return str(err.value)

    raw = Image(height=1, width=1, encoding="mono8", step=1, data=b"\0")
    jpeg = CompressedImage(format="jpeg", data=b"\xff\xd8")
    assert "neither is set" in refused(Keyframe())
    assert "keyframe.image / keyframe.compressed_image: exactly one must be set, both are set" in refused(
        Keyframe(image=raw, compressed_image=jpeg), "keyframe.")
    assert refused(Keyframe(image=raw, robot_id="r" * 300)).startswith("robot_id: 300 characters")
    assert refused(Keyframe(image=raw, robot_id="a\nb")).startswith("robot_id:")
    assert refused(Keyframe(image=raw, map_id="m" * 65)).startswith("map_id: 65 bytes")
    bad_stamp = Keyframe(image=raw)
    bad_stamp.header.stamp.nanosec = 1_500_000_000
    assert refused(bad_stamp).startswith("header.stamp.nanosec")
    ok = arrival_from_keyframe(Keyframe(compressed_image=jpeg, keyframe_id=-5, map_id="m1"), "robot0", 0.0)
    assert (ok.keyframe_id, ok.robot_id, ok.map_id, ok.image_field) == (-5, "robot0", "m1", "compressed_image")
    assert ok.depth is None and ok.camera_info is None  # empty depth / all-zero K: none


def test_shared_node_serves_two_robots_and_counts_bad_keyframes(tmp_path):
    node = NodeProcess(CFG, tmp_path)
    driver = Driver(node)
    try:
        driver.wait_for_node()
        for i in range(5):  # robot A maps places 0..4
            out = driver.publish_and_wait(driver.keyframe_msg(i, texture(i), robot_id="robot_a", map_id="map_a",
                                                              frame_id="cam_a"))
            assert out.robot_id == "robot_a" and out.map_id == "map_a" and out.header.frame_id == "cam_a"
        for i, seed in enumerate((10, 11)):  # robot B elsewhere
            driver.publish_and_wait(driver.keyframe_msg(i, texture(seed), robot_id="robot_b", map_id="map_b"))
        # B revisits A's place 3: an inter-robot candidate, while B's own recent keyframes stay excluded.
        out = driver.publish_and_wait(driver.keyframe_msg(2, revisit(3), robot_id="robot_b", map_id="map_b",
                                                          frame_id="cam_b"))
        assert (out.query_keyframe_id, out.robot_id, out.map_id, out.header.frame_id) == (2, "robot_b", "map_b",
                                                                                          "cam_b")
        best = out.candidates[0]
        assert (best.robot_id, best.keyframe_id, best.map_id) == ("robot_a", 3, "map_a")
        assert all(c.robot_id == "robot_a" for c in out.candidates), "B's own last keyframes are recent"

        # inter_robot: A revisiting its own place gets no candidate of its own, B's are fine.
        assert driver.set_parameter("database.robot_filter", "inter_robot") == (True, "")
        assert driver.set_parameter("database.exclude_recent_keyframes", 0) == (True, "")
        assert driver.set_parameter("database.exclude_recent_seconds", 0.0) == (True, "")
        own = driver.publish_and_wait(driver.keyframe_msg(5, revisit(1), robot_id="robot_a", map_id="map_a"))
        assert own.candidates and all(c.robot_id == "robot_b" for c in own.candidates)

        # empty robot_id: the node's own (its namespace); not mixed up with A's or B's ids
        mine = driver.publish_and_wait(driver.keyframe_msg(0, texture(20)), robot_id=node.ns.strip("/"))
        assert mine.map_id == "" and mine.query_keyframe_id == 0

        # refused before the queue, named, never stored
        both = driver.keyframe_msg(50, texture(30), robot_id="robot_a", jpeg=b"\xff\xd8\xff")
        none = driver.keyframe_msg(51, robot_id="robot_a")
        long_robot = driver.keyframe_msg(52, texture(31), robot_id="r" * 300)
        long_map = driver.keyframe_msg(53, texture(32), robot_id="robot_a", map_id="m" * 65)
        duplicate = driver.keyframe_msg(3, texture(33), robot_id="robot_a")  # A/3 is stored
        bad_depth = driver.keyframe_msg(54, texture(34), robot_id="robot_a")
        bad_depth.depth = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
        for msg in (both, none, long_robot, long_map, duplicate, bad_depth):
            driver.pub.publish(msg)
        stats = driver.wait_stats(lambda s: s["counts"].get("malformed_keyframes", 0) >= 4
                                  and s["counts"].get("duplicate_keyframes", 0) >= 1
                                  and s["counts"].get("processed", 0) >= 10 and drained(s), 120,
                                  "the bad keyframes to be counted")
        counts = stats["counts"]
        assert (counts["malformed_keyframes"], counts["duplicate_keyframes"], counts["malformed_depth"]) == (4, 1, 1)
        log = node.log_text()  # one line a second per kind: the first of each is logged
        for text in ("image / compressed_image: exactly one must be set, both are set",
                     "robot_a/3 is already in the database", "depth: depth encoding 'rgb8'"):
            assert text in log
        # 5 A + 3 B + A/5 + own 0 + A/54 (bad depth dropped, keyframe kept); the duplicate kept the first A/3
        robots = stats["robots"]
        assert stats["database_size"] == 11
        assert robots["robot_a"]["database"] == 7 and robots["robot_b"]["database"] == 3
        # per robot once the message passed its checks: 5 + A/5 + the duplicate + A/54
        assert robots["robot_a"] == {"received": 8, "processed": 7, "published": 7, "database": 7}
        assert robots["robot_b"] == {"received": 3, "processed": 3, "published": 3, "database": 3}
    finally:
        driver.close()
        assert node.stop() == 0
    assert "Traceback" not in node.log_text()


def test_compressed_keyframe_and_keyframe_depth_and_camera_info(tmp_path):
    """compressed_image is decoded like the image topic's; depth and CameraInfo in the message
    feed verification exactly like the synchronized topics (a metric pose)."""
    import cv2
    from sensor_msgs.msg import CameraInfo

    from helpers.rgbd_scene import HEIGHT, WIDTH, K, candidate_depth
    from maqbool_ros.core.verification import transform_from_xyz_quat
    from maqbool_ros.msg import CandidateMatch

    cfg = CFG.replace(exclude_recent_keyframes=0, exclude_recent_seconds=0.0, verification_top_n=2)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node)

    def with_sensors(msg, depth_m: np.ndarray):
        msg.depth = Image(height=HEIGHT, width=WIDTH, encoding="32FC1", step=WIDTH * 4,
                          data=depth_m.astype(np.float32).tobytes())
        msg.camera_info = CameraInfo(height=HEIGHT, width=WIDTH, k=[float(v) for v in K.ravel()],
                                     p=[float(v) for v in np.hstack([K, np.zeros((3, 1))]).ravel()])
        return msg

    try:
        driver.wait_for_node()
        scene = texture(7)
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(scene, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        first = driver.keyframe_msg(0, jpeg=jpeg.tobytes())
        driver.publish_and_wait(with_sensors(first, candidate_depth(3.0)))
        rgb, depth = view(scene, rotation(2.0, -4.0, 1.5), np.array([0.25, -0.05, 0.10]), 3.0)
        out = driver.publish_and_wait(with_sensors(driver.keyframe_msg(1, rgb), depth))
        best = out.candidates[0]
        assert best.keyframe_id == 0 and best.verified and best.pose_type == CandidateMatch.POSE_METRIC
        p, q = best.relative_pose.pose.position, best.relative_pose.pose.orientation
        t = transform_from_xyz_quat([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])[:3, 3]
        assert np.linalg.norm(t - np.array([0.25, -0.05, 0.10])) < 0.05  # metres, at 3 m
        assert isinstance(first.compressed_image, CompressedImage)
    finally:
        driver.close()
        assert node.stop() == 0


def test_real_two_robot_revisit_on_one_shared_node(tmp_path, rtabmap_loop_dir):
    """Acceptance on real frames: robot A records rtabmap_loop frames 0-39, robot B frames
    40-83, which revisit A's start (loop_pairs.csv). One shared node with robot_filter
    inter_robot: B's answers propose A's keyframes (the right ones, mostly), never B's own."""
    truth = {}
    for line in (rtabmap_loop_dir / "loop_pairs.csv").read_text().splitlines()[1:]:
        frame, earlier = line.split(",")
        truth[int(frame)] = {int(v) for v in earlier.split()}
    frames = sorted((rtabmap_loop_dir / "frames").glob("*.jpg"))
    cfg = CFG.replace(robot_filter="inter_robot", queue_size=100, verification_enabled=False)  # retrieval only
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node)
    try:
        driver.wait_for_node()
        for i, path in enumerate(frames):
            robot = "robot_a" if i < 40 else "robot_b"
            driver.pub.publish(driver.keyframe_msg(i, jpeg=path.read_bytes(), robot_id=robot, map_id=robot))
            if i == 39:  # A's map is complete before B arrives
                wait_processed(driver, 40)
        wait_processed(driver, len(frames))
        answers = {c.query_keyframe_id: c for c in driver.candidates if c.robot_id == "robot_b"}
        assert len(answers) == len(frames) - 40
        assert all(m.robot_id == "robot_a" and m.map_id == "robot_a" for c in answers.values() for m in c.candidates)
        hits = sum(bool(answers[f].candidates) and answers[f].candidates[0].keyframe_id in earlier
                   for f, earlier in truth.items())
        assert hits >= 0.85 * len(truth), f"{hits}/{len(truth)} of B's revisits found A's place first"  # 41/44 measured
        a_answers = [c for c in driver.candidates if c.robot_id == "robot_a"]
        assert all(not c.candidates for c in a_answers)  # only A in the map while A maps: nothing inter-robot
    finally:
        driver.close()
        assert node.stop() == 0
