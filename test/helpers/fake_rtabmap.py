"""A stand-in for RTAB-Map (rtabmap_slam's `rtabmap` node) for the bridge tests, and a helper to run
`maqbool-rtabmap-bridge` as a child process.

FakeRtabmap is an rclpy node named `rtabmap` in `<ns>/rtabmap`, like rtabmap_launch starts it: it
publishes `mapData` (one new node per step: JPEG bytes in SensorData.left_compressed, a nominal
camera model, a base->camera local transform, the graph of all poses) and `info` (wm_state), and
serves `rtabmap/add_link`, recording each link with the working memory at its arrival.
Working memory: every node, except that nodes 1..wm_drop_ids[1] leave it (to long-term memory)
when node wm_drop_at is added. Like RTAB-Map, it keeps a link only when both nodes are in working
memory, and refuses the pairs in `reject_links` (as RTAB-Map's graph checks would); the kept
links appear in the graph of the next mapData (with the neighbour links). reset() starts a new
session: ids from 1 again, empty map (like `rtabmap/reset`). The rtabmap_loop frames ship no
calibration: a 60 deg horizontal field of view is assumed (helpers.loop_pairs.nominal_camera).
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Pose, Transform
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rtabmap_msgs.msg import Info, Link, MapData
from rtabmap_msgs.msg import Node as NodeMsg
from rtabmap_msgs.srv import AddLink, GetMap
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import String

from helpers.loop_pairs import nominal_camera

#: Pose of the camera optical frame (z forward, x right, y down) in the base frame (x forward, y left,
#: z up), 0.1 m ahead and 0.5 m up: quaternion x y z w = -0.5 0.5 -0.5 0.5.
LOCAL_XYZ, LOCAL_QUAT = (0.1, 0.0, 0.5), (-0.5, 0.5, -0.5, 0.5)
_SEQ = itertools.count()


@dataclass
class ReceivedLink:
    from_id: int
    to_id: int
    type: int
    translation: np.ndarray
    quaternion: np.ndarray
    information: np.ndarray  # 6x6
    in_wm: bool  # both ids in working memory when the link arrived
    kept: bool = False  # in the graph from the next mapData on
    session: int = 0  # the fake's session (reset() count) at its arrival


def camera_info(width: int, height: int, K: np.ndarray) -> CameraInfo:
    return CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=K.ravel().tolist(), r=np.eye(3).ravel().tolist(),
                      p=np.hstack([K, np.zeros((3, 1))]).ravel().tolist())


class FakeRtabmap(Node):
    """Publishes one map node per step(); records add_link calls. Spins in its own thread."""

    def __init__(self, ns: str, frames: list[Path], size: tuple[int, int], wm_drop_at: int = 0,
                 wm_drop_ids: tuple[int, int] = (1, 0)):
        super().__init__("rtabmap", namespace=f"{ns}/rtabmap")
        self.frames, self.size = frames, size
        self.wm_drop_at, self.wm_drop_ids = wm_drop_at, wm_drop_ids
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.map_pub = self.create_publisher(MapData, "mapData", qos)
        self.info_pub = self.create_publisher(Info, "info", qos)
        self.create_service(AddLink, "rtabmap/add_link", self._on_add_link)
        self.create_service(GetMap, "rtabmap/get_map_data", self._on_get_map)
        self.nodes: list[NodeMsg] = []
        self.get_map_calls = 0
        self.add_link_delay_s = 0.0  # > 0: answer add_link late (the bridge's timeout path)
        self.lock = threading.Lock()
        self.links: list[ReceivedLink] = []
        self.wm: set[int] = set()
        self.ids: list[int] = []
        self.reject_links: set[tuple[int, int]] = set()  # (from, to) refused even inside working memory
        self.kept_links: list[tuple[int, int]] = []  # this session's accepted add_link calls
        self.session = 0
        self.bridge_stats: list[dict] = []
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._spinner = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinner.start()

    def watch_stats(self, topic: str) -> None:
        import json

        def on_stats(msg: String) -> None:
            with self.lock:
                self.bridge_stats.append(json.loads(msg.data))
        self.create_subscription(String, topic, on_stats, 10)

    def latest_stats(self) -> dict | None:
        with self.lock:
            return self.bridge_stats[-1] if self.bridge_stats else None

    def _on_add_link(self, request, response):
        if self.add_link_delay_s > 0:
            time.sleep(self.add_link_delay_s)
            return response  # not recorded: the bridge gave up on it
        m = request.link
        t, q = m.transform.translation, m.transform.rotation
        with self.lock:
            in_wm = m.from_id in self.wm and m.to_id in self.wm
            kept = in_wm and (m.from_id, m.to_id) not in self.reject_links
            if kept:
                self.kept_links.append((m.from_id, m.to_id))
            self.links.append(ReceivedLink(m.from_id, m.to_id, m.type, np.array([t.x, t.y, t.z]),
                                           np.array([q.x, q.y, q.z, q.w]),
                                           np.array(m.information, dtype=np.float64).reshape(6, 6),
                                           in_wm, kept, self.session))
        return response  # empty, as RTAB-Map's: whether it kept the link shows in the graph only

    def _on_get_map(self, request, response):
        with self.lock:
            self.get_map_calls += 1
            response.data = self._map_data(list(self.nodes))
        return response

    def _map_data(self, nodes: list) -> MapData:
        msg = MapData()
        msg.header.frame_id = "map"
        msg.graph.poses_id = list(self.ids)
        msg.graph.poses = [Pose() for _ in self.ids]
        for i, pose in zip(self.ids, msg.graph.poses):
            pose.position.x, pose.orientation.w = 0.1 * i, 1.0
        neighbours = [(b, a, 0) for a, b in zip(self.ids, self.ids[1:])]
        msg.graph.links = [Link(from_id=a, to_id=b, type=k) for a, b, k in
                           neighbours + [(a, b, 4) for a, b in self.kept_links]]
        msg.nodes = nodes
        return msg

    def reset(self) -> None:
        """RTAB-Map's reset: memory emptied, node ids start at 1 again (a new session)."""
        with self.lock:
            self.session += 1
            self.nodes, self.ids, self.wm, self.kept_links = [], [], set(), []

    def step(self, index: int) -> int:
        """Add frame `index` as node index+1 (nominal camera, no depth)."""
        K = nominal_camera(*self.size).K
        return self.add_node(index + 1, self.frames[index].read_bytes(), self.size, K, stamp=float(index))

    def add_node(self, node_id: int, image: bytes, size: tuple[int, int], K: np.ndarray,
                 depth: bytes = b"", stamp: float = 0.0) -> int:
        """One new node: Info then MapData (rtabmap_slam's publishStats order). depth: right_compressed
        as RTAB-Map stores it (RVL or PNG)."""
        with self.lock:
            self.ids.append(node_id)
            self.wm.add(node_id)
            if self.wm_drop_at and node_id == self.wm_drop_at:
                self.wm -= set(range(self.wm_drop_ids[0], self.wm_drop_ids[1] + 1))
            wm = sorted(self.wm)
        info = Info(ref_id=node_id, wm_state=wm)
        info.header.frame_id = "map"
        self.info_pub.publish(info)
        node = NodeMsg(id=node_id, map_id=0, weight=1, stamp=stamp)
        node.pose.orientation.w = 1.0
        data = node.data
        data.header.frame_id = "base_link"
        data.header.stamp.sec = int(stamp)
        data.left_compressed = image
        data.right_compressed = depth
        data.left_camera_info = [camera_info(*size, K)]
        local = Transform()
        local.translation.x, local.translation.y, local.translation.z = LOCAL_XYZ
        local.rotation.x, local.rotation.y, local.rotation.z, local.rotation.w = LOCAL_QUAT
        data.local_transform = [local]
        with self.lock:
            self.nodes.append(node)
            msg = self._map_data([node])
        self.map_pub.publish(msg)
        return node_id

    def received(self) -> list[ReceivedLink]:
        with self.lock:
            return list(self.links)

    def close(self) -> None:
        self._executor.shutdown()
        self._spinner.join(timeout=10)
        self.destroy_node()


