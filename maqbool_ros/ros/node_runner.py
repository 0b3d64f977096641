"""Drive a real `maqbool-node` process: start it with a params file, publish keyframes from
an rclpy node in this process, collect its candidates and stats.

Used by `maqbool demo`, the node latency benchmark and the node tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from maqbool_ros.core.config import NODE_NAME, MaqboolConfig, ros_params_yaml
from maqbool_ros.core.images.decode import encode_raw
from maqbool_ros.msg import LoopClosureCandidate

def node_command() -> list[str]:
    """The node's console script next to this interpreter, else `python -m`."""
    exe = Path(sys.executable).parent / "maqbool-node"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "maqbool_ros.ros.node"]


class NodeProcess:
    """A maqbool-node child process with the given config."""

    def __init__(self, cfg: MaqboolConfig, workdir: Path, name: str = "node"):
        workdir = Path(workdir)
        self.params = workdir / f"{name}_params.yaml"
        self.params.write_text(ros_params_yaml(cfg))
        self.log = open(workdir / f"{name}.log", "w+")
        self.proc = subprocess.Popen([*node_command(), "--ros-args", "--params-file", str(self.params)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ))

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
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"node did not stop within {timeout}s after {sig!r}:\n{self.log_text()[-3000:]}")


class Driver(Node):
    """Test-side node: publishes keyframes, receives candidates and stats."""

    def __init__(self, compressed: bool = False, topic: str = "keyframes/image"):
        super().__init__("maqbool_test_driver")
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.compressed = compressed
        self.pub = self.create_publisher(CompressedImage if compressed else Image, topic, qos)
        self.candidates: list[LoopClosureCandidate] = []
        self.stats: list[dict] = []
        self.create_subscription(LoopClosureCandidate, "loop_closure/candidates", self.candidates.append, qos)
        self.create_subscription(String, f"/{NODE_NAME}/stats", lambda m: self.stats.append(json.loads(m.data)), 10)
        self.param_client = self.create_client(SetParameters, f"/{NODE_NAME}/set_parameters")

    def spin_until(self, predicate, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            rclpy.spin_once(self, timeout_sec=0.05)

    def wait_for_node(self, node: NodeProcess, timeout: float = 300.0) -> None:
        def ready():
            if not node.alive():
                raise AssertionError(f"node exited early:\n{node.log_text()[-3000:]}")
            return self.pub.get_subscription_count() > 0 and self.count_publishers("loop_closure/candidates") > 0
        self.spin_until(ready, timeout, "the node to come up")

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

    def publish_and_wait(self, msg, timeout: float = 120.0) -> LoopClosureCandidate:
        """Publish one keyframe and wait for its candidates message."""
        before = len(self.candidates)
        self.pub.publish(msg)
        self.spin_until(lambda: len(self.candidates) > before, timeout, "a LoopClosureCandidate")
        return self.candidates[-1]

    def set_parameter(self, name: str, value, timeout: float = 30.0):
        """Set a parameter on the node; returns its SetParametersResult (successful, reason)."""
        self.spin_until(lambda: self.param_client.service_is_ready(), timeout, "the parameter service")
        msg = Parameter(name, value=value).to_parameter_msg()
        future = self.param_client.call_async(SetParameters.Request(parameters=[msg]))
        self.spin_until(future.done, timeout, f"set_parameters({name})")
        return future.result().results[0]

    def latest_stats(self, timeout: float = 30.0) -> dict:
        before = len(self.stats)
        self.spin_until(lambda: len(self.stats) > before, timeout, "a stats message")
        return self.stats[-1]
