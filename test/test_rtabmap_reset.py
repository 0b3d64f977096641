"""RTAB-Map reset mid-run, through `maqbool-rtabmap-bridge` and the fake RTAB-Map
(test/helpers/fake_rtabmap.py): the new session's nodes (ids from 1 again) become keyframes with new
ids, its candidates become links with RTAB-Map's ids, the old session's candidates are not sent; and
the bridge's links_kept / links_rejected counters are what the fake RTAB-Map did with each link."""
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
from maqbool_ros.core.integration.bridge_state import keyframe_id  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")


def candidates(query_kf: int, candidate_kfs: list[int]):
    """A LoopClosureCandidate as the node sends it: verified metric poses, best first."""
    from maqbool_ros.msg import CandidateMatch, LoopClosureCandidate
    from maqbool_ros.ros.conversions import pose_with_covariance

    msg = LoopClosureCandidate(query_keyframe_id=query_kf)
    for kf in candidate_kfs:
        c = CandidateMatch(keyframe_id=kf, verified=True, pose_type=2, has_relative_pose=True)
        pose_with_covariance(c.relative_pose, np.eye(4), np.diag([1e-3] * 3 + [1e-4] * 3))
        msg.candidates.append(c)
    return msg


def test_reset_mid_run_new_session_links_and_kept_rejected_counters(tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from helpers.node_proc import unique_namespace
    from maqbool_ros.msg import Keyframe, LoopClosureCandidate

    frames = noise_frames(tmp_path, 6, seed=7)
    ns = unique_namespace()
    fake = FakeRtabmap(ns, frames, (64, 48))
    fake.reject_links = {(3, 1)}  # RTAB-Map refuses 3 -> 1 (as its graph checks may), in both sessions
    bridge = BridgeProcess(ns, tmp_path, {"stats_period_s": 0.1, "candidate_pose_frame": "base"})
    fake.watch_stats(f"{bridge.fqn}/stats")
    got: list[Keyframe] = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    fake.create_subscription(Keyframe, f"{ns}/keyframes", got.append, qos)
    pub = fake.create_publisher(LoopClosureCandidate, f"{ns}/loop_closure/candidates", qos)

    def count(key: str) -> int:
        return (fake.latest_stats() or {}).get("counts", {}).get(key, 0)

    def wait_count(key: str, n: int, what: str) -> None:
        wait_until(lambda: count(key) == n, 60, f"{key} == {n} ({what}); stats {fake.latest_stats()}", (bridge,))

    try:
        wait_bridge_up(fake, pub, ns, bridge)
        # session 0: nodes 1..4, links 4 -> 2 (kept) and 3 -> 1 (refused), judged by the graphs of nodes 5, 6
        for i in range(4):
            fake.step(i)
        wait_until(lambda: len(got) == 4, 60, "session 0's 4 keyframes", (bridge,))
        wait_until(lambda: fake.latest_stats()["working_memory_size"] == 4, 60, "Info of node 4", (bridge,))
        pub.publish(candidates(4, [2]))
        pub.publish(candidates(3, [1]))
        wait_count("links_sent", 2, "session 0's links answered")
        fake.step(4)
        fake.step(5)
        wait_count("links_rejected", 1, "3 -> 1 judged")
        assert count("links_kept") == 1
        # 6 -> 5 is kept by the fake, but RTAB-Map is reset before a graph shows it: no verdict
        pub.publish(candidates(6, [5]))
        wait_count("links_sent", 3, "6 -> 5 answered")

        fake.reset()
        for i in range(4):  # session 1: node ids 1..4 again (new nodes)
            fake.step(i)
        wait_until(lambda: len(got) == 10, 60, "session 1's 4 keyframes", (bridge,))
        wait_until(lambda: fake.latest_stats()["working_memory_size"] == 4, 60, "Info of node 1.4", (bridge,))
        wait_count("rtabmap_resets", 1, "the reset")
        assert count("links_unjudged") == 1
        new = [keyframe_id(1, n) for n in range(1, 7)]
        pub.publish(candidates(new[3], [2, new[1]]))  # old session's node 2 first: not sent
        pub.publish(candidates(new[2], [new[0]]))  # 3 -> 1 again: no duplicate of session 0's
        wait_count("links_sent", 5, "session 1's links answered")
        fake.step(4)
        fake.step(5)
        wait_count("links_rejected", 2, "session 1's 3 -> 1 judged")
        wait_count("links_kept", 2, "session 1's 4 -> 2 judged")
        stats = fake.latest_stats()
    finally:
        fake.close()
        assert bridge.stop() == 0, bridge.log_text()[-3000:]

    assert [k.keyframe_id for k in got] == [1, 2, 3, 4, 5, 6, *new]  # the database refuses no id
    assert [k.map_id for k in got] == ["0"] * 6 + ["0@1"] * 6
    links = fake.received()
    assert [(k.session, k.from_id, k.to_id) for k in links] == [(0, 4, 2), (0, 3, 1), (0, 6, 5), (1, 4, 2), (1, 3, 1)]
    assert all(k.in_wm for k in links)  # session 1's links name session 1's nodes, all in its memory
    kept = [k for k in links if k.kept]
    refused = [k for k in links if not k.kept]
    # what the fake did, link by link: kept 4 -> 2 twice and 6 -> 5 (judged by no graph: reset), refused 3 -> 1 twice
    assert [(k.session, k.from_id, k.to_id) for k in kept] == [(0, 4, 2), (0, 6, 5), (1, 4, 2)]
    counts = stats["counts"]
    assert counts["links_kept"] + counts["links_unjudged"] == len(kept) == 3
    assert counts["links_rejected"] == len(refused) == 2
    assert stats["rejected"]["other_session"] == 1 and stats["session"] == 1
    assert stats["links_awaiting_verdict"] == 0
    assert counts["keyframes_published"] == 12 and not counts.get("rejected_duplicate", 0)


def test_a_real_node_stores_both_sessions_and_links_inside_the_new_one(tmp_path):
    """Through a real `maqbool-node`: RTAB-Map's session 0 maps 4 RGB-D views of the synthetic room
    corner, is reset, and session 1 maps the same 4 views again under the same node ids 1..4, then
    revisits view 0 as node 5. The node's database keeps all 9 keyframes (none refused as a
    duplicate); the loop goes to session 1's node 1, not to session 0's (same image, gone from RTAB-Map)."""
    import json

    from std_msgs.msg import String

    from helpers.node_proc import NodeProcess
    from helpers.rgbd_scene import HEIGHT, WIDTH, K, candidate_depth, rotation, texture, view
    from helpers.rvl import rvl_encode
    from maqbool_ros.core.config import MaqboolConfig

    cfg = MaqboolConfig(**SINGLE_FRAME, method="netvlad", top_k=5, exclude_recent_keyframes=0,
                        exclude_recent_seconds=0.0, stats_period_s=0.2, verification_top_n=2)
    node = NodeProcess(cfg, tmp_path)
    fake = FakeRtabmap(node.ns, [], (WIDTH, HEIGHT))
    bridge = BridgeProcess(node.ns, tmp_path, {"stats_period_s": 0.1})
    fake.watch_stats(f"{bridge.fqn}/stats")
    node_stats: list[dict] = []
    fake.create_subscription(String, f"{node.fqn}/stats", lambda m: node_stats.append(json.loads(m.data)), 10)
    procs = (node, bridge)
    depth_mm = rvl_encode(candidate_depth(3.0, mm=True))

    def handled(n: int) -> bool:
        return (fake.latest_stats() or {}).get("counts", {}).get("candidate_messages", 0) >= n

    try:
        wait_until(lambda: fake.map_pub.get_subscription_count() > 0
                   and fake.count_subscribers(f"{node.ns}/keyframes") >= 1
                   and fake.count_publishers(f"{node.ns}/loop_closure/candidates") >= 1
                   and fake.latest_stats() is not None, 300, "node and bridge to come up", procs)
        for session in range(2):
            if session:
                fake.reset()
            for i in range(4):
                fake.add_node(i + 1, jpeg(texture(i)), (WIDTH, HEIGHT), K, depth=depth_mm, stamp=10.0 * session + i)
                n = 4 * session + i + 1
                wait_until(lambda: handled(n), 120, f"the candidates of keyframe {n}", procs)
        rgb, depth = view(texture(0), rotation(2.0, -4.0, 1.5), np.array([0.25, -0.05, 0.10]), 3.0)
        fake.add_node(5, jpeg(rgb), (WIDTH, HEIGHT), K, depth=rvl_encode(np.rint(depth * 1000).astype(np.uint16)),
                      stamp=14.0)
        wait_until(lambda: handled(9) and fake.latest_stats()["pending_calls"] == 0, 120, "node 5's candidates",
                   procs)
        wait_until(lambda: node_stats and node_stats[-1]["database_size"] == 9, 60, "9 keyframes in the database",
                   procs)
        stats, node_counts = fake.latest_stats(), node_stats[-1]["counts"]
    finally:
        fake.close()
        assert bridge.stop() == 0, bridge.log_text()[-3000:]
        assert node.stop() == 0
    assert not node_counts.get("duplicate_keyframes", 0), node_stats[-1]["last_error"]
    assert stats["counts"]["rtabmap_resets"] == 1 and stats["session"] == 1
    links = fake.received()
    assert [(k.session, k.from_id, k.to_id) for k in links] == [(1, 5, 1)] and links[0].in_wm
    # session 1's nodes 1..4 each find their session-0 twin (the same image, verified) and node 5 finds
    # session 0's view 0: not sent, RTAB-Map no longer has those nodes
    assert stats["rejected"]["other_session"] >= 5
