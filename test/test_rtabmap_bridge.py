"""End to end with RTAB-Map's interfaces: a fake RTAB-Map (test/helpers/fake_rtabmap.py) publishes the
rtabmap_loop frames as map nodes, `maqbool-rtabmap-bridge` turns them into keyframes for a real
`maqbool-node`, and the node's verified candidates come back to the fake as add_link calls: true
revisits only, all inside working memory, each with a transform and a positive-definite information
matrix; nothing for nodes that left working memory."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("rtabmap_msgs", reason="rtabmap_msgs not built (make test-interfaces builds the test subset)")

from helpers.configs import SINGLE_FRAME  # noqa: E402
from helpers.fake_rtabmap import (  # noqa: E402
    BridgeProcess,
    FakeRtabmap,
    jpeg,
    noise_frames,
    wait_bridge_up,
    wait_until,
)
from helpers.node_proc import NodeProcess  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.integration.links import LINK_USER_CLOSURE, is_positive_definite  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")

CFG = MaqboolConfig(method="netvlad", top_k=5, exclude_recent_keyframes=10, exclude_recent_seconds=0.0,
                    stats_period_s=1.0, verification_top_n=3, verification_temporal_k=2)
# Nodes 1..15 (frames 0..14) leave working memory when node 36 is added: the revisits of frames 40..52
# (their true matches are all among frames 0..14) must then not become links.
WM_DROP_AT, WM_DROPPED = 36, (1, 15)
BRIDGE = {"link_pose_types": "metric+rotation", "stats_period_s": 0.1, "service_timeout_s": 30.0}


def truth(root) -> dict[int, set[int]]:
    rows = (line.split(",") for line in (root / "loop_pairs.csv").read_text().splitlines()[1:])
    return {int(i): {int(j) for j in js.split()} for i, js in rows}


def test_bridge_links_true_revisits_inside_working_memory(rtabmap_loop_dir, tmp_path):
    frames = sorted((rtabmap_loop_dir / "frames").glob("*.jpg"))
    loops = truth(rtabmap_loop_dir)
    node = NodeProcess(CFG, tmp_path)
    fake = FakeRtabmap(node.ns, frames, (512, 384), wm_drop_at=WM_DROP_AT, wm_drop_ids=WM_DROPPED)
    bridge = BridgeProcess(node.ns, tmp_path, BRIDGE)
    fake.watch_stats(f"{bridge.fqn}/stats")
    procs = (node, bridge)

    def settled(n: int) -> bool:  # the bridge handled n candidate messages and no add_link call is open
        s = fake.latest_stats()
        return s is not None and s["counts"].get("candidate_messages", 0) >= n and s["pending_calls"] == 0

    try:
        wait_until(lambda: fake.map_pub.get_subscription_count() > 0 and fake.info_pub.get_subscription_count() > 0
                   and fake.count_subscribers(f"{node.ns}/keyframes") >= 1
                   and fake.count_publishers(f"{node.ns}/loop_closure/candidates") >= 1
                   and fake.latest_stats() is not None, 300, "node and bridge to come up", procs)
        for i in range(len(frames)):
            fake.step(i)
            wait_until(lambda: settled(i + 1), 120, f"the candidates of node {i + 1} handled by the bridge", procs)
        stats = fake.latest_stats()
    finally:
        fake.close()
        assert bridge.stop() == 0, bridge.log_text()[-3000:]
        assert node.stop() == 0
    links = fake.received()
    counts = stats["counts"]
    true_links = [k for k in links if k.to_id - 1 in loops.get(k.from_id - 1, set())]
    print(f"\nrtabmap_loop via the bridge: {counts['keyframes_published']} keyframes, {len(links)} links sent, "
          f"{len(true_links)} true revisits; not sent: {stats['rejected']}")
    assert counts["keyframes_published"] == len(frames)
    assert len(links) >= 10 and counts["links_sent"] == len(links)
    assert len(true_links) == len(links), [(k.from_id, k.to_id) for k in links if k not in true_links]
    assert all(k.in_wm for k in links)  # nothing sent for a node outside working memory
    dropped = set(range(WM_DROPPED[0], WM_DROPPED[1] + 1))
    assert not any(k.to_id in dropped and k.from_id >= WM_DROP_AT for k in links)
    assert stats["rejected"]["outside_wm"] >= 1  # verified revisits of the dropped nodes were filtered
    for k in links:
        assert k.type == LINK_USER_CLOSURE and np.all(np.isfinite(k.translation))
        assert abs(np.linalg.norm(k.quaternion) - 1.0) < 1e-6
        assert is_positive_definite(k.information)
    assert not any(counts.get(key, 0) for key in ("failed_unavailable", "failed_timeout", "failed_error",
                                                  "malformed_nodes"))


def test_bridge_converts_nodes_to_keyframes_and_candidates_to_links(tmp_path):
    """Without the node: the test plays the node (keyframes in, scripted candidates out)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from helpers.fake_rtabmap import LOCAL_QUAT, LOCAL_XYZ
    from helpers.node_proc import unique_namespace
    from maqbool_ros.core.verification.geometry import invert_T, transform_from_xyz_quat
    from maqbool_ros.msg import CandidateMatch, Keyframe, LoopClosureCandidate
    from maqbool_ros.ros.conversions import pose_with_covariance

    frames = noise_frames(tmp_path, 4, seed=3)
    ns = unique_namespace()
    fake = FakeRtabmap(ns, frames, (64, 48), wm_drop_at=4, wm_drop_ids=(1, 1))
    bridge = BridgeProcess(ns, tmp_path, {"robot_id": "r1", "stats_period_s": 0.1, "max_links_per_query": 2})
    fake.watch_stats(f"{bridge.fqn}/stats")
    got: list[Keyframe] = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    fake.create_subscription(Keyframe, f"{ns}/keyframes", got.append, qos)
    pub = fake.create_publisher(LoopClosureCandidate, f"{ns}/loop_closure/candidates", qos)
    try:
        wait_bridge_up(fake, pub, ns, bridge)
        for i in range(4):
            fake.step(i)
        wait_until(lambda: len(got) == 4, 60, "4 keyframes", (bridge,))
        kf = got[2]
        assert kf.keyframe_id == 3 and kf.robot_id == "r1" and kf.map_id == "0"
        assert kf.compressed_image.format == "jpeg" and bytes(kf.compressed_image.data) == frames[2].read_bytes()
        assert kf.camera_info.width == 64 and kf.camera_info.k[0] > 0 and len(kf.depth.data) == 0

        L = transform_from_xyz_quat(LOCAL_XYZ, LOCAL_QUAT)
        T_cam = transform_from_xyz_quat([0.3, -0.1, 0.8], [0.05, 0.1, 0.0, 0.99])
        msg = LoopClosureCandidate(query_keyframe_id=4, robot_id="r1")
        for cand_id, verified, pose_type in [(3, True, 2), (2, False, 2), (1, True, 2), (2, True, 1)]:
            c = CandidateMatch(keyframe_id=cand_id, robot_id="r1", verified=verified, pose_type=pose_type,
                               has_relative_pose=True)
            pose_with_covariance(c.relative_pose, T_cam, np.diag([1e-3] * 3 + [1e-4] * 3))
            msg.candidates.append(c)
        bad = LoopClosureCandidate(query_keyframe_id=4, robot_id="r1",
                                   candidates=[CandidateMatch(keyframe_id=3, verified=True, has_relative_pose=True)])
        bad.candidates[0].relative_pose.pose.orientation.w = 0.0  # a zero quaternion: counted, not fatal
        pub.publish(bad)
        pub.publish(msg)  # node 1 left working memory when node 4 came; 2/1 is scale-less (metric policy)
        wait_until(lambda: len(fake.received()) == 1 and (fake.latest_stats() or {}).get("counts", {}).get(
            "candidate_messages", 0) == 2, 60, "one link", (bridge,))
        link = fake.received()[0]
        assert (link.from_id, link.to_id, link.type) == (4, 3, LINK_USER_CLOSURE) and link.in_wm
        T_sent = transform_from_xyz_quat(link.translation, link.quaternion)
        assert np.allclose(T_sent, L @ T_cam @ invert_T(L), atol=1e-6)  # camera -> base frames
        assert is_positive_definite(link.information)
        wait_until(lambda: fake.latest_stats()["counts"].get("links_sent") == 1, 30, "links_sent", (bridge,))
        assert fake.latest_stats()["counts"]["malformed_candidates"] == 1
        rejected = fake.latest_stats()["rejected"]
        assert rejected["not_verified"] == 1 and rejected["outside_wm"] == 1 and rejected["scale_less"] == 1
    finally:
        fake.close()
        assert bridge.stop() == 0, bridge.log_text()[-3000:]


