"""~/loop_markers: the proposed loops as RViz lines between keyframe positions.

Verified loops: thick green lines; unverified candidates: thin orange ones; optional text
labels "query→candidate score". Keyframe positions come from the pose source
(``pose_source``/``pose_topic``; core.integration.loop_graph does the look-ups). The array is
rebuilt and published only while someone subscribes, on each new result and once a second when
poses moved or a subscriber joined; transient-local QoS lets a late RViz get the last one.
"""
from __future__ import annotations

import importlib

from geometry_msgs.msg import Point
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from maqbool_ros.core.integration.loop_graph import LoopGraph, Trajectory
from maqbool_ros.core.integration.rtabmap_data import graph_positions
from maqbool_ros.core.text import MAX_LINE_CHARS, printable
from maqbool_ros.core.types import stamp_to_seconds

# pose_source -> (module, message type, default topic)
SOURCES = {"pose": ("geometry_msgs.msg", "PoseStamped", "pose"),
           "odometry": ("nav_msgs.msg", "Odometry", "odom"),
           "path": ("nav_msgs.msg", "Path", "path"),
           "rtabmap_graph": ("rtabmap_msgs.msg", "MapData", "rtabmap/mapData")}
VERIFIED_RGBA, UNVERIFIED_RGBA, KEYFRAME_RGBA = (0.1, 0.9, 0.1, 1.0), (1.0, 0.55, 0.0, 0.7), (0.6, 0.6, 0.6, 0.8)
VERIFIED_WIDTH, UNVERIFIED_WIDTH = 0.08, 0.02  # metres


def _import(module: str, name: str, source: str):
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        package = module.split(".")[0]
        dashed = package.replace("_", "-")
        raise ImportError(f"pose_source {source!r} needs the ROS package {package} ({module}.{name}): install it "
                          f"(apt ros-$ROS_DISTRO-{dashed}, or the PyPI wheel ros-{dashed}) or choose another "
                          "pose_source; ~/loop_markers is off") from exc


