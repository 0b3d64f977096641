"""~/loop_markers: keyframe positions from a pose source (stamp look-up with tolerance and
interpolation, or a pose graph by id), loop edges per result, and the real node drawing a
verified revisit as a thick green line between the right keyframe positions, unverified
candidates as thin orange ones."""
from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.configs import SINGLE_FRAME
from maqbool_ros.core.integration.loop_graph import LoopGraph, Trajectory


def test_trajectory_interpolates_between_close_samples_and_takes_the_nearest_within_tolerance():
    traj = Trajectory(tolerance_s=0.1)
    traj.add_many([1.0, 1.1, 3.0], [(0, 0, 0), (1, 2, 0), (5, 5, 5)])
    np.testing.assert_allclose(traj.position_at(1.05), (0.5, 1.0, 0.0))  # 0.1 s apart: interpolated
    np.testing.assert_allclose(traj.position_at(1.1), (1, 2, 0))          # exact stamp
    np.testing.assert_allclose(traj.position_at(2.95), (5, 5, 5))         # 1.9 s gap: nearest, 0.05 s off
    assert traj.position_at(2.0) is None and traj.position_at(3.2) is None and traj.position_at(0.8) is None
    traj.add(1.1, (9, 9, 9))  # same stamp again: the later sample wins
    np.testing.assert_allclose(traj.position_at(1.1), (9, 9, 9))
    traj.add_many([5.0], [(np.nan, 0, 0)])  # a NaN pose is dropped, not interpolated with
    assert len(traj) == 3 and traj.position_at(5.0) is None
    traj.add_many([10.0], [(1, 1, 1)], replace=True)  # a new path replaces the old one
    assert len(traj) == 1 and traj.position_at(1.1) is None
    with pytest.raises(ValueError, match="times/positions"):
        traj.add_many([1.0, 2.0], [(0, 0, 0)])
    bounded = Trajectory(0.1, max_samples=3)
    bounded.add_many(np.arange(5.0), np.zeros((5, 3)))
    assert len(bounded) == 3 and bounded.position_at(0.0) is None


