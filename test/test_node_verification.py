"""The real node verifies loop closures from RGB-D keyframes: image, registered depth and
CameraInfo on real topics, matched by stamp; a revisit's candidate carries a verified metric pose
near the truth; malformed or missing depth is counted and the keyframe still goes through;
publish_only_verified and ~/debug_image."""
from __future__ import annotations

import threading

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from helpers.configs import SINGLE_FRAME  # noqa: E402
from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess, drained  # noqa: E402
from helpers.rgbd_scene import HEIGHT, WIDTH, K, candidate_depth, rotation, texture, view  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.images.decode import encode_raw  # noqa: E402
from maqbool_ros.core.verification import transform_from_xyz_quat  # noqa: E402
from maqbool_ros.msg import CandidateMatch  # noqa: E402

R_TRUE, T_TRUE, DEPTH_M = rotation(2.0, -4.0, 1.5), np.array([0.25, -0.05, 0.10]), 3.0
CFG = MaqboolConfig(**IMAGE_INPUT, **SINGLE_FRAME, method="netvlad", top_k=5, exclude_recent_keyframes=0,
                    exclude_recent_seconds=0.0,
                    stats_period_s=0.3, depth_topic="keyframes/depth", camera_info_topic="keyframes/camera_info",
                    depth_wait_s=0.5, sensor_sync_tolerance_s=0.001)


pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


class RGBDDriver(Driver):
    """Driver + depth and CameraInfo publishers; publishes depth and info with the image's stamp."""

    def __init__(self, node: NodeProcess):
        super().__init__(node)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = self.create_publisher(Image, "keyframes/depth", qos)
        self.info_pub = self.create_publisher(CameraInfo, "keyframes/camera_info", qos)
        self.debug_images: list[Image] = []
        self.sent = [0, 0]  # depth, camera_info messages published
        self._debug_lock = threading.Lock()

    def subscribe_debug(self) -> None:
        def on_debug(msg: Image) -> None:
            with self._debug_lock:
                self.debug_images.append(msg)
        self.create_subscription(Image, f"{self.target.fqn}/debug_image", on_debug, 10)

    def keyframe(self, kf_id: int, rgb: np.ndarray, depth: np.ndarray | Image | None, wait: bool = True,
                 k: np.ndarray = K):
        msg = self.image_msg(rgb, frame_id=str(kf_id))
        info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=k.ravel().tolist(), p=np.hstack([k, np.zeros((3, 1))]).ravel().tolist())
        info.header = msg.header
        # depth and info first, and received, before the image: a large reliable message whose
        # fragment was lost is repaired only at the next heartbeat (seconds), later than depth_wait_s
        self.info_pub.publish(info)
        self.sent[1] += 1
        if depth is not None:
            if isinstance(depth, np.ndarray):
                encoding = "16UC1" if depth.dtype == np.uint16 else "32FC1"
                depth = Image(height=depth.shape[0], width=depth.shape[1], encoding=encoding,
                              step=depth.shape[1] * depth.itemsize, data=depth.tobytes())
            depth.header = msg.header
            self.depth_pub.publish(depth)
            self.sent[0] += 1
        self.wait_stats(lambda s: self._got(s)[0] >= self.sent[0] and self._got(s)[1] >= self.sent[1], 60,
                        f"depth/info of keyframe {kf_id} at the node")
        if not wait:
            self.pub.publish(msg)
            return None
        return self.publish_and_wait(msg, timeout=120)


    @staticmethod
    def _got(stats: dict) -> tuple[int, int]:
        return stats["counts"].get("depth_received", 0), stats["counts"].get("camera_info_received", 0)


def candidate(out, kf_id: int) -> CandidateMatch:
    return next(c for c in out.candidates if c.keyframe_id == kf_id)


def translation(c: CandidateMatch) -> np.ndarray:
    p, q = c.relative_pose.pose.position, c.relative_pose.pose.orientation
    return transform_from_xyz_quat([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])[:3, 3]


