"""ROS bags without ROS: read and write with `rosbags` (no rclpy, no cv_bridge).

* ROS 2 bags in sqlite3 (.db3) or mcap storage are written; ROS 2 and ROS 1 bags are read
  (rosbags' AnyReader).
* sensor_msgs/Image and CompressedImage convert to and from RGB numpy arrays here.
* The project's messages (maqbool_ros/msg/LoopClosureCandidate, CandidateMatch) are
  registered into the typestore from the msg/*.msg text, so bags of node output can be
  written and read with the same byte layout rclpy uses.
* Bags written by ``maqbool bag from-images`` carry their ground truth as one JSON
  std_msgs/String on GROUND_TRUTH_TOPIC, so an evaluation needs only the bag.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.atomic import atomic_directory
from maqbool_ros.core.types import seconds_to_sec_nanosec

GROUND_TRUTH_TOPIC = "/maqbool/ground_truth"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CANDIDATE_TYPE = "maqbool_ros/msg/LoopClosureCandidate"
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped",
              "geometry_msgs/msg/PoseWithCovarianceStamped")
STORAGES = ("sqlite3", "mcap")


def msg_dir() -> Path:
    """Folder with the project's .msg files: the source tree's msg/, else the installed share/
    (the venv's, or a colcon install space on AMENT_PREFIX_PATH)."""
    prefixes = [sys.prefix, *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
    candidates = [Path(__file__).resolve().parents[3] / "msg",
                  *(Path(p) / "share" / "maqbool_ros" / "msg" for p in prefixes)]
    for folder in candidates:
        if (folder / "LoopClosureCandidate.msg").is_file():
            return folder
    raise FileNotFoundError("LoopClosureCandidate.msg not found in " + ", ".join(map(str, candidates)))


@functools.lru_cache(maxsize=1)
def typestore():
    """ROS 2 Kilted types plus maqbool_ros/msg/* registered from their .msg text."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"maqbool_ros/msg/{path.stem}"))
    store.register(types)
    return store


def _header(stamp_s: float, frame_id: str):
    ts = typestore()
    sec, nanosec = seconds_to_sec_nanosec(stamp_s)
    time = ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return ts.types["std_msgs/msg/Header"](stamp=time, frame_id=str(frame_id))


def rgb_to_image_msg(rgb: np.ndarray, stamp_s: float, frame_id: str):
    """An RGB uint8 image as sensor_msgs/Image (encoding rgb8)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image: expected HxWx3 uint8 RGB, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    return typestore().types[IMAGE_TYPE](header=_header(stamp_s, frame_id), height=h, width=w,
                                         encoding="rgb8", is_bigendian=0, step=w * 3,
                                         data=rgb.reshape(-1))


def rgb_to_compressed_msg(rgb: np.ndarray, stamp_s: float, frame_id: str, fmt: str = "jpeg",
                          jpeg_quality: int = 95):
    """An RGB uint8 image as sensor_msgs/CompressedImage (jpeg or png)."""
    import cv2

    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format: {fmt!r} is not jpeg or png")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError("image: OpenCV could not encode it")
    return typestore().types[COMPRESSED_TYPE](header=_header(stamp_s, frame_id), format=fmt,
                                              data=np.asarray(buf, dtype=np.uint8).reshape(-1))


def image_msg_to_rgb(msg: Any, msgtype: str) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> RGB uint8, with the node's own decoder
    (maqbool_ros.core.images.decode), so offline and online runs see the same pixels."""
    from maqbool_ros.core.images.decode import decode_compressed, decode_raw

    data = msg.data.tobytes() if isinstance(msg.data, np.ndarray) else bytes(msg.data)
    if msgtype.endswith("CompressedImage"):
        return decode_compressed(data, msg.format)
    return decode_raw(data, int(msg.width), int(msg.height), msg.encoding, int(msg.step),
                      bool(msg.is_bigendian))


class BagWriter:
    """A ROS 2 bag being written (context manager). Topics are added on first use."""

    def __init__(self, out: str | Path, storage: str = "sqlite3"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError(f"storage: {storage!r} is not one of {list(STORAGES)}")
        out = Path(out)
        if out.exists():
            raise ValueError(f"{out}: already exists (bags are never overwritten)")
        # Written in a temporary sibling and renamed on success: a failure (a corrupt image
        # mid-folder, Ctrl-C) leaves no half bag that a rerun would call "already exists".
        self._target = atomic_directory(out)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._target.__enter__(), version=9, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self.path = out

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except BaseException as exc:
            self._target.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._writer.close()
        except BaseException as close_exc:
            self._target.__exit__(type(close_exc), close_exc, close_exc.__traceback__)
            raise
        self._target.__exit__(*exc)

    def _connection(self, topic: str, msgtype: str):
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=typestore())
        return self._connections[topic]

    def write(self, topic: str, msgtype: str, time_ns: int, msg: Any) -> None:
        """Serialize a rosbags message object and store it."""
        self.write_raw(topic, msgtype, time_ns, typestore().serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, time_ns: int, data: bytes | memoryview) -> None:
        """Store already CDR-serialized bytes (e.g. straight from an rclpy raw subscription)."""
        self._writer.write(self._connection(topic, msgtype), int(time_ns), data)

    def write_json(self, topic: str, time_ns: int, payload: dict) -> None:
        msg = typestore().types["std_msgs/msg/String"](data=json.dumps(payload))
        self.write(topic, "std_msgs/msg/String", time_ns, msg)


class BagReadError(ValueError):
    """A bag that cannot be read (truncated, corrupt, not a bag): one line naming the file."""


def _unreadable(path: Path, exc: BaseException) -> BagReadError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BagReadError(f"{path}: not a readable ROS bag (truncated or corrupt?): {reason}")


def read_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, Any]]:
    """(topic, msgtype, log time ns, deserialized message) in log-time order; ROS 1 or 2.
    A truncated or corrupt bag raises BagReadError (a ValueError) naming it."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: bag not found")
    wanted = set(topics) if topics is not None else None
    try:
        with AnyReader([path], default_typestore=typestore()) as reader:
            conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
            for conn, time_ns, raw in reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, time_ns, reader.deserialize(raw, conn.msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags, sqlite3 and mcap each raise their own types
        raise _unreadable(path, exc) from None


def is_bag(path: str | Path) -> bool:
    """A ROS 1 .bag, a ROS 2 bag directory (metadata.yaml) or a single .db3/.mcap file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.suffix in (".bag", ".db3", ".mcap")


def bag_topics(path: str | Path) -> dict[str, str]:
    """topic -> message type of a bag (BagReadError when it cannot be read)."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: bag not found")
    try:
        with AnyReader([path], default_typestore=typestore()) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as exc:  # noqa: BLE001 - rosbags, sqlite3 and mcap each raise their own types
        raise _unreadable(path, exc) from None


def pick_topic(topics: dict[str, str], wanted: str | None, types: tuple[str, ...], what: str) -> str | None:
    """The topic named ``wanted`` (leading slash optional), else the only one of ``types``."""
    if wanted is not None:
        wanted = wanted if wanted.startswith("/") or wanted in topics else "/" + wanted
        if wanted not in topics:
            raise ValueError(f"{what} topic {wanted!r} is not in the bag (topics: {sorted(topics)})")
        return wanted
    found = sorted(t for t, ty in topics.items() if ty in types)
    if len(found) > 1:
        raise ValueError(f"several {what} topics {found}: choose one with --{what}-topic")
    return found[0] if found else None


def image_topic_of(path: str | Path, wanted: str | None = None) -> tuple[str, str]:
    """(topic, msgtype) of the bag's image stream: ``wanted``, or its only image topic."""
    topics = bag_topics(path)
    topic = pick_topic(topics, wanted, (IMAGE_TYPE, COMPRESSED_TYPE), "image")
    if topic is None:
        raise ValueError(f"{path}: no sensor_msgs Image/CompressedImage topic (topics: {sorted(topics)})")
    return topic, topics[topic]


def write_dataset_bag(dataset, out: str | Path, *, storage: str = "sqlite3", topic: str = "/keyframes/image",
                      compressed: bool = False, compressed_format: str = "jpeg", rate_hz: float = 10.0,
                      progress: bool = True) -> int:
    """Write a dataset's images as one keyframe stream: refs then queries (or the frames).

    header.frame_id is the keyframe id (refs 0..R-1, queries R..R+Q-1; frames 0..N-1),
    header.stamp the dataset's clock (ref/query index for query/ref datasets), so the node's
    exclusion window sees what offline evaluation sees; log times are spaced 1/rate_hz apart.
    Returns the number of images written.
    """
    from tqdm import tqdm

    if rate_hz <= 0:
        raise ValueError(f"rate: must be > 0, got {rate_hz}")
    if dataset.kind == "query_ref":
        lists = [dataset.refs, dataset.queries]
        gt = {"kind": "query_ref", "name": dataset.name, "num_refs": len(dataset.refs),
              "num_queries": len(dataset.queries), "positives": [p.tolist() for p in dataset.positives]}
        stamps = np.arange(len(dataset.refs) + len(dataset.queries), dtype=float)
    else:
        lists = [dataset.frames]
        gt = {"kind": "sequence", "name": dataset.name, "positives": [p.tolist() for p in dataset.positives]}
        stamps = np.asarray(dataset.stamps, dtype=float)
    msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    total = sum(len(x) for x in lists)
    start_ns = 1_000_000_000  # log times start at 1 s; 0 confuses some tools
    with BagWriter(out, storage) as writer:
        writer.write_json(GROUND_TRUTH_TOPIC, start_ns, gt)
        i = 0
        with tqdm(total=total, desc="writing bag", unit="img", disable=not progress) as bar:
            for images in lists:
                for j in range(len(images)):
                    rgb = images[j]
                    msg = (rgb_to_compressed_msg(rgb, stamps[i], str(i), compressed_format) if compressed
                           else rgb_to_image_msg(rgb, stamps[i], str(i)))
                    writer.write(topic, msgtype, start_ns + int(round((i + 1) * 1e9 / rate_hz)), msg)
                    i += 1
                    bar.update()
    return total