def test_loop_graph_keeps_verified_and_the_best_unverified_and_resolves_positions_late():
    traj = Trajectory(tolerance_s=0.01)
    graph = LoopGraph(traj, max_edges=100, unverified_per_keyframe=1)
    cands = [(("r", 1), 1.0, False, 0.9), (("r", 2), 2.0, True, 0.8), (("r", 3), 3.0, False, 0.7),
             (("r", 4), 4.0, True, 0.6)]
    assert graph.add_result(("r", 10), 10.0, cands) == 3  # 2 verified + the best unverified (1)
    segs, missing = graph.segments()
    assert segs == [] and missing == 3  # no poses yet
    traj.add_many([1.0, 2.0, 3.0, 4.0, 10.0], [(1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (10, 1, 0)])
    segs, missing = graph.segments()
    assert missing == 0
    assert {(e.candidate[1], e.verified) for e, _, _ in segs} == {(1, False), (2, True), (4, True)}
    for e, a, b in segs:
        np.testing.assert_allclose(a, (10, 1, 0))
        np.testing.assert_allclose(b, (e.candidate[1], 0, 0))
    graph.set_graph({10: np.array([0.0, 0, 0]), 2: np.array([5.0, 5, 5])})  # a pose graph wins, by id
    segs, missing = graph.segments()
    assert missing == 2 and [(e.candidate[1], tuple(b)) for e, _, b in segs] == [(2, (5.0, 5.0, 5.0))]
    small = LoopGraph(traj, max_edges=2, unverified_per_keyframe=0)
    assert small.add_result(("r", 10), 10.0, cands) == 2 and len(small) == 2
    small.add_result(("r", 11), 11.0, cands)
    assert len(small) == 2 and {e.query[1] for e in small._edges} == {11}


# --- the real node ------------------------------------------------------------------------

def _ros_imports():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    pytest.importorskip("visualization_msgs.msg",
                        reason="visualization_msgs not installed (ros-visualization-msgs, requirements.txt)")


# keyframe ids from 1: RTAB-Map node ids start at 1 (graph_positions drops id 0)
POSITIONS = {i: (2.0 * i, 0.0, 0.0) for i in range(1, 6)} | {100: (0.5, 3.0, 0.0), 101: (-1.0, 2.0, 0.0)}


def _pairs(marker) -> set[tuple[tuple[float, ...], tuple[float, ...]]]:
    pts = [(round(p.x, 3), round(p.y, 3), round(p.z, 3)) for p in marker.points]
    return set(zip(pts[0::2], pts[1::2]))


@pytest.mark.parametrize("source", ["pose", "rtabmap_graph"])
def test_node_draws_a_verified_loop_between_the_right_keyframe_positions(tmp_path, ros_context, source):
    """pose: a PoseStamped per keyframe stamp; rtabmap_graph: RTAB-Map's MapData graph by node id
    (the test-only rtabmap_msgs), republished whole after each keyframe as RTAB-Map does."""
    _ros_imports()
    if source == "rtabmap_graph":
        pytest.importorskip("rtabmap_msgs.msg", reason="rtabmap_msgs not built (make test-interfaces)")
    from geometry_msgs.msg import Pose, PoseStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from visualization_msgs.msg import Marker, MarkerArray

    from helpers.node_proc import Driver, NodeProcess
    from helpers.rgbd_scene import rotation, texture, view
    from maqbool_ros.core.config import MaqboolConfig

    cfg = MaqboolConfig(**SINGLE_FRAME, method="netvlad", top_k=5, exclude_recent_keyframes=0,
                        exclude_recent_seconds=0.0, pose_source=source, pose_topic="kf_pose", markers_frame="odom",
                        markers_unverified_per_keyframe=5)
    node = NodeProcess(cfg, tmp_path)
    driver = Driver(node)
    lock, arrays = threading.Lock(), []

    def on_markers(msg):
        with lock:
            arrays.append(msg)

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if source == "rtabmap_graph":
        from rtabmap_msgs.msg import MapData

        pose_pub = driver.create_publisher(MapData, "kf_pose", QoSProfile(depth=100))
    else:
        pose_pub = driver.create_publisher(PoseStamped, "kf_pose", QoSProfile(depth=100))
    driver.create_subscription(MarkerArray, f"{node.fqn}/loop_markers", on_markers, latched)
    graph: dict[int, Pose] = {}

    def publish_position(kf_id: int, stamp) -> None:
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "odom"
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = POSITIONS[kf_id]
        if source == "pose":
            pose_pub.publish(pose)
            return
        graph[kf_id] = pose.pose
        data = MapData()
        data.header.frame_id = "odom"
        data.graph.poses_id, data.graph.poses = list(graph), list(graph.values())
        pose_pub.publish(data)

    def keyframe(kf_id: int, rgb):
        msg = driver.keyframe_msg(kf_id, rgb)  # the default input: maqbool_ros/Keyframe
        publish_position(kf_id, msg.header.stamp)
        return driver.publish_and_wait(msg)

    def latest(ns: str):
        with lock:
            if not arrays:
                return None
            return next((m for m in arrays[-1].markers if m.ns == ns), None)

    try:
        driver.wait_for_node()
        driver.wait_until(lambda: pose_pub.get_subscription_count() > 0, 60, "the pose subscription")
        for i in range(1, 6):
            keyframe(i, texture(i))
        assert driver.set_parameter("database.insert_keyframes", False) == (True, "")
        rgb, _ = view(texture(1), rotation(2.0, -4.0, 1.5), np.array([0.25, -0.05, 0.10]), 3.0)
        out = keyframe(100, rgb)
        verified = {c.keyframe_id for c in out.candidates if c.verified}
        assert verified == {1}, [(c.keyframe_id, c.verified, c.num_inliers) for c in out.candidates]
        loop = (POSITIONS[100], POSITIONS[1])
        driver.wait_until(lambda: latest("loops_verified") is not None and loop in _pairs(latest("loops_verified")),
                          60, "the verified loop 100-1 in ~/loop_markers")
        with lock:
            markers = {m.ns: m for m in arrays[-1].markers}
        assert arrays[-1].markers[0].action == Marker.DELETEALL
        good, weak = markers["loops_verified"], markers["loops_unverified"]
        assert _pairs(good) == {loop}  # only the revisit is verified
        unverified = {(POSITIONS[100], POSITIONS[c.keyframe_id]) for c in out.candidates if not c.verified}
        assert unverified and unverified <= _pairs(weak) and loop not in _pairs(weak)
        for m in (good, weak):
            assert m.type == Marker.LINE_LIST and m.header.frame_id == "odom"
        assert good.scale.x > weak.scale.x and (good.color.g, good.color.r) != (weak.color.g, weak.color.r)
        assert markers["labels"].text.startswith("100\u21921 ")

        # a ~/detect answer (query only, as ORB-SLAM3's LoopClosing asks) is drawn too
        from maqbool_ros.srv import Detect

        request = Detect.Request(keyframe=driver.keyframe_msg(101, rgb), max_candidates=3, add_to_database=False)
        publish_position(101, request.keyframe.header.stamp)
        answer = driver.call(Detect, "detect", request)
        assert answer.success and [c.keyframe_id for c in answer.result.candidates if c.verified] == [1]
        detected = (POSITIONS[101], POSITIONS[1])
        driver.wait_until(lambda: detected in _pairs(latest("loops_verified")), 60, "the ~/detect loop 101-1")
    finally:
        driver.close()
        assert node.stop() == 0


class _StubNode:
    """Just enough of rclpy's Node for LoopMarkers: records the subscription callback."""

    def __init__(self, cfg):
        self.config, self.callbacks, self.subscribers, self.errors = cfg, {}, 1, []

    def create_subscription(self, typ, topic, callback, qos):
        self.callbacks[topic] = (typ, callback)

    def create_publisher(self, typ, topic, qos):
        node = self
        return SimpleNamespace(get_subscription_count=lambda: node.subscribers,
                               publish=lambda msg: None)

    def create_timer(self, period, callback, clock=None):
        return None

    def get_clock(self):
        from rclpy.clock import Clock

        return Clock()

    def get_logger(self):
        return SimpleNamespace(warning=lambda *a, **k: None, error=lambda text: self.errors.append(text))


def _stamp(msg, seconds: float):
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(seconds), int(round((seconds % 1) * 1e9))
    return msg


def test_odometry_and_path_sources_give_positions_and_a_missing_rtabmap_msgs_is_named(monkeypatch):
    _ros_imports()
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry, Path

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.ros.markers import LoopMarkers

    cfg = MaqboolConfig(pose_source="odometry", markers_frame="")
    node = _StubNode(cfg)
    markers = LoopMarkers(node)
    typ, on_pose = node.callbacks["odom"]
    assert typ is Odometry
    for t, x in ((10.0, 0.0), (10.04, 4.0)):
        odom = _stamp(Odometry(), t)
        odom.header.frame_id, odom.pose.pose.position.x = "odom", x
        on_pose(odom)
    np.testing.assert_allclose(markers.graph.trajectory.position_at(10.01), (1.0, 0.0, 0.0), atol=1e-6)
    assert markers.frame == "odom"  # markers_frame empty: the poses' frame

    node = _StubNode(cfg.replace(pose_source="path", pose_topic="slam/path", markers_frame="map"))
    markers = LoopMarkers(node)
    typ, on_path = node.callbacks["slam/path"]
    path = Path(poses=[_stamp(PoseStamped(), 1.0), _stamp(PoseStamped(), 2.0)])
    path.poses[1].pose.position.y = 7.0
    on_path(path)
    np.testing.assert_allclose(markers.graph.trajectory.position_at(2.0), (0.0, 7.0, 0.0))
    on_path(Path(poses=[_stamp(PoseStamped(), 3.0)]))  # a new (optimised) path replaces the old one
    assert markers.graph.trajectory.position_at(2.0) is None and markers.frame == "map"

    with monkeypatch.context() as patch:  # rtabmap_msgs absent (None in sys.modules: ImportError)
        patch.setitem(sys.modules, "rtabmap_msgs.msg", None)
        node = _StubNode(cfg.replace(pose_source="rtabmap_graph"))
        markers = LoopMarkers(node)  # the node goes on without markers, and says why
        assert not markers.enabled and not node.callbacks
        assert node.errors == [markers.unavailable]
        assert "pose_source 'rtabmap_graph' needs the ROS package rtabmap_msgs" in markers.unavailable
        markers.add(SimpleNamespace())  # a no-op, never raises
    assert not LoopMarkers(_StubNode(MaqboolConfig())).enabled  # pose_source none: nothing created


def test_rtabmap_graph_source_places_edges_at_the_graph_poses_of_the_node_ids():
    """pose_source rtabmap_graph with real rtabmap_msgs/MapData (the test-only subset of
    test/interfaces/rtabmap_msgs, `make test-interfaces`): positions by node id, moved by a new graph."""
    _ros_imports()
    msgs = pytest.importorskip("rtabmap_msgs.msg", reason="rtabmap_msgs not built (make test-interfaces)")
    from geometry_msgs.msg import Pose

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.msg import CandidateMatch, LoopClosureCandidate
    from maqbool_ros.ros.markers import LoopMarkers

    node = _StubNode(MaqboolConfig(pose_source="rtabmap_graph"))
    markers = LoopMarkers(node)
    typ, on_map = node.callbacks["rtabmap/mapData"]
    assert typ is msgs.MapData

    def map_data(xs: dict[int, float]):
        data = msgs.MapData()
        data.graph.poses_id = list(xs)
        data.graph.poses = [Pose() for _ in xs]
        for pose, x in zip(data.graph.poses, xs.values()):
            pose.position.x = x
        return data

    on_map(map_data({1: 0.0, 2: 1.0, 9: 5.0}))
    result = LoopClosureCandidate(query_keyframe_id=9, robot_id="rtabmap",
                                  candidates=[CandidateMatch(keyframe_id=1, robot_id="rtabmap", verified=True),
                                              CandidateMatch(keyframe_id=2, robot_id="rtabmap")])
    markers.add(result)
    array = markers.build()
    lines = {m.ns: _pairs(m) for m in array.markers if m.ns.startswith("loops")}
    assert lines == {"loops_verified": {((5.0, 0.0, 0.0), (0.0, 0.0, 0.0))},
                     "loops_unverified": {((5.0, 0.0, 0.0), (1.0, 0.0, 0.0))}}
    on_map(map_data({1: -2.0}))  # an optimised graph moves node 1; the others keep their last pose
    lines = {m.ns: _pairs(m) for m in markers.build().markers if m.ns.startswith("loops")}
    assert lines["loops_verified"] == {((5.0, 0.0, 0.0), (-2.0, 0.0, 0.0))}


def test_sample_rviz_config_shows_the_markers_debug_image_and_a_path_in_map():
    from pathlib import Path

    import yaml

    rviz = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "maqbool.rviz").read_text())
    manager = rviz["Visualization Manager"]
    displays = {d["Class"].split("/")[-1]: d for d in manager["Displays"]}
    assert manager["Global Options"]["Fixed Frame"] == "map"
    assert displays["MarkerArray"]["Topic"]["Value"] == "/maqbool_loop_closure/loop_markers"
    assert set(displays["MarkerArray"]["Namespaces"]) == {"keyframes", "labels", "loops_unverified", "loops_verified"}
    assert displays["Image"]["Topic"]["Value"] == "/maqbool_loop_closure/debug_image"
    assert "Path" in displays


def test_markers_stay_off_and_name_visualization_msgs_when_it_is_missing(monkeypatch):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.ros.markers import LoopMarkers

    monkeypatch.setitem(sys.modules, "visualization_msgs.msg", None)
    node = _StubNode(MaqboolConfig(pose_source="odometry"))
    markers = LoopMarkers(node)
    assert not markers.enabled and not node.callbacks
    assert "needs the ROS package visualization_msgs" in node.errors[0]
