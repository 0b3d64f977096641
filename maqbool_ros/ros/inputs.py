"""The node's inputs: maqbool_ros/Keyframe messages or plain images, checked and turned into
one `Arrival` the descriptor worker (and the ~/detect service) hands to the pipeline.

Id policy (docs/node.md#keyframe-ids-and-robot-ids): a Keyframe message carries its own
keyframe_id, robot_id (empty: the node's) and map_id; a plain image gets its id from
keyframe_id_source (default the arrival counter; header.frame_id stays a TF frame) and the
node's robot_id. Everything cheap is checked in the callback, before the keyframe is queued;
decoding happens in the worker.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from maqbool_ros.core.database import validate
from maqbool_ros.core.database.map_ids import encode_map_id
from maqbool_ros.core.verification.camera import Camera, depth_from_msg
from maqbool_ros.ros.headers import MalformedHeader, check_stamp, frame_id_keyframe_id

#: Keyframe topic QoS: reliable and deep, so a burst of keyframes is never lost on the wire.
KEYFRAME_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)


class MalformedKeyframe(ValueError):
    """A keyframe message that cannot be used; the message names the field."""


class DuplicateKeyframe(ValueError):
    """A keyframe whose (robot_id, keyframe_id) is already in the database."""


@dataclass
class Arrival:
    """One keyframe accepted by a callback (or a ~/detect request), not decoded yet."""

    image: object  # sensor_msgs/Image or CompressedImage
    keyframe_id: int
    robot_id: str
    map_id: str
    header: object  # std_msgs/Header: stamp and TF frame of the image
    received: float  # time.perf_counter() at arrival
    depth: object | None = None  # sensor_msgs/Image from a Keyframe message (None: none / topics)
    camera_info: object | None = None  # sensor_msgs/CameraInfo from a Keyframe message
    from_keyframe: bool = False  # depth / camera_info come with the message, not from the topics

    @property
    def image_field(self) -> str:
        """Name of the image field, for error messages."""
        if not self.from_keyframe:
            return "image"
        return "compressed_image" if hasattr(self.image, "format") else "image"


def keyframe_image(msg, prefix: str = ""):
    """The one image of a Keyframe message: image (raw) or compressed_image, exactly one set."""
    raw, compressed = len(msg.image.data) > 0, len(msg.compressed_image.data) > 0
    if raw == compressed:
        state = "both are set" if raw else "neither is set (both data fields are empty)"
        raise MalformedKeyframe(f"{prefix}image / {prefix}compressed_image: exactly one must be set, {state}")
    return msg.image if raw else msg.compressed_image


def robot_of(robot_id: str, default: str, field: str = "robot_id") -> str:
    """robot_id, or the node's default when empty; checked like the database checks it."""
    try:
        return validate.robot_id(robot_id or default, field)
    except ValueError as exc:
        raise MalformedKeyframe(str(exc)) from None


def arrival_from_keyframe(msg, default_robot: str, received: float, prefix: str = "") -> Arrival:
    """A Keyframe message as an Arrival; MalformedKeyframe naming the field (prefix: e.g.
    "keyframe." for the ~/detect request)."""
    try:
        check_stamp(msg.header.stamp)
    except MalformedHeader as exc:
        raise MalformedKeyframe(f"{prefix}{exc}") from None
    image = keyframe_image(msg, prefix)
    robot = robot_of(msg.robot_id, default_robot, f"{prefix}robot_id")
    try:
        encode_map_id(msg.map_id, f"{prefix}map_id")
    except ValueError as exc:
        raise MalformedKeyframe(str(exc)) from None
    depth = msg.depth if len(msg.depth.data) > 0 else None
    info = msg.camera_info if any(float(k) != 0.0 for k in msg.camera_info.k) else None
    return Arrival(image, int(msg.keyframe_id), robot, str(msg.map_id), msg.header, received, depth, info,
                   from_keyframe=True)


def keyframe_sensors(arrival: Arrival, count_error) -> tuple[Camera | None, np.ndarray | None]:
    """(camera, depth) of a Keyframe message, decoded with the depth / CameraInfo topics' own
    functions; a malformed one is counted (malformed_depth / malformed_camera_info) and
    dropped: the keyframe goes on without it."""
    camera = depth = None
    kf = f"keyframe {arrival.robot_id}/{arrival.keyframe_id}"
    if arrival.camera_info is not None:
        try:
            camera = Camera.from_camera_info(arrival.camera_info)
        except ValueError as exc:
            count_error("malformed_camera_info", f"{kf}: camera_info: {exc}")
    if arrival.depth is not None:
        try:
            depth = depth_from_msg(arrival.depth)
        except ValueError as exc:
            count_error("malformed_depth", f"{kf}: depth: {exc}")
    return camera, depth


class ImageIds:
    """Keyframe ids of plain images (keyframe_id_source): counter, frame_id or topic."""

    def __init__(self, source: str, first: int = 0) -> None:
        self.source = source
        self._next = int(first)
        self._pending: collections.deque = collections.deque(maxlen=1000)
        self._lock = threading.Lock()

    def on_id(self, msg) -> None:
        """std_msgs/Int64 on keyframe_id_topic."""
        self._pending.append(int(msg.data))

    def next_id(self, header) -> int:
        """The id of the image with this header; MalformedHeader for an integer frame_id
        outside int64 (frame_id source)."""
        if self.source == "frame_id":
            value = frame_id_keyframe_id(header.frame_id)
            if value is not None:
                return value
        elif self.source == "topic" and self._pending:
            return self._pending.popleft()
        with self._lock:
            self._next += 1
            return self._next - 1