def test_rgbd_revisit_is_verified_with_a_metric_pose_and_bad_depth_is_counted(tmp_path):
    node = NodeProcess(CFG, tmp_path)
    driver = RGBDDriver(node)
    try:
        driver.wait_for_node()
        driver.wait_until(lambda: driver.depth_pub.get_subscription_count() > 0
                          and driver.info_pub.get_subscription_count() > 0, 60, "depth and info subscriptions")
        for i in range(5):  # the map: place 0 is revisited below; depth in mm and in m
            driver.keyframe(i, texture(i), candidate_depth(DEPTH_M, mm=bool(i % 2)))
        assert driver.set_parameter("database.insert_keyframes", False) == (True, "")
        rgb, depth = view(texture(0), R_TRUE, T_TRUE, DEPTH_M)
        driver.subscribe_debug()
        driver.wait_until(lambda: driver.count_subscribers(f"{node.fqn}/debug_image") > 0, 30, "debug subscriber")

        out = driver.keyframe(100, rgb, depth)
        best = candidate(out, 0)
        assert best.verified and best.has_relative_pose and best.pose_type == CandidateMatch.POSE_METRIC
        assert best.num_inliers >= 50 and best.inlier_ratio >= 0.25
        assert np.linalg.norm(translation(best) - T_TRUE) < 0.05  # metres, at 3 m
        assert all(not c.verified for c in out.candidates if c.keyframe_id != 0)
        driver.wait_until(lambda: len(driver.debug_images) >= 1, 30, "a debug image")
        dbg = driver.debug_images[-1]
        assert dbg.encoding == "rgb8" and dbg.width == 640 and dbg.height == 240 and dbg.header.frame_id == "100"

        # malformed depth: wrong encoding, wrong size, all zeros, truncated data; then none at all
        wrong_enc = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3,
                          data=encode_raw(rgb, "rgb8")[0])
        truncated = Image(height=HEIGHT, width=WIDTH, encoding="32FC1", step=WIDTH * 4, data=depth.tobytes()[:1000])
        bad = [wrong_enc, depth[:, :400].copy(), np.zeros_like(depth), truncated, None]
        for j, d in enumerate(bad):
            out = driver.keyframe(101 + j, rgb, d)
            c = candidate(out, 0)  # 2-D verification from the query side; the candidate's stored depth gives PnP
            assert c.verified and c.pose_type == CandidateMatch.POSE_METRIC
        stats = driver.wait_stats(lambda s: s["counts"].get("missing_depth", 0) >= 1 and drained(s), 30,
                                  "the missing depth counted")
        counts = stats["counts"]
        assert counts["malformed_depth"] == 4 and counts["missing_depth"] == 1
        assert counts["verified_keyframes"] == 6 and counts.get("descriptor_errors", 0) == 0
        assert counts.get("rerank_errors", 0) == 0 and node.alive()

        # publish_only_verified: a new place is processed but not published; reliable, in-order
        # delivery means its message would have arrived before the next one's
        assert driver.set_parameter("output.publish_only_verified", True) == (True, "")
        driver.keyframe(200, texture(9), candidate_depth(DEPTH_M), wait=False)
        out = driver.keyframe(201, rgb, depth)
        assert candidate(out, 0).verified and driver.candidate_for(200) is None
    finally:
        driver.close()
        assert node.stop() == 0


class StubNode:
    """Records subscriptions so a test can call their callbacks directly."""

    def __init__(self):
        self.callbacks = {}

    def create_subscription(self, typ, topic, callback, qos, event_callbacks=None):
        self.callbacks[topic] = callback
        return object()


