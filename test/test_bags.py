"""Bags: image conversions, db3/mcap writing and reading, ROS 1 + pose ground truth,
candidate message bytes equal to rclpy's, and rclpy playback / recording."""
from __future__ import annotations

import time

import numpy as np
import pytest

from maqbool_ros.core.data import bags
from maqbool_ros.core.data.datasets import ImageList, QueryRefDataset, load_dataset
from maqbool_ros.core.types import stamp_to_seconds


def _images(n: int, seed: int = 0, hw=(24, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_dataset() -> QueryRefDataset:
    refs, queries = _images(4, 1), _images(3, 2)
    pos = [np.array([0, 1]), np.array([2]), np.zeros(0, np.int64)]
    return QueryRefDataset("tiny", ImageList.from_arrays(refs), ImageList.from_arrays(queries), pos)


def test_image_message_round_trip():
    rgb = _images(1, 3)[0]
    ts = bags.typestore()
    msg = bags.rgb_to_image_msg(rgb, 12.25, "7")
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, bags.IMAGE_TYPE), bags.IMAGE_TYPE)
    assert back.header.frame_id == "7" and stamp_to_seconds(back.header.stamp) == pytest.approx(12.25)
    np.testing.assert_array_equal(bags.image_msg_to_rgb(back, bags.IMAGE_TYPE), rgb)
    png = bags.rgb_to_compressed_msg(rgb, 0.0, "0", fmt="png")
    np.testing.assert_array_equal(bags.image_msg_to_rgb(png, bags.COMPRESSED_TYPE), rgb)
    smooth = np.dstack([*np.meshgrid(np.arange(32) * 8, np.arange(24) * 10), np.full((24, 32), 90)]).astype(np.uint8)
    jpg = bags.rgb_to_compressed_msg(smooth, 0.0, "0", fmt="jpeg")  # lossy, but close on smooth images
    assert np.abs(bags.image_msg_to_rgb(jpg, bags.COMPRESSED_TYPE).astype(int) - smooth).mean() < 3
    bgr = ts.types[bags.IMAGE_TYPE](header=msg.header, height=24, width=32, encoding="bgr8", is_bigendian=0,
                                    step=96, data=np.ascontiguousarray(rgb[..., ::-1]).reshape(-1))
    np.testing.assert_array_equal(bags.image_msg_to_rgb(bgr, bags.IMAGE_TYPE), rgb)
    with pytest.raises(ValueError, match="HxWx3"):
        bags.rgb_to_image_msg(rgb[..., 0], 0.0, "0")


@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("mcap", False), ("mcap", True)])
def test_dataset_bag_round_trip(tiny_dataset, tmp_path, storage, compressed):
    out = tmp_path / "bag"
    n = bags.write_dataset_bag(tiny_dataset, out, storage=storage, compressed=compressed,
                               compressed_format="png", progress=False)
    assert n == 7
    back = load_dataset(out)
    assert back.kind == "query_ref" and len(back.refs) == 4 and len(back.queries) == 3
    assert [p.tolist() for p in back.positives] == [[0, 1], [2], []]
    assert back.refs.names == ["0", "1", "2", "3"] and back.queries.names == ["4", "5", "6"]
    for i in range(3):
        np.testing.assert_array_equal(back.queries[i], tiny_dataset.queries[i])
    topics = bags.bag_topics(out)
    assert topics["/keyframes/image"] == (bags.COMPRESSED_TYPE if compressed else bags.IMAGE_TYPE)
    with pytest.raises(ValueError, match="already exists"):
        bags.write_dataset_bag(tiny_dataset, out, storage=storage, progress=False)


def test_real_sequence_to_bag_keeps_ground_truth(rtabmap_loop_dir, tmp_path):
    seq = load_dataset(rtabmap_loop_dir)
    bags.write_dataset_bag(seq, tmp_path / "seq", storage="mcap", compressed=True, progress=False)
    back = load_dataset(tmp_path / "seq")
    assert back.kind == "sequence" and len(back.frames) == 84
    assert sum(len(p) for p in back.positives) == 228
    np.testing.assert_array_equal(back.stamps, seq.stamps)
    assert back.frames[50].shape == seq.frames[50].shape


