"""Record the node's LoopClosureCandidate output (raw CDR bytes, exactly as rclpy sent them)."""
from __future__ import annotations

import threading
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from maqbool_ros.msg import LoopClosureCandidate


class CandidateRecorder:
    """Subscribes (raw) to the candidates topic and keeps (receive time ns, bytes)."""

    def __init__(self, node: Node, topic: str = "loop_closure/candidates", depth: int = 1000):
        self.node, self.topic = node, topic
        self.messages: list[tuple[int, bytes]] = []
        self._cond = threading.Condition()
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        self._sub = node.create_subscription(LoopClosureCandidate, topic, self._on_msg, qos, raw=True)

    def _on_msg(self, data: bytes) -> None:
        with self._cond:
            self.messages.append((time.time_ns(), bytes(data)))
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self.messages)

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Block until at least count messages arrived (True) or timeout_s passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout=timeout_s)

    def publisher_count(self) -> int:
        """Publishers matched on the topic (0 until the node is discovered)."""
        return self.node.count_publishers(self._sub.topic_name)

    def decoded(self) -> list[LoopClosureCandidate]:
        with self._cond:
            return [deserialize_message(data, LoopClosureCandidate) for _, data in self.messages]