class LoopMarkers:
    """Created by the node in one line; ``add(msg)`` after each published LoopClosureCandidate.

    Does nothing when ``pose_source`` is none (no publisher, no subscription). When a message
    package it needs is missing (visualization_msgs, rtabmap_msgs), it logs an error naming the
    package and stays off (``unavailable``): a viewer's dependency must not stop loop closure."""

    def __init__(self, node) -> None:
        cfg = node.config.section("markers")
        self.node = node
        self.enabled = cfg.pose_source != "none"
        self.unavailable = ""
        if not self.enabled:
            return
        try:  # only when markers are on
            self._marker = _import("visualization_msgs.msg", "Marker", cfg.pose_source)
            self._array = _import("visualization_msgs.msg", "MarkerArray", cfg.pose_source)
            msg_type = _import(*SOURCES[cfg.pose_source][:2], cfg.pose_source)
        except ImportError as exc:
            self.enabled, self.unavailable = False, str(exc)
            node.get_logger().error(self.unavailable)
            return
        self.frame = cfg.frame or "map"  # empty: the pose messages' frame, once one came
        self._frame_from_poses = not cfg.frame
        self.labels = cfg.labels
        self.source = cfg.pose_source
        self.graph = LoopGraph(Trajectory(cfg.pose_tolerance_s), cfg.max_edges, cfg.unverified_per_keyframe)
        self.missing = 0  # edges left out (no position) at the last drawing
        topic = cfg.pose_topic or SOURCES[cfg.pose_source][2]
        # Odometry (tens of Hz, interpolated) goes best effort, which also receives reliable
        # publishers; a pose per keyframe, a path or a map graph must not be lost: reliable.
        qos = qos_profile_sensor_data if cfg.pose_source == "odometry" else QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._sub = node.create_subscription(msg_type, topic, self._on_pose, qos)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub = node.create_publisher(self._array, "~/loop_markers", latched)
        self._dirty, self._subscribers = True, 0
        self._timer = node.create_timer(1.0, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # --- input ------------------------------------------------------------------------
    def _on_pose(self, msg) -> None:
        try:
            self._take_poses(msg)
            if self._frame_from_poses and msg.header.frame_id:
                self.frame = msg.header.frame_id
            self._dirty = True
        except Exception as exc:  # noqa: BLE001 - a bad pose message must not kill the node
            why = printable(exc, MAX_LINE_CHARS)  # a peer's message: cut and escaped
            self.node.get_logger().warning(f"loop markers: {self.source} message ignored: {why}",
                                           throttle_duration_sec=10.0)

    def _take_poses(self, msg) -> None:
        if self.source == "rtabmap_graph":
            self.graph.set_graph(graph_positions(msg))  # MapData.graph: poses_id[], poses[]
            return
        if self.source == "path":
            stamps = [stamp_to_seconds(p.header.stamp) for p in msg.poses]
            xyz = [(p.pose.position.x, p.pose.position.y, p.pose.position.z) for p in msg.poses]
            self.graph.trajectory.add_many(stamps, xyz, replace=True)  # an optimised path replaces the old one
            return
        p = msg.pose.pose.position if self.source == "odometry" else msg.pose.position
        self.graph.trajectory.add(stamp_to_seconds(msg.header.stamp), (p.x, p.y, p.z))

    def add(self, msg) -> None:
        """Record the loops of one published LoopClosureCandidate; draw them when watched. Never raises."""
        if not self.enabled:
            return
        try:
            query = (msg.robot_id, int(msg.query_keyframe_id))
            cands = [((c.robot_id, c.keyframe_id), stamp_to_seconds(c.stamp), c.verified, c.score)
                     for c in msg.candidates]
            if self.graph.add_result(query, stamp_to_seconds(msg.header.stamp), cands):
                self._dirty = True
                self.publish_if_watched()
        except Exception as exc:  # noqa: BLE001 - drawing must not stop the re-rank worker
            why = printable(exc, MAX_LINE_CHARS)
            self.node.get_logger().warning(f"loop markers: {type(exc).__name__}: {why}", throttle_duration_sec=10.0)

    # --- output -----------------------------------------------------------------------
    def _on_timer(self) -> None:
        try:
            count = self.pub.get_subscription_count()
            joined, self._subscribers = count > self._subscribers, count
            if joined:
                self._dirty = True
            self.publish_if_watched()
        except Exception as exc:  # noqa: BLE001 - a timer error must not kill the node
            why = printable(exc, MAX_LINE_CHARS)
            self.node.get_logger().warning(f"loop markers: {type(exc).__name__}: {why}", throttle_duration_sec=10.0)

    def publish_if_watched(self) -> bool:
        if not self._dirty or self.pub.get_subscription_count() == 0:
            return False
        self._dirty = False
        self.pub.publish(self.build())
        return True

    def build(self):
        """The MarkerArray: DELETEALL, then verified lines, unverified lines, keyframe dots, labels."""
        Marker = self._marker
        segments, self.missing = self.graph.segments()
        stamp = self.node.get_clock().now().to_msg()

        def marker(ns: str, kind: int, rgba, width: float, mid: int = 0):
            m = Marker(ns=ns, id=mid, type=kind, action=Marker.ADD)
            m.header.frame_id, m.header.stamp = self.frame, stamp
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = width
            m.color.r, m.color.g, m.color.b, m.color.a = rgba
            return m

        clear = Marker(action=Marker.DELETEALL)
        clear.header.frame_id = self.frame
        lines = {True: marker("loops_verified", Marker.LINE_LIST, VERIFIED_RGBA, VERIFIED_WIDTH),
                 False: marker("loops_unverified", Marker.LINE_LIST, UNVERIFIED_RGBA, UNVERIFIED_WIDTH)}
        dots = marker("keyframes", Marker.SPHERE_LIST, KEYFRAME_RGBA, 0.1)
        labels, seen = [], set()
        for edge, a, b in segments:
            lines[edge.verified].points.extend([_point(a), _point(b)])
            for key, p in ((edge.query, a), (edge.candidate, b)):
                if key not in seen:
                    seen.add(key)
                    dots.points.append(_point(p))
            if self.labels and edge.verified:
                text = marker("labels", Marker.TEXT_VIEW_FACING, (1.0, 1.0, 1.0, 1.0), 0.25, len(labels))
                text.pose.position = _point((a + b) / 2)
                text.text = f"{edge.query[1]}\u2192{edge.candidate[1]} {edge.score:.2f}"
                labels.append(text)
        shown = [m for m in (lines[True], lines[False], dots) if m.points]  # RViz rejects empty lists
        return self._array(markers=[clear, *shown, *labels])


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))