class BridgeProcess:
    """`maqbool-rtabmap-bridge` as a child process in namespace ns with ROS parameters `params`."""

    def __init__(self, ns: str, workdir: Path, params: dict):
        import yaml

        self.ns = ns
        self.fqn = f"{ns}/maqbool_rtabmap_bridge"
        path = Path(workdir) / f"bridge_{next(_SEQ)}.yaml"
        path.write_text(yaml.safe_dump({self.fqn: {"ros__parameters": params}}))
        self.log = open(Path(workdir) / f"bridge_{next(_SEQ)}.log", "w+")
        exe = Path(sys.executable).parent / "maqbool-rtabmap-bridge"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "maqbool_ros.ros.rtabmap_bridge"]
        self.proc = subprocess.Popen([*cmd, "--ros-args", "-r", f"__ns:={ns}", "--params-file", str(path)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(2)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def jpeg(rgb: np.ndarray) -> bytes:
    """An RGB frame as the JPEG bytes RTAB-Map puts in a node's compressed image."""
    import cv2

    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def noise_frames(folder: Path, n: int, seed: int) -> list[Path]:
    """n seeded 64x48 noise JPEGs (node images for the fake RTAB-Map); their paths."""
    import cv2

    rng = np.random.default_rng(seed)
    paths = [folder / f"{i}.jpg" for i in range(n)]
    for path in paths:
        cv2.imwrite(str(path), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return paths


def wait_until(predicate, timeout: float, what: str, procs=()) -> None:
    """Poll predicate until true; TimeoutError after timeout s, RuntimeError when a process died."""
    end = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"a process exited while waiting for {what}:\n{p.log_text()[-3000:]}")
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def wait_bridge_up(fake: FakeRtabmap, candidates_pub, ns: str, bridge) -> None:
    """Until the bridge subscribes to mapData and candidates, publishes keyframes and reports stats."""
    wait_until(lambda: fake.map_pub.get_subscription_count() > 0 and candidates_pub.get_subscription_count() > 0
               and fake.count_publishers(f"{ns}/keyframes") > 0 and fake.latest_stats() is not None, 120,
               "the bridge to come up", (bridge,))
