"""Depth images and CameraInfo for geometric verification, matched to keyframe images by stamp.

Callbacks only store the latest messages in small bounded buffers keyed by stamp; the
descriptor worker asks for the ones matching its image (waiting up to depth_wait_s for a
depth image that has not arrived yet) and decodes them there. A malformed depth image or
CameraInfo is counted and dropped: the keyframe goes on with 2-D verification or none.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, Image

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.types import NANOSECONDS
from maqbool_ros.core.verification.camera import Camera, depth_from_msg
from maqbool_ros.ros.params import image_qos

DEPTH_BUFFER = 30  # depth images kept (about 1 s of a 30 Hz camera); keyframes are rarer
INFO_BUFFER = 10


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * NANOSECONDS + int(stamp.nanosec)


class SensorSync:
    """Subscriptions to depth_topic and camera_info_topic (when set) on `node`; `counts` (the
    node's Counters) gets depth_received / camera_info_received and the problems."""

    def __init__(self, node, cfg: MaqboolConfig, counts) -> None:
        self._node, self._cfg, self._counts, self._count = node, cfg, counts, counts.error
        self._cond = threading.Condition()
        self._depth: collections.deque = collections.deque(maxlen=DEPTH_BUFFER)
        self._info: collections.deque = collections.deque(maxlen=INFO_BUFFER)
        self._cameras: dict[int, Camera | None] = {}  # id(info msg) -> decoded camera, for the buffered ones
        self._tol_ns = int(cfg.sensor_sync_tolerance_s * NANOSECONDS)
        self._subs: dict[str, object] = {}
        self._fallback_timers: list = []
        for key, typ, topic, buf in (("depth", Image, cfg.depth_topic, self._depth),
                                     ("camera_info", CameraInfo, cfg.camera_info_topic, self._info)):
            if topic:
                self._subscribe(key, typ, topic, buf, best_effort=cfg.image_qos_reliability == "best_effort")

    @property
    def enabled(self) -> bool:
        return bool(self._subs)

    def _subscribe(self, key: str, typ, topic: str, buf: collections.deque, best_effort: bool) -> None:
        def on_msg(msg) -> None:  # executor thread: store only
            with self._cond:
                buf.append((stamp_ns(msg.header.stamp), msg))
                self._cond.notify_all()
            self._counts.add(f"{key}_received")

        def on_incompatible(info) -> None:  # auto: a best-effort camera driver -> subscribe best effort
            if self._cfg.image_qos_reliability == "auto" and "RELIABILITY" in str(info.last_policy_kind):
                def switch() -> None:
                    timer.cancel()
                    self._node.destroy_subscription(self._subs[key])
                    self._subscribe(key, typ, topic, buf, best_effort=True)
                timer = self._node.create_timer(0.0, switch)
                self._fallback_timers.append(timer)
            else:
                self._count("qos_incompatible", f"a publisher of {topic} has incompatible QoS")

        events = SubscriptionEventCallbacks(incompatible_qos=on_incompatible)
        self._subs[key] = self._node.create_subscription(typ, topic, on_msg, image_qos(self._cfg, best_effort),
                                                         event_callbacks=events)

    def _nearest(self, buf: collections.deque, t: int):
        """The buffered message whose stamp is nearest to t within the tolerance, else None."""
        best = min(buf, key=lambda item: abs(item[0] - t), default=None)
        return best[1] if best is not None and abs(best[0] - t) <= self._tol_ns else None

    def for_image(self, stamp, keyframe_id: int) -> tuple[Camera | None, np.ndarray | None]:
        """(camera, depth) for a keyframe image stamped `stamp` (descriptor worker). camera: the
        CameraInfo nearest in stamp within the tolerance, else the latest one (intrinsics rarely
        change), else None (the pipeline then uses the camera.* parameters)."""
        t = stamp_ns(stamp)
        depth_msg = None
        with self._cond:
            if "depth" in self._subs:
                end = time.monotonic() + self._cfg.depth_wait_s
                while (depth_msg := self._nearest(self._depth, t)) is None and time.monotonic() < end:
                    self._cond.wait(timeout=max(0.0, end - time.monotonic()))
            info = self._nearest(self._info, t) or (self._info[-1][1] if self._info else None)
            live = {id(m) for _, m in self._info}
        depth = None
        if "depth" in self._subs:
            if depth_msg is None:
                self._count("missing_depth", f"keyframe {keyframe_id}: no depth image within "
                            f"{self._cfg.sensor_sync_tolerance_s} s of its stamp after {self._cfg.depth_wait_s} s")
            else:
                try:
                    depth = depth_from_msg(depth_msg)
                except ValueError as exc:
                    self._count("malformed_depth", f"keyframe {keyframe_id}: {exc}")
        return self._camera(info, live), depth

    def _camera(self, info, live: set[int]) -> Camera | None:
        if info is None:
            return None
        self._cameras = {k: v for k, v in self._cameras.items() if k in live}
        if id(info) not in self._cameras:
            try:
                self._cameras[id(info)] = Camera.from_camera_info(info)
            except ValueError as exc:
                self._cameras[id(info)] = None
                self._count("malformed_camera_info", f"{self._cfg.camera_info_topic}: {exc}")
        return self._cameras[id(info)]
