"""LoopClosureCandidate: inter-process round trip with rclpy, and rosbags compatibility."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from helpers.ros_procs import spawn_python

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

REPO = Path(__file__).resolve().parents[1]

# Builds the same fully populated message in both processes.
MAKE_MSG = textwrap.dedent("""
    from builtin_interfaces.msg import Time
    from maqbool_ros.msg import CandidateMatch, LoopClosureCandidate

    def make_msg(cam="cam", robot="robot_a", cand_robot="rb{}", query_map="m01", cand_map="map{}"):
        # Default string lengths make a message with no CDR alignment padding (see test below):
        # the candidate's robot id ends 4-aligned with 3 characters, and a candidate is then
        # 404 bytes + its map id's length, a multiple of 8 for 4 characters.
        m = LoopClosureCandidate()
        m.header.stamp = Time(sec=1700000000, nanosec=123456789)
        m.header.frame_id = cam
        m.query_keyframe_id = 4242
        m.robot_id, m.map_id = robot, query_map
        m.method, m.region_source = "maqbool", "edge_boxes"
        m.region_budget, m.num_reranked, m.reranking_complete = 25, 100, True
        m.sequence_length = 10
        m.latency_ms, m.descriptor_ms, m.search_ms, m.rerank_ms = 512.5, 80.25, 3.5, 400.0
        m.verify_ms = 45.75
        for i in range(3):
            c = CandidateMatch(keyframe_id=10 + i, robot_id=cand_robot.format(i), map_id=cand_map.format(i),
                               stamp=Time(sec=100 + i, nanosec=7), descriptor_distance=0.5 + i,
                               reranked_distance=0.25 + i, score=0.9 - i * 0.1,
                               has_relative_pose=(i == 1), verified=(i < 2), num_inliers=100 - 30 * i,
                               inlier_ratio=0.75 - 0.25 * i, pose_type=(CandidateMatch.POSE_METRIC, 1, 0)[i],
                               sequence_score=0.8 - 0.1 * i, sequence_aligned=10 - i)
            c.relative_pose.pose.position.x = 1.5 * i
            c.relative_pose.pose.orientation.w = 1.0
            c.relative_pose.covariance[0] = 0.01 * (i + 1)
            c.relative_pose.covariance[35] = 0.5
            m.candidates.append(c)
        return m
""")

SUBSCRIBER = MAKE_MSG + textwrap.dedent("""
    import sys, rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy
    from maqbool_ros.msg import LoopClosureCandidate
    rclpy.init()
    node = Node("lcc_listener")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    got = []
    node.create_subscription(LoopClosureCandidate, "lcc_test", got.append, qos)
    print("READY", flush=True)
    import time
    end = time.time() + 30
    while not got and time.time() < end:
        rclpy.spin_once(node, timeout_sec=0.2)
    from rclpy.serialization import deserialize_message, serialize_message
    # compare at wire precision (float32 fields): a python float 0.9 is not float32(0.9)
    expected = deserialize_message(serialize_message(make_msg()), LoopClosureCandidate)
    print("EQUAL" if got and got[0] == expected else f"DIFF {got[:1]}", flush=True)
    rclpy.shutdown()
""")

PUBLISHER = MAKE_MSG + textwrap.dedent("""
    import time, rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy
    from maqbool_ros.msg import LoopClosureCandidate
    rclpy.init()
    node = Node("lcc_talker")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(LoopClosureCandidate, "lcc_test", qos)
    pub.publish(make_msg())
    end = time.time() + 30
    while time.time() < end and pub.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(2.0)  # let the late-joining subscriber fetch the transient-local sample
    rclpy.shutdown()
