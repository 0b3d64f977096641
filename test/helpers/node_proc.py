"""Drive a real `maqbool-node` process from a test: start it in its own namespace with a
params file, publish keyframes (maqbool_ros/Keyframe, or plain images with IMAGE_INPUT)
from an rclpy node in this process, call its services, collect its candidates and stats.

Used by the node tests and benchmarks/node_latency.py (which puts test/ on sys.path).
Every wait raises TimeoutError / RuntimeError with what it waited for; setting a
parameter goes through maqbool_ros.ros.online_eval, like the online evaluation.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from maqbool_ros.core.config import NODE_NAME, MaqboolConfig, ros_params_yaml
from maqbool_ros.core.images.decode import encode_raw
from maqbool_ros.msg import Keyframe, LoopClosureCandidate
from maqbool_ros.ros.online_eval import NodeUnavailableError, set_remote_parameter

#: Config fields of a node fed plain images whose header.frame_id is the keyframe id (the
#: image tests' convention; the node's defaults are Keyframe messages and counter ids).
IMAGE_INPUT = {"input_type": "image", "keyframe_id_source": "frame_id"}

_SEQ = itertools.count()
_STARTED: list[NodeProcess] = []


def stop_leftovers() -> list[str]:
    """SIGKILL node processes a failed test left running; their namespaces."""
    left = [p for p in _STARTED if p.alive()]
    for p in left:
        p.proc.kill()
        p.proc.wait()
    _STARTED.clear()
    return [p.ns for p in left]


def unique_namespace() -> str:
    """A namespace no other test (of this run or of a concurrent run on the host) uses."""
    return f"/t{os.getpid()}_{next(_SEQ)}"


def node_command() -> list[str]:
    """The node's console script next to this interpreter, else `python -m`; the default
    configuration's artifacts are built first (as `make install` does)."""
    prepare_defaults(MaqboolConfig())
    exe = Path(sys.executable).parent / "maqbool-node"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "maqbool_ros.ros.node"]


def prepare_defaults(cfg: MaqboolConfig) -> None:
    """Build the default artifacts ``cfg`` uses (the node never builds them); a config whose
    artifacts cannot be built is left for the node to reject (the start-up error tests)."""
    from maqbool_ros.tools.build_defaults import ensure_defaults

    try:
        ensure_defaults(cfg)
    except (ValueError, OSError):
        pass


