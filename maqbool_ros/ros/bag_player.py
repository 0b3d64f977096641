"""Replay a bag onto live ROS 2 topics with rclpy (there is no `ros2 bag` in a pip install).

Messages are published as the CDR bytes stored in the bag (ROS 1 bags are converted), so
nothing is decoded or re-encoded on the way. With a clock rate, /clock (rosgraph_msgs/Clock)
carries the bag's log time, as `ros2 bag play --clock` does, so nodes with use_sim_time run
on the bag's time.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from maqbool_ros.core.data.bags import typestore


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype} is not available to rclpy ({exc})") from exc


def parse_remaps(remaps: list[str] | None) -> dict[str, str]:
    """['/a:=/b', ...] -> {'/a': '/b'} (ValueError on a malformed entry)."""
    out = {}
    for item in remaps or []:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"topic remap {item!r}: expected OLD:=NEW")
        out[old if old.startswith("/") else "/" + old] = new
    return out


def raw_messages(path: str | Path, topics: list[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time ns, CDR bytes) in log-time order."""
    from rosbags.highlevel import AnyReader

    store = typestore()
    with AnyReader([Path(path)], default_typestore=store) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        for conn, t_ns, raw in reader.messages(connections=conns):
            data = bytes(raw) if reader.is2 else bytes(store.ros1_to_cdr(raw, conn.msgtype))
            yield conn.topic, conn.msgtype, t_ns, data


CLOCK_TOPIC = "/clock"


class BagPlayer:
    """Publishes a bag's messages from ``node``, paced by log time divided by ``rate``.

    ``clock_hz``: None publishes no clock; otherwise /clock gets the log time of every message
    just before it, and between messages ``clock_hz`` times per wall second (0: per message only).
    """

    def __init__(self, node: Node, path: str | Path, *, rate: float = 1.0, remaps: dict[str, str] | None = None,
                 topics: list[str] | None = None, depth: int = 1000, clock_hz: float | None = None):
        if rate < 0:
            raise ValueError(f"rate: must be >= 0 (0 = as fast as possible), got {rate}")
        if clock_hz is not None and not clock_hz >= 0:
            raise ValueError(f"clock: rate must be >= 0 Hz (0 = one tick per message), got {clock_hz}")
        self.node, self.path, self.rate = node, Path(path), rate
        self.remaps, self.topics, self.depth = remaps or {}, topics, depth
        self.clock_hz = clock_hz
        self._publishers: dict[str, object] = {}
        self._clock_pub = None
        if clock_hz is not None:
            self._clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=10))

    def publish_clock(self, t_ns: int) -> None:
        """Publish bag log time t_ns on /clock (no-op without a clock)."""
        if self._clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
            self._clock_pub.publish(msg)

    def _wait(self, start_wall: float, first_t: int, t_ns: int) -> None:
        """Sleep until t_ns is due, ticking /clock with the log time reached meanwhile."""
        due = start_wall + (t_ns - first_t) * 1e-9 / self.rate
        tick = 1.0 / self.clock_hz if self._clock_pub is not None and self.clock_hz else None
        while (delay := due - time.monotonic()) > 0:
            if tick is None:
                time.sleep(delay)
                return
            time.sleep(min(delay, tick))
            now_t = first_t + int((time.monotonic() - start_wall) * self.rate * 1e9)
            self.publish_clock(min(now_t, t_ns))

    def publisher(self, topic: str, msgtype: str):
        if topic not in self._publishers:
            qos = QoSProfile(depth=self.depth, reliability=ReliabilityPolicy.RELIABLE)
            self._publishers[topic] = self.node.create_publisher(message_class(msgtype),
                                                                 self.remaps.get(topic, topic), qos)
        return self._publishers[topic]

    def wait_for_subscribers(self, topic: str, msgtype: str, timeout_s: float = 10.0) -> bool:
        """Wait until something subscribes to topic (messages sent before are lost)."""
        pub = self.publisher(topic, msgtype)
        end = time.monotonic() + timeout_s
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)
        return pub.get_subscription_count() > 0

    def play(self, after_each: Callable[[str, int], None] | None = None) -> int:
        """Publish everything; after_each(topic, index) runs after each publish (lock-step
        evaluation waits there for the node's answer). Returns the number published."""
        start_wall, first_t, count = time.monotonic(), None, 0
        for topic, msgtype, t_ns, data in raw_messages(self.path, self.topics):
            first_t = t_ns if first_t is None else first_t
            if self.rate > 0:
                self._wait(start_wall, first_t, t_ns)
            self.publish_clock(t_ns)
            self.publisher(topic, msgtype).publish(data)
            if after_each is not None:
                after_each(topic, count)
            count += 1
        return count
