"""`maqbool-rtabmap-bridge`: RTAB-Map nodes in as maqbool keyframes, verified loop closures out as
RTAB-Map links (docs/rtabmap.md).

mapData -> each new node's SensorData (compressed image, optional depth, camera model) as a
maqbool_ros/Keyframe (id = node id, namespaced per RTAB-Map session) on the node's keyframe topic;
info -> the working-memory ids; the node's candidates -> core.integration.links.decide_query ->
rtabmap add_link (user closure); later mapData graphs -> whether RTAB-Map kept each link.
Thin: the decisions and the numbers are in core/integration. rtabmap_msgs is imported lazily so
the rest of the package works without RTAB-Map installed.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from maqbool_ros.core.integration.bridge_config import BRIDGE_FIELDS, BRIDGE_NODE_NAME, BridgeConfig, help_text
from maqbool_ros.core.integration.bridge_state import (
    LinkVerdicts,
    SessionTracker,
    keyframe_id,
    session_map_id,
    split_keyframe_id,
)
from maqbool_ros.core.integration.links import REJECT_REASONS, Candidate, LinkPolicy, decide_query
from maqbool_ros.core.integration.rtabmap_data import graph_positions
from maqbool_ros.core.verification.geometry import transform_from_pose
from maqbool_ros.msg import Keyframe, LoopClosureCandidate
from maqbool_ros.ros.conversions import quaternion_xyzw
from maqbool_ros.ros.params import default_robot_id, descriptor_for
from maqbool_ros.ros.rtabmap_nodes import RtabmapMsgsMissing, import_rtabmap_msgs, node_keyframe, transform_matrix
from maqbool_ros.ros.stats import Counters

__all__ = ["RtabmapBridge", "RtabmapMsgsMissing", "graph_positions", "import_rtabmap_msgs", "main"]

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


def declare_bridge_parameters(node: Node) -> BridgeConfig:
    defaults = BridgeConfig()
    for name in BRIDGE_FIELDS:
        node.declare_parameter(name, getattr(defaults, name), descriptor_for(name, BRIDGE_FIELDS))
    return BridgeConfig.from_dict({name: node.get_parameter(name).value for name in BRIDGE_FIELDS})


class RtabmapBridge(Node):
    """The bridge node (parameters: core.integration.bridge_config.BridgeConfig)."""

    def __init__(self, **node_kwargs):
        self.rtabmap = import_rtabmap_msgs()  # before any ROS entity: fail fast with the package's name
        super().__init__(BRIDGE_NODE_NAME, **node_kwargs)
        self.config = cfg = declare_bridge_parameters(self)
        self.robot_id = default_robot_id(self, cfg.robot_id)
        self.counts = Counters(self.get_logger().warning)
        self.policy = LinkPolicy(robot_id=self.robot_id, link_pose_types=cfg.link_pose_types,
                                 max_links_per_query=cfg.max_links_per_query, min_variance=cfg.min_variance,
                                 candidate_pose_frame=cfg.candidate_pose_frame)
        self._lock = threading.Lock()
        self.local_transforms: dict[int, np.ndarray] = {}
        self.published: set[int] = set()
        self.working_memory: set[int] | None = None
        self.sessions = SessionTracker()  # RTAB-Map resets (ids restart): core/integration/bridge_state.py
        self.verdicts = LinkVerdicts()
        self._pending: list[tuple[float, object, tuple[int, int]]] = []  # (sent at, future, link ids)
        self._kf_pub = self.create_publisher(Keyframe, cfg.keyframe_topic, RELIABLE)
        self._stats_pub = self.create_publisher(String, "~/stats", 10)
        self.create_subscription(self.rtabmap.MapData, cfg.map_data_topic, self._on_map_data, 10)
        self.create_subscription(self.rtabmap.Info, cfg.info_topic, self._on_info, 10)
        self.create_subscription(LoopClosureCandidate, cfg.candidates_topic, self._on_candidates, 100)
        self._add_link = self.create_client(self.rtabmap.AddLink, cfg.add_link_service)
        self._get_map = self.create_client(self.rtabmap.GetMap, cfg.get_map_service) if cfg.seed_from_map else None
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(cfg.stats_period_s, self.publish_stats, clock=steady)
        self.create_timer(0.2, self._expire_calls, clock=steady)
        self._seed_timer = self.create_timer(1.0, self._seed, clock=steady) if cfg.seed_from_map else None
        self.get_logger().info(
            f"RTAB-Map bridge ready: {cfg.map_data_topic} + {cfg.info_topic} -> {cfg.keyframe_topic} (robot "
            f"{self.robot_id}); {cfg.candidates_topic} -> {cfg.add_link_service} ({cfg.link_pose_types} poses, "
            f"{cfg.candidate_pose_frame} frame)")

    # --- RTAB-Map -> keyframes -----------------------------------------------------------
    def _on_map_data(self, msg, live: bool = True) -> None:
        """live: from the mapData topic (a GetMap answer may be older than the last mapData)."""
        if live:
            self._track(msg)
        for node in msg.nodes:
            try:
                self._node_to_keyframe(node)
            except Exception as exc:  # noqa: BLE001 - one bad node must not stop the others
                self.counts.error("malformed_nodes", f"node {node.id}: {type(exc).__name__}: {exc}")

    def _track(self, msg) -> None:
        """A reset seen in this mapData starts a new session; its graph judges the links sent."""
        ids = [*msg.graph.poses_id, *(n.id for n in msg.nodes)]
        with self._lock:
            reset = self.sessions.observe(ids, {int(n.id): float(n.stamp) for n in msg.nodes})
            lost = self._new_session() if reset else 0
            kept, rejected = self.verdicts.judge(msg.graph.poses_id, [(k.from_id, k.to_id) for k in msg.graph.links])
        if reset:
            self._reset_seen(lost)
        for key, pairs in (("links_kept", kept), ("links_rejected", rejected)):
            for a, b in pairs:
                self.counts.add(key)
                self.get_logger().info(f"link {a} -> {b}: {key.split('_')[1]} by RTAB-Map")

    def _new_session(self) -> int:
        """(under _lock) Forget the old session's nodes and links; how many links lost their verdict."""
        self.published.clear()
        self.local_transforms.clear()
        self.policy.sent.clear()  # working_memory stays the last Info's: RTAB-Map sends it before mapData
        self.policy.session = self.sessions.session
        return self.verdicts.clear()

    def _reset_seen(self, lost: int) -> None:
        self.counts.add("rtabmap_resets")
        self.counts.add("links_unjudged", lost)
        self.get_logger().warning(
            f"RTAB-Map was reset (mapData's node ids went back): session {self.sessions.session}, "
            f"keyframe ids from {keyframe_id(self.sessions.session, 1)}; {lost} link(s) left without a verdict")

    def _node_to_keyframe(self, node) -> None:
        node_id, data = int(node.id), node.data
        with self._lock:
            if node_id <= 0 or node_id in self.published:
                return  # landmark, or republished data of a node already sent
            session = self.sessions.session
            if len(data.local_transform):
                L = transform_matrix(data.local_transform[0])
                if L is not None:
                    self.local_transforms[node_id] = L
        kf = node_keyframe(node, keyframe_id(session, node_id), self.robot_id, session_map_id(session, node.map_id),
                           lambda why: self.counts.error("depth_unsupported", why))
        if kf is None:
            self.counts.add("nodes_without_image")  # not marked published: its data may come later
            return
        self._kf_pub.publish(kf)
        with self._lock:
            self.published.add(node_id)
        self.counts.add("keyframes_published")

    def _on_info(self, msg) -> None:
        if not len(msg.wm_state):  # statistics off (Rtabmap/PublishStats false): WM unknown
            self.counts.add("info_without_wm_state")
            return
        with self._lock:  # a reset is told by mapData alone: Info is another stream, in no order with it
            self.working_memory = {int(i) for i in msg.wm_state}

    def _seed(self) -> None:
        if not self._get_map.service_is_ready():
            return
        self._seed_timer.cancel()
        request = self.rtabmap.GetMap.Request(global_map=True, optimized=True, graph_only=False)
        self._get_map.call_async(request).add_done_callback(self._on_seed)

    def _on_seed(self, future) -> None:
        if future.cancelled() or future.exception() is not None or future.result() is None:
            self.counts.error("seed_failed", f"{self.config.get_map_service}: no map ({future.exception()})")
            return
        self._on_map_data(future.result().data, live=False)
        self.get_logger().info(f"seeded {len(self.published)} keyframes from {self.config.get_map_service}")

    # --- candidates -> links -------------------------------------------------------------
    def _on_candidates(self, msg: LoopClosureCandidate) -> None:
        self.counts.add("candidate_messages")
        try:
            self._handle_candidates(msg)
        except Exception as exc:  # noqa: BLE001 - a malformed message must not stop the bridge
            self.counts.error("malformed_candidates", f"query {msg.query_keyframe_id}: {type(exc).__name__}: {exc}")

    def _handle_candidates(self, msg: LoopClosureCandidate) -> None:
        cands = []
        q_session, q_id = split_keyframe_id(msg.query_keyframe_id)  # back to RTAB-Map's node ids
        for c in msg.candidates:
            T = transform_from_pose(c.relative_pose.pose) if c.has_relative_pose else np.eye(4)
            c_session, c_id = split_keyframe_id(c.keyframe_id)
            cands.append(Candidate(q_id, c_id, bool(c.verified), bool(c.has_relative_pose), int(c.pose_type), T,
                                   np.asarray(c.relative_pose.covariance, dtype=np.float64).reshape(6, 6),
                                   msg.robot_id, c.robot_id, q_session, c_session, int(c.num_inliers)))
        with self._lock:
            wm = None if self.working_memory is None else set(self.working_memory)
            links, reasons = decide_query(cands, self.policy, wm, dict(self.local_transforms))
        for reason in reasons:
            self.counts.add(f"rejected_{reason}")
        for link in links:
            self._send(link)

    def _send(self, link) -> None:
        if not self._add_link.service_is_ready():
            self._failed(link.from_id, link.to_id, "failed_unavailable", "service not available")
            return
        request = self.rtabmap.AddLink.Request()
        m = request.link
        m.from_id, m.to_id, m.type = link.from_id, link.to_id, link.type
        m.transform.translation.x, m.transform.translation.y, m.transform.translation.z = \
            (float(v) for v in link.T[:3, 3])
        q = m.transform.rotation
        q.x, q.y, q.z, q.w = quaternion_xyzw(link.T[:3, :3])
        m.information = [float(v) for v in link.information.ravel()]
        future = self._add_link.call_async(request)
        with self._lock:
            self._pending.append((time.monotonic(), future, (link.from_id, link.to_id)))
            session = self.sessions.session
        future.add_done_callback(lambda f, ids=(link.from_id, link.to_id), rot=link.rotation_only:
                                 self._answered(f, ids, rot, session))

    def _answered(self, future, ids, rotation_only: bool, session: int) -> None:
        with self._lock:
            self._pending = [p for p in self._pending if p[1] is not future]
            current = session == self.sessions.session
            if current and not future.cancelled() and future.exception() is None:
                self.verdicts.answered(*ids, self.sessions.newest)  # kept or not: a later mapData's graph
        if future.cancelled():
            return  # timed out: counted by _expire_calls
        if future.exception() is not None:
            self._failed(*ids, "failed_error", str(future.exception()))
            return
        self.counts.add("links_sent")  # answered; RTAB-Map's own verdict is not in the (empty) response
        if rotation_only:
            self.counts.add("links_sent_rotation_only")
        if not current:
            self.counts.add("links_unjudged")  # RTAB-Map was reset meanwhile
        self.get_logger().info(f"link {ids[0]} -> {ids[1]} sent to RTAB-Map")

    def _expire_calls(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [p for p in self._pending if now - p[0] > self.config.service_timeout_s]
        for _, future, ids in late:
            if future.done():
                continue  # answered meanwhile: _answered counts it
            self._add_link.remove_pending_request(future)
            future.cancel()
            self._failed(*ids, "failed_timeout", f"no answer within {self.config.service_timeout_s} s")

    def _failed(self, from_id: int, to_id: int, key: str, why: str) -> None:
        with self._lock:
            self.policy.sent.discard((from_id, to_id))  # a later candidate may send it again
        self.counts.error(key, f"link {from_id} -> {to_id}: {why}")

    # --- stats ---------------------------------------------------------------------------
    def stats(self) -> dict:
        counts = self.counts.snapshot()
        with self._lock:
            wm = None if self.working_memory is None else len(self.working_memory)
            pending, waiting, session = len(self._pending), len(self.verdicts), self.sessions.session
        rejected = {r: counts.get(f"rejected_{r}", 0) for r in REJECT_REASONS}
        return {"counts": counts, "rejected": rejected, "working_memory_size": wm, "pending_calls": pending,
                "links_awaiting_verdict": waiting, "session": session, "last_error": self.counts.last_error}

    def publish_stats(self) -> None:
        self._stats_pub.publish(String(data=json.dumps(self.stats())))

    def stop(self, timeout_s: float = 0.0) -> None:
        """Called by spin_until_signal before destroy_node: a last ~/stats message."""
        try:
            self.publish_stats()
        except Exception:  # noqa: BLE001 - shutting down
            pass


def main(args: list[str] | None = None) -> int:
    """Entry point of `maqbool-rtabmap-bridge`."""
    argv = sys.argv[1:] if args is None else args
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip() + "\n\nUsage: maqbool-rtabmap-bridge [--ros-args -p name:=value ...]\n\n"
              "ROS parameters:\n" + help_text() + "\n\nTopics and services: docs/rtabmap.md.")
        return 0
    try:
        import_rtabmap_msgs()
    except RtabmapMsgsMissing as exc:
        print(f"maqbool-rtabmap-bridge: {exc}", file=sys.stderr)
        return 2
    from maqbool_ros.ros.lifecycle import spin_until_signal

    return spin_until_signal(RtabmapBridge, args)


if __name__ == "__main__":
    raise SystemExit(main())