def test_seed_from_map_publishes_the_nodes_mapped_before_the_bridge_started(tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from helpers.node_proc import unique_namespace
    from maqbool_ros.msg import Keyframe

    frames = noise_frames(tmp_path, 4, seed=4)
    ns = unique_namespace()
    fake = FakeRtabmap(ns, frames, (64, 48))
    for i in range(3):  # mapped before the bridge runs: nobody receives these mapData messages
        fake.step(i)
    got: list[Keyframe] = []
    fake.create_subscription(Keyframe, f"{ns}/keyframes", got.append,
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    bridge = BridgeProcess(ns, tmp_path, {"seed_from_map": True, "stats_period_s": 0.1})
    try:
        wait_until(lambda: len(got) == 3, 120, "the 3 seeded keyframes", (bridge,))
        wait_until(lambda: fake.map_pub.get_subscription_count() > 0, 60, "the mapData subscription", (bridge,))
        fake.step(3)
        wait_until(lambda: len(got) == 4, 60, "the 4th keyframe", (bridge,))
        # one reliable publisher delivers in order: a duplicate of a seeded node would be in `got` already
        assert sorted(k.keyframe_id for k in got) == [1, 2, 3, 4] and fake.get_map_calls == 1
    finally:
        fake.close()
        assert bridge.stop() == 0, bridge.log_text()[-3000:]


def test_unanswered_and_unavailable_add_link_are_counted_and_the_link_can_be_sent_again(tmp_path):
    import json

    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from helpers.node_proc import unique_namespace
    from maqbool_ros.msg import CandidateMatch, LoopClosureCandidate
    from maqbool_ros.ros.conversions import pose_with_covariance

    frames = noise_frames(tmp_path, 2, seed=5)
    ns = unique_namespace()
    fake = FakeRtabmap(ns, frames, (64, 48))
    bridges = [BridgeProcess(ns, tmp_path, {"stats_period_s": 0.1, "service_timeout_s": 0.3}),
               BridgeProcess(f"{ns}/b", tmp_path, {"stats_period_s": 0.1, "map_data_topic": f"{ns}/rtabmap/mapData",
                                                   "info_topic": f"{ns}/rtabmap/info",
                                                   "candidates_topic": f"{ns}/loop_closure/candidates",
                                                   "add_link_service": "nobody/add_link"})]
    stats = {b.fqn: [] for b in bridges}
    for b in bridges:
        fake.create_subscription(String, f"{b.fqn}/stats", lambda m, k=b.fqn: stats[k].append(json.loads(m.data)), 10)
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    pub = fake.create_publisher(LoopClosureCandidate, f"{ns}/loop_closure/candidates", qos)

    def count(b, key: str) -> int:
        return stats[b.fqn][-1]["counts"].get(key, 0) if stats[b.fqn] else 0

    msg = LoopClosureCandidate(query_keyframe_id=2)
    c = CandidateMatch(keyframe_id=1, verified=True, pose_type=2, has_relative_pose=True)
    pose_with_covariance(c.relative_pose, np.eye(4), np.diag([1e-3] * 3 + [1e-4] * 3))
    msg.candidates.append(c)
    try:
        wait_until(lambda: fake.map_pub.get_subscription_count() >= 2 and pub.get_subscription_count() >= 2
                   and all(stats.values()), 120, "the bridges to come up", bridges)
        fake.step(0)
        fake.step(1)
        wait_until(lambda: all(count(b, "keyframes_published") == 2 for b in bridges), 60, "the keyframes", bridges)
        fake.add_link_delay_s = 1.5
        pub.publish(msg)
        wait_until(lambda: count(bridges[0], "failed_timeout") == 1, 60, "the timeout", bridges)
        wait_until(lambda: count(bridges[1], "failed_unavailable") == 1, 60, "the unavailable service", bridges)
        fake.add_link_delay_s = 0.0
        pub.publish(msg)  # the failed pair is not a duplicate: it goes again
        wait_until(lambda: count(bridges[0], "links_sent") == 1, 60, "the link sent again", bridges)
        wait_until(lambda: count(bridges[1], "failed_unavailable") == 2, 60, "the second unavailable call", bridges)
        assert [(k.from_id, k.to_id) for k in fake.received()] == [(2, 1)]
        assert count(bridges[0], "rejected_duplicate") == 0
    finally:
        fake.close()
        for b in bridges:
            assert b.stop() == 0, b.log_text()[-3000:]


def test_rgbd_nodes_give_a_metric_link_in_base_frames(tmp_path):
    """RGB-D nodes with RVL depth (RTAB-Map's default) and the default metric policy: the revisit's
    link carries the true relative pose between the robot base frames."""

    from helpers.fake_rtabmap import LOCAL_QUAT, LOCAL_XYZ
    from helpers.rgbd_scene import HEIGHT, WIDTH, K, candidate_depth, rotation, texture, view
    from helpers.rvl import rvl_encode
    from maqbool_ros.core.verification.geometry import invert_T, make_T, transform_from_xyz_quat

    R_true, t_true, depth_m = rotation(2.0, -4.0, 1.5), np.array([0.25, -0.05, 0.10]), 3.0

    cfg = MaqboolConfig(**SINGLE_FRAME, method="netvlad", top_k=5, exclude_recent_keyframes=0,
                        exclude_recent_seconds=0.0, stats_period_s=1.0, verification_top_n=2)
    node = NodeProcess(cfg, tmp_path)
    fake = FakeRtabmap(node.ns, [], (WIDTH, HEIGHT))
    bridge = BridgeProcess(node.ns, tmp_path, {"stats_period_s": 0.1})
    fake.watch_stats(f"{bridge.fqn}/stats")
    procs = (node, bridge)
    try:
        wait_until(lambda: fake.map_pub.get_subscription_count() > 0
                   and fake.count_subscribers(f"{node.ns}/keyframes") >= 1
                   and fake.count_publishers(f"{node.ns}/loop_closure/candidates") >= 1
                   and fake.latest_stats() is not None, 300, "node and bridge to come up", procs)
        depth_mm = rvl_encode(candidate_depth(depth_m, mm=True))
        for i in range(4):  # the map: node 1 is revisited by node 5
            fake.add_node(i + 1, jpeg(texture(i)), (WIDTH, HEIGHT), K, depth=depth_mm, stamp=float(i))
            n = i + 1
            wait_until(lambda: (fake.latest_stats() or {}).get("counts", {}).get("candidate_messages", 0) >= n, 120,
                       f"the candidates of node {n}", procs)
        rgb, depth = view(texture(0), R_true, t_true, depth_m)
        fake.add_node(5, jpeg(rgb), (WIDTH, HEIGHT), K, depth=rvl_encode(np.rint(depth * 1000).astype(np.uint16)),
                      stamp=4.0)
        wait_until(lambda: len(fake.received()) >= 1, 120, "the link of node 5", procs)
    finally:
        fake.close()
        assert bridge.stop() == 0, bridge.log_text()[-3000:]
        assert node.stop() == 0
    link = fake.received()[0]
    assert (link.from_id, link.to_id, link.type) == (5, 1, LINK_USER_CLOSURE)
    L = transform_from_xyz_quat(LOCAL_XYZ, LOCAL_QUAT)
    expected = L @ make_T(R_true, t_true) @ invert_T(L)  # T_query_candidate between the base frames
    sent = transform_from_xyz_quat(link.translation, link.quaternion)
    t_err = float(np.linalg.norm(sent[:3, 3] - expected[:3, 3]))
    r_err = float(np.degrees(np.arccos(np.clip((np.trace(sent[:3, :3].T @ expected[:3, :3]) - 1) / 2, -1, 1))))
    print(f"\nmetric link 5 -> 1 in base frames: translation error {t_err * 100:.1f} cm, rotation {r_err:.2f} deg")
    assert t_err < 0.05 and r_err < 1.0  # metres at 3 m, degrees
    assert is_positive_definite(link.information)
    assert np.diag(link.information)[:3].min() > 1.0  # a metric translation: variance well under 1 m^2