""")


def test_round_trip_between_processes():
    sub = spawn_python(SUBSCRIBER)
    assert sub.stdout.readline().strip() == "READY", sub.stderr.read()
    pub = spawn_python(PUBLISHER)
    out, err = sub.communicate(timeout=60)
    pub.kill()  # its only job (serving the transient-local sample) is done
    pub.communicate(timeout=60)
    assert "EQUAL" in out, f"subscriber said {out!r}\n{err}"


def _msg_texts() -> dict[str, str]:
    return {f"maqbool_ros/msg/{p.stem}": p.read_text() for p in sorted((REPO / "msg").glob("*.msg"))}


def _rosbags_store():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name, text in _msg_texts().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def _to_rosbags(store, msg):
    """Build the rosbags object field by field from the rclpy message (no shortcut)."""
    import numpy as np

    t = store.types
    Time = t["builtin_interfaces/msg/Time"]

    def pose_cov(pc):
        p, q = pc.pose.position, pc.pose.orientation
        pose = t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=p.x, y=p.y, z=p.z),
            orientation=t["geometry_msgs/msg/Quaternion"](x=q.x, y=q.y, z=q.z, w=q.w))
        return t["geometry_msgs/msg/PoseWithCovariance"](pose=pose,
                                                         covariance=np.array(pc.covariance, dtype=np.float64))

    cands = [t["maqbool_ros/msg/CandidateMatch"](
        keyframe_id=c.keyframe_id, relative_pose=pose_cov(c.relative_pose),
        stamp=Time(sec=c.stamp.sec, nanosec=c.stamp.nanosec), descriptor_distance=c.descriptor_distance,
        reranked_distance=c.reranked_distance, score=c.score, inlier_ratio=c.inlier_ratio,
        num_inliers=c.num_inliers, robot_id=c.robot_id, map_id=c.map_id, has_relative_pose=c.has_relative_pose,
        verified=c.verified, pose_type=c.pose_type, sequence_score=c.sequence_score,
        sequence_aligned=c.sequence_aligned) for c in msg.candidates]
    header = t["std_msgs/msg/Header"](stamp=Time(sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec),
                                      frame_id=msg.header.frame_id)
    return t["maqbool_ros/msg/LoopClosureCandidate"](
        header=header, query_keyframe_id=msg.query_keyframe_id, robot_id=msg.robot_id, map_id=msg.map_id,
        candidates=cands,
        latency_ms=msg.latency_ms, descriptor_ms=msg.descriptor_ms, search_ms=msg.search_ms,
        rerank_ms=msg.rerank_ms, verify_ms=msg.verify_ms, num_reranked=msg.num_reranked,
        region_budget=msg.region_budget, sequence_length=msg.sequence_length,
        method=msg.method, region_source=msg.region_source, reranking_complete=msg.reranking_complete)


TYPE = "maqbool_ros/msg/LoopClosureCandidate"


def _make(**kwargs):
    ns: dict = {}
    exec(MAKE_MSG, ns)  # noqa: S102 - our own test snippet
    return ns["make_msg"](**kwargs)


def test_rosbags_bytes_equal_rclpy_bytes():
    """With string lengths that need no alignment padding the CDR bytes are identical.

    (Fast DDS leaves alignment padding bytes uninitialised, so only padding-free
    messages can be compared byte for byte; the next test covers arbitrary strings.)"""
    from rclpy.serialization import deserialize_message, serialize_message

    from maqbool_ros.msg import LoopClosureCandidate

    store = _rosbags_store()
    msg = _make()
    ours = bytes(store.serialize_cdr(_to_rosbags(store, msg), TYPE))
    theirs = serialize_message(msg)
    assert ours == theirs
    assert deserialize_message(ours, LoopClosureCandidate) == deserialize_message(theirs, LoopClosureCandidate)


def test_rosbags_and_rclpy_read_each_other_with_any_strings():
    from rclpy.serialization import deserialize_message, serialize_message

    from maqbool_ros.msg import LoopClosureCandidate

    store = _rosbags_store()
    msg = _make(cam="camera_left", robot="r2", cand_robot="agent-{}-x", query_map="", cand_map="session-{}")
    ours = bytes(store.serialize_cdr(_to_rosbags(store, msg), TYPE))
    theirs = serialize_message(msg)
    assert len(ours) == len(theirs)
    wire = deserialize_message(theirs, LoopClosureCandidate)
    assert deserialize_message(ours, LoopClosureCandidate) == wire
    back = store.deserialize_cdr(theirs, TYPE)
    assert back.candidates[2].robot_id == "agent-2-x" and back.header.frame_id == "camera_left"
    assert back.candidates[1].map_id == "session-1" and back.map_id == ""
    assert math.isclose(back.latency_ms, 512.5) and back.region_budget == 25
    assert [c.verified for c in back.candidates] == [True, True, False]
    assert [c.pose_type for c in back.candidates] == [2, 1, 0] and back.candidates[1].num_inliers == 70
    assert math.isclose(back.verify_ms, 45.75) and math.isclose(back.candidates[0].inlier_ratio, 0.75)
    assert bytes(store.serialize_cdr(back, TYPE)) == ours


def test_result_to_msg_carries_the_verification_and_the_pose():
    """A verified metric candidate's pose, quaternion and covariance reach the message exactly."""
    import numpy as np
    from std_msgs.msg import Header
    from test_verification_pipeline import R_TRUE, T_TRUE, ThumbnailEngine, build_map, config, revisit

    from maqbool_ros.core.pipeline import LoopClosurePipeline
    from maqbool_ros.core.verification import transform_from_xyz_quat
    from maqbool_ros.msg import CandidateMatch
    from maqbool_ros.ros.conversions import result_to_msg

    pipe = LoopClosurePipeline(config(), engine=ThumbnailEngine())
    build_map(pipe)
    res = revisit(pipe)
    msg = result_to_msg(res, Header(frame_id="100"), 12.5)
    best, other = msg.candidates[0], msg.candidates[1]
    assert best.verified and best.has_relative_pose and best.pose_type == CandidateMatch.POSE_METRIC
    assert best.num_inliers == res.checks.num_inliers[0]
    assert math.isclose(best.inlier_ratio, res.checks.inlier_ratios[0], rel_tol=1e-6)
    p, q = best.relative_pose.pose.position, best.relative_pose.pose.orientation
    T = transform_from_xyz_quat([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
    np.testing.assert_allclose(T, res.checks.relative_poses[0], atol=1e-9)
    assert np.linalg.norm(T[:3, 3] - T_TRUE) < 0.03 and np.allclose(T[:3, :3], R_TRUE, atol=0.01)
    np.testing.assert_allclose(np.reshape(best.relative_pose.covariance, (6, 6)), res.checks.pose_covariances[0])
    assert not other.verified and not other.has_relative_pose and other.pose_type == CandidateMatch.POSE_NONE
    assert msg.verify_ms == pytest.approx(res.timings_ms["verify"], rel=1e-6)