def _stamped(msg, sec: int, nanosec: int = 0):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def test_sensor_sync_matches_by_stamp_and_counts_problems():
    from maqbool_ros.core.verification.camera import depth_from_msg
    from maqbool_ros.ros.sensors import SensorSync
    from maqbool_ros.ros.stats import Counters

    counts = Counters(lambda text: None)
    node = StubNode()
    sync = SensorSync(node, CFG.replace(depth_wait_s=0.05, sensor_sync_tolerance_s=0.01), counts)
    on_depth, on_info = node.callbacks["keyframes/depth"], node.callbacks["keyframes/camera_info"]
    stamp = _stamped(Image(), 10, 5_000_000).header.stamp
    assert sync.for_image(stamp, 1) == (None, None) and counts["missing_depth"] == 1  # nothing yet

    # 16UC1 with row padding and big-endian bytes; stamp 4 ms off (inside the 10 ms tolerance)
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    padded = np.zeros((3, 10), np.uint8)
    padded[:, :8] = depth.astype(">u2").view(np.uint8).reshape(3, 8)
    on_depth(_stamped(Image(height=3, width=4, encoding="16UC1", is_bigendian=1, step=10,
                            data=padded.tobytes()), 10, 9_000_000))
    good = CameraInfo(width=WIDTH, height=HEIGHT, k=K.ravel().tolist(), distortion_model="plumb_bob")
    on_info(_stamped(good, 3))  # far in time: used as the latest one
    camera, got = sync.for_image(stamp, 2)
    np.testing.assert_array_equal(got, depth)
    assert camera is not None and camera.width == WIDTH and np.allclose(camera.K, K)
    assert counts["depth_received"] == 1 and counts["camera_info_received"] == 1

    on_info(_stamped(CameraInfo(width=WIDTH, height=HEIGHT, k=[0.0] * 9), 10, 5_000_000))  # nearest, malformed
    assert sync.for_image(stamp, 3)[0] is None and counts["malformed_camera_info"] == 1
    later = _stamped(Image(), 11).header.stamp
    assert sync.for_image(later, 4) == (None, None)  # the latest info is the malformed one; no depth
    on_info(_stamped(good, 12))
    assert sync.for_image(later, 5) == (camera, None) and counts["malformed_camera_info"] == 1  # decoded once
    assert counts["missing_depth"] == 3

    f32 = np.array([[1.5, np.nan], [0.0, 2.0]], np.float32)
    msg = Image(height=2, width=2, encoding="32FC1", step=8, data=f32.tobytes())
    np.testing.assert_array_equal(depth_from_msg(msg), f32)
    for bad, why in ((Image(height=2, width=2, encoding="mono8", step=2, data=bytes(4)), "encoding"),
                     (Image(height=2, width=2, encoding="32FC1", step=4, data=bytes(16)), "step"),
                     (Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(12)), "bytes")):
        with pytest.raises(ValueError, match=why):
            depth_from_msg(bad)


def test_synthetic_room_revisit_gets_the_true_metric_pose_through_the_node(tmp_path):
    """The synthetic RGB-D room loop (core.data.rgbd_sequence, exact poses): lap-1 keyframes
    around the place, then a lap-2 revisit from another viewpoint; every verified candidate is a
    true positive and its pose matches inv(T_wq) T_wc."""
    from helpers.rgbd_scene import rotation_error_deg
    from maqbool_ros.core.data.rgbd_sequence import synthetic_rgbd_sequence

    seq = synthetic_rgbd_sequence()
    query, map_ids = 50, [0, 2, 4, 6, 8, 10, 12, 14, 20, 30]
    assert set(seq.positives[query]) & set(map_ids) and (seq.camera.width, seq.camera.height) == (WIDTH, HEIGHT)
    node = NodeProcess(CFG.replace(verification_top_n=5), tmp_path)
    driver = RGBDDriver(node)
    try:
        driver.wait_for_node()
        driver.wait_until(lambda: driver.depth_pub.get_subscription_count() > 0
                          and driver.info_pub.get_subscription_count() > 0, 60, "depth and info subscriptions")
        for i in map_ids:
            driver.keyframe(i, seq.frames[i], seq.depth_mm(i), k=seq.camera.K)
        out = driver.keyframe(1000 + query, seq.frames[query], seq.depth_mm(query), k=seq.camera.K)
        verified = [c for c in out.candidates if c.verified]
        assert verified, [(c.keyframe_id, c.num_inliers) for c in out.candidates]
        for c in verified:
            assert c.keyframe_id in seq.positives[query] and c.pose_type == CandidateMatch.POSE_METRIC
            p, q = c.relative_pose.pose.position, c.relative_pose.pose.orientation
            T = transform_from_xyz_quat([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
            truth = seq.relative_pose(query, c.keyframe_id)
            assert np.linalg.norm(T[:3, 3] - truth[:3, 3]) < 0.05, (c.keyframe_id, T, truth)
            assert rotation_error_deg(T[:3, :3], truth[:3, :3]) < 1.0
    finally:
        driver.close()
        assert node.stop() == 0