class NodeProcess:
    """A maqbool-node child process with the given config, in namespace `ns`."""

    def __init__(self, cfg: MaqboolConfig, workdir: Path, name: str = "node", ns: str | None = None,
                 command: list[str] | None = None, env: dict[str, str] | None = None):
        workdir = Path(workdir)
        self.ns = ns or unique_namespace()
        self.fqn = f"{self.ns}/{NODE_NAME}"
        self.cfg = cfg
        prepare_defaults(cfg)
        self.params = workdir / f"{name}_params.yaml"
        self.params.write_text(ros_params_yaml(cfg, node_name=self.fqn))
        self.log = open(workdir / f"{name}.log", "w+")
        self.proc = subprocess.Popen(
            [*(command or node_command()), "--ros-args", "-r", f"__ns:={self.ns}", "--params-file", str(self.params)],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(env or os.environ, PYTHONUNBUFFERED="1"))
        _STARTED.append(self)

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send sig and return the exit status (RuntimeError if it does not stop in time)."""
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(
                f"node did not stop within {timeout}s after {sig!r}:\n{self.log_text()[-3000:]}") from exc


class Driver(Node):
    """Test-side node in the node's namespace: publishes keyframes (Keyframe messages on
    "keyframes" when the node's input_type is keyframe, else images on `topic`), receives
    candidates, stats and diagnostics. Spins in a background thread; call close() at the end."""

    def __init__(self, node: NodeProcess, compressed: bool = False, topic: str | None = None,
                 reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE):
        super().__init__("maqbool_test_driver", namespace=node.ns)
        self.target = node
        qos = QoSProfile(depth=1000, reliability=reliability)
        self.compressed = compressed
        self.keyframes = node.cfg.input_type == "keyframe"
        if self.keyframes:
            self.pub = self.create_publisher(Keyframe, topic or node.cfg.keyframe_topic, qos)
        else:
            self.pub = self.create_publisher(CompressedImage if compressed else Image, topic or "keyframes/image", qos)
        self._lock = threading.Lock()
        self.candidates: list[LoopClosureCandidate] = []
        self.stats: list[dict] = []
        self.diagnostics: list = []  # DiagnosticStatus of this node only
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(LoopClosureCandidate, "loop_closure/candidates", self._append(self.candidates),
                                 reliable)
        self.create_subscription(String, f"{node.fqn}/stats", self._on_stats, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._spinner = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinner.start()

    def _append(self, target: list):
        def add(msg) -> None:
            with self._lock:
                target.append(msg)
        return add

    def _on_stats(self, msg: String) -> None:
        with self._lock:
            self.stats.append(json.loads(msg.data))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.diagnostics.extend(s for s in msg.status if s.name.startswith(self.target.fqn + ":"))

    def close(self) -> None:
        self._executor.shutdown()
        self._spinner.join(timeout=10)
        self.destroy_node()

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        """Poll predicate (the spinner thread fills the lists) or raise TimeoutError."""
        end = time.monotonic() + timeout
        while not predicate():
            if not self.target.alive():
                raise RuntimeError(f"node exited while waiting for {what}:\n{self.target.log_text()[-3000:]}")
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    def wait_for_node(self, timeout: float = 300.0) -> None:
        self.wait_until(lambda: self.pub.get_subscription_count() > 0
                        and self.count_publishers("loop_closure/candidates") > 0, timeout, "the node to come up")

    def image_msg(self, rgb: np.ndarray | None = None, frame_id: str = "", jpeg: bytes | None = None,
                  encoding: str = "rgb8"):
        if self.compressed:
            msg = CompressedImage(format="jpeg", data=jpeg)
        else:
            data, step = encode_raw(rgb, encoding)
            msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=step, data=data)
        msg.header.frame_id = frame_id
        msg.header.stamp = self.get_clock().now().to_msg()
        return msg

    def keyframe_msg(self, keyframe_id: int, rgb: np.ndarray | None = None, *, robot_id: str = "",
                     map_id: str = "", jpeg: bytes | None = None, frame_id: str = "camera") -> Keyframe:
        """A Keyframe message: raw rgb8 image when rgb is given, the JPEG bytes when jpeg is."""
        msg = Keyframe(keyframe_id=int(keyframe_id), robot_id=robot_id, map_id=map_id)
        if rgb is not None:
            data, step = encode_raw(rgb, "rgb8")
            msg.image = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=step, data=data)
        if jpeg is not None:
            msg.compressed_image = CompressedImage(format="jpeg", data=jpeg)
        msg.header.frame_id = frame_id
        msg.header.stamp = self.get_clock().now().to_msg()
        return msg

    def candidate_for(self, keyframe_id: int, robot_id: str | None = None) -> LoopClosureCandidate | None:
        with self._lock:
            return next((c for c in reversed(self.candidates) if c.query_keyframe_id == keyframe_id
                         and (robot_id is None or c.robot_id == robot_id)), None)

    def publish_and_wait(self, msg, timeout: float = 120.0, robot_id: str | None = None) -> LoopClosureCandidate:
        """Publish one keyframe and wait for the candidates of its id (a Keyframe message's
        keyframe_id and robot_id, else robot_id; an image's integer frame_id)."""
        if isinstance(msg, Keyframe):
            kf_id, robot = int(msg.keyframe_id), msg.robot_id or robot_id
        else:
            kf_id, robot = int(msg.header.frame_id), None
        self.pub.publish(msg)
        self.wait_until(lambda: self.candidate_for(kf_id, robot) is not None, timeout,
                        f"the LoopClosureCandidate of keyframe {robot}/{kf_id}")
        return self.candidate_for(kf_id, robot)

    def set_parameter(self, name: str, value, timeout: float = 30.0) -> tuple[bool, str]:
        """Set a parameter on the node: (True, "") or (False, the node's reason)."""
        try:
            set_remote_parameter(self, self.target.fqn.lstrip("/"), name, value, timeout)
        except NodeUnavailableError as exc:
            return False, str(exc)
        return True, ""

    def latest_stats(self, timeout: float = 30.0) -> dict:
        """The next stats message published after this call."""
        with self._lock:
            before = len(self.stats)
        self.wait_until(lambda: len(self.stats) > before, timeout, "a stats message")
        with self._lock:
            return self.stats[-1]

    def wait_stats(self, predicate, timeout: float, what: str) -> dict:
        """Wait for a stats message satisfying predicate and return it."""
        def ok() -> bool:
            with self._lock:
                return bool(self.stats) and predicate(self.stats[-1])
        self.wait_until(ok, timeout, what)
        with self._lock:
            return self.stats[-1]

    def call_trigger(self, service: str, timeout: float = 30.0):
        """Call one of the node's std_srvs/Trigger services (e.g. save_database)."""
        from std_srvs.srv import Trigger

        return self.call(Trigger, service, Trigger.Request(), timeout)

    def call(self, srv_type, service: str, request, timeout: float = 120.0):
        """Call the node's service `service` (e.g. Detect, "detect") and return the response."""
        client = self.create_client(srv_type, f"{self.target.fqn}/{service}")
        try:
            self.wait_until(client.service_is_ready, timeout, f"service {service}")
            future = client.call_async(request)
            self.wait_until(future.done, timeout, f"{service} response")
            return future.result()
        finally:
            self.destroy_client(client)


def drained(stats: dict) -> bool:
    """Nothing queued and nothing in a worker's hands."""
    return sum(stats["queue_depth"].values()) == 0 and sum(stats["in_flight"].values()) == 0