def test_ros1_bag_with_odometry_ground_truth(tmp_path):
    """A ROS 1 bag (images + nav_msgs/Odometry, no embedded ground truth): positives from poses."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    T = ts.types
    path = tmp_path / "run.bag"
    # a square loop: positions 0..5 then back at position 0 at t=60
    xs = [0.0, 10.0, 20.0, 20.0, 10.0, 0.5]
    stamps = [0.0, 10.0, 20.0, 30.0, 40.0, 60.0]
    frames = _images(len(xs), 5)
    with Writer(path) as w:
        ci = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        co = w.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=ts)
        for i, (x, t) in enumerate(zip(xs, stamps)):
            hdr = T["std_msgs/msg/Header"](seq=i, stamp=T["builtin_interfaces/msg/Time"](sec=int(t), nanosec=0),
                                           frame_id="cam")
            img = T["sensor_msgs/msg/Image"](header=hdr, height=24, width=32, encoding="rgb8", is_bigendian=0,
                                             step=96, data=frames[i].reshape(-1))
            pose = T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.0),
                orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
            odom = T["nav_msgs/msg/Odometry"](
                header=hdr, child_frame_id="base",
                pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                twist=T["geometry_msgs/msg/TwistWithCovariance"](
                    twist=T["geometry_msgs/msg/Twist"](linear=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                                       angular=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)),
                    covariance=np.zeros(36)))
            w.write(co, int(t * 1e9), ts.serialize_ros1(odom, "nav_msgs/msg/Odometry"))
            w.write(ci, int(t * 1e9) + 1, ts.serialize_ros1(img, "sensor_msgs/msg/Image"))
    with pytest.raises(ValueError, match="no ground truth"):
        load_dataset(path)
    ds = load_dataset(path, pose_topic="/odom", radius=3.0, min_gap_s=30.0)
    assert ds.kind == "sequence" and len(ds.frames) == 6
    # frame 4 (x=10, t=40) revisits frame 1 (x=10, t=10); frame 3 is too soon after frame 2
    assert [p.tolist() for p in ds.positives] == [[], [], [], [], [1], [0]]
    np.testing.assert_array_equal(ds.frames[3], frames[3])
    np.testing.assert_allclose(ds.stamps, stamps)
    # the player converts ROS 1 serialization to the CDR bytes rclpy publishes
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from maqbool_ros.ros.bag_player import raw_messages

    raw = [data for topic, _, _, data in raw_messages(path, ["/cam/image"])]
    assert len(raw) == 6
    np.testing.assert_array_equal(np.asarray(deserialize_message(raw[2], Image).data).reshape(24, 32, 3), frames[2])


def _rclpy_candidate():
    from builtin_interfaces.msg import Time

    from maqbool_ros.msg import CandidateMatch, LoopClosureCandidate

    msg = LoopClosureCandidate(query_keyframe_id=42, robot_id="robot7", map_id="session-3", method="maqbool",
                               region_source="edge_boxes", region_budget=50, num_reranked=3, sequence_length=10,
                               reranking_complete=True, latency_ms=12.5, descriptor_ms=7.0, search_ms=1.5,
                               rerank_ms=4.0, verify_ms=3.25)
    msg.header.frame_id = "42"
    msg.header.stamp = Time(sec=3, nanosec=500)
    for i in range(3):
        c = CandidateMatch(keyframe_id=i, robot_id="robot7", map_id=f"map{i}", descriptor_distance=0.5 + i,
                           reranked_distance=0.25 + i, score=0.9 - i * 0.1, has_relative_pose=bool(i == 1),
                           verified=bool(i == 1), num_inliers=40 * i, inlier_ratio=0.25 * i, pose_type=2 * (i == 1),
                           sequence_score=0.8 - 0.1 * i, sequence_aligned=10 - i)
        c.stamp = Time(sec=i, nanosec=7)
        c.relative_pose.pose.position.x = 1.0 + i
        c.relative_pose.pose.orientation.w = 1.0
        c.relative_pose.covariance[0] = 0.01 * (i + 1)
        msg.candidates.append(c)
    return msg


def test_candidate_bytes_equal_rclpy_serialization():
    """Types registered from msg/*.msg text serialize exactly like the built message."""
    from rclpy.serialization import deserialize_message, serialize_message

    from maqbool_ros.msg import LoopClosureCandidate

    ts = bags.typestore()
    T = ts.types
    ref = _rclpy_candidate()
    cands = []
    for c in ref.candidates:
        p = c.relative_pose.pose
        pose = T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=p.position.x, y=p.position.y, z=p.position.z),
            orientation=T["geometry_msgs/msg/Quaternion"](x=p.orientation.x, y=p.orientation.y,
                                                          z=p.orientation.z, w=p.orientation.w))
        cands.append(T["maqbool_ros/msg/CandidateMatch"](
            keyframe_id=c.keyframe_id, robot_id=c.robot_id, map_id=c.map_id,
            stamp=T["builtin_interfaces/msg/Time"](sec=c.stamp.sec, nanosec=c.stamp.nanosec),
            descriptor_distance=c.descriptor_distance, reranked_distance=c.reranked_distance, score=c.score,
            has_relative_pose=c.has_relative_pose, verified=c.verified, num_inliers=c.num_inliers,
            inlier_ratio=c.inlier_ratio, pose_type=c.pose_type, sequence_score=c.sequence_score,
            sequence_aligned=c.sequence_aligned, relative_pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=pose, covariance=np.asarray(c.relative_pose.covariance, dtype=np.float64))))
    msg = T[bags.CANDIDATE_TYPE](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=3, nanosec=500), frame_id="42"),
        query_keyframe_id=42, robot_id="robot7", map_id="session-3", candidates=cands, method="maqbool",
        region_source="edge_boxes", region_budget=50, sequence_length=ref.sequence_length, num_reranked=3,
        reranking_complete=True,
        latency_ms=12.5, descriptor_ms=7.0, search_ms=1.5, rerank_ms=4.0, verify_ms=3.25)
    ours, theirs = bytes(ts.serialize_cdr(msg, bags.CANDIDATE_TYPE)), bytes(serialize_message(ref))
    assert len(ours) == len(theirs)
    # Byte for byte equal except CDR alignment padding, which rclpy's typesupport leaves
    # uninitialised (it differs between two rclpy serializations of one message too).
    differ = [i for i in range(len(ours)) if ours[i] != theirs[i]]
    assert all(ours[i] == 0 for i in differ) and len(differ) < 16
    assert deserialize_message(ours, LoopClosureCandidate) == deserialize_message(theirs, LoopClosureCandidate)
    back = ts.deserialize_cdr(theirs, bags.CANDIDATE_TYPE)
    assert bytes(ts.serialize_cdr(back, bags.CANDIDATE_TYPE)) == ours
    assert back.candidates[2].score == pytest.approx(0.7) and back.candidates[1].has_relative_pose
    assert back.candidates[1].verified and back.candidates[1].pose_type == 2 and back.candidates[2].num_inliers == 80


def test_play_and_record_with_rclpy(tiny_dataset, tmp_path):
    """BagPlayer publishes every image of a bag; CandidateRecorder stores rclpy's exact bytes,
    and a bag written from them reads back to the same message."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from maqbool_ros.msg import LoopClosureCandidate
    from maqbool_ros.ros.bag_player import BagPlayer
    from maqbool_ros.ros.recorder import CandidateRecorder

    bag = tmp_path / "in"
    bags.write_dataset_bag(tiny_dataset, bag, storage="mcap", rate_hz=200.0, progress=False)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_bag_tools", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: list = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/replayed", received.append, qos)
    recorder = CandidateRecorder(node, "/cands")
    pub = node.create_publisher(LoopClosureCandidate, "/cands", qos)
    try:
        player = BagPlayer(node, bag, rate=1.0, remaps={"/keyframes/image": "/replayed"}, topics=["/keyframes/image"])
        assert player.wait_for_subscribers("/keyframes/image", bags.IMAGE_TYPE, 10.0)
        assert player.play() == 7
        end = time.monotonic() + 10
        while len(received) < 7 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        assert [m.header.frame_id for m in received] == [str(i) for i in range(7)]
        np.testing.assert_array_equal(np.asarray(received[5].data).reshape(24, 32, 3), tiny_dataset.queries[1])
        end = time.monotonic() + 10
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        sent = _rclpy_candidate()
        pub.publish(sent)
        end = time.monotonic() + 10
        while len(recorder) < 1 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        expected = bytes(serialize_message(sent))  # equal up to rclpy's uninitialised CDR padding
        assert len(recorder.messages[0][1]) == len(expected)
        assert deserialize_message(recorder.messages[0][1], LoopClosureCandidate) == \
            deserialize_message(expected, LoopClosureCandidate)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    with bags.BagWriter(tmp_path / "cands", "sqlite3") as writer:
        for t_ns, data in recorder.messages:
            writer.write_raw("/cands", bags.CANDIDATE_TYPE, t_ns, data)
    (topic, msgtype, _, msg), = list(bags.read_messages(tmp_path / "cands"))
    assert msgtype == bags.CANDIDATE_TYPE and msg.query_keyframe_id == 42 and len(msg.candidates) == 3


def test_bag_cli_help():
    from maqbool_ros.tools.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["bag"].format_help()
    for word in ("from-images", "play", "record-candidates"):
        assert word in text


def test_msg_dir_is_the_source_trees_in_a_checkout():
    """In a checkout the .msg files of the checkout are registered, not an installed (maybe older) copy."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert bags.msg_dir() == repo / "msg"
