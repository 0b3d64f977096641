"""A seeded generator of malformed keyframe messages (bad encodings, sizes, steps, truncated
or garbage compressed data, keyframe ids beyond int64, invalid stamps). Each message comes
with the counter the node must file it under."""
from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

BAD_IDS = ("9223372036854775808", "-9223372036854775809", "18446744073709551616", "9" * 25, "-" + "1" * 40)
EDGE_IDS = ("9223372036854775807", "-9223372036854775808", "0", "", "not-a-number")
ENCODINGS = ("rgb8", "bgr8", "mono8", "mono16", "rgba8", "bgra8")


def _valid_raw(rng: np.random.Generator) -> Image:
    h, w = (int(v) for v in rng.integers(1, 48, 2))
    data = rng.integers(0, 256, h * w * 3, dtype=np.uint8).tobytes()
    return Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)


def _bad_raw(rng: np.random.Generator) -> Image:
    msg = _valid_raw(rng)
    kind = int(rng.integers(0, 6))
    if kind == 0:
        msg.encoding = str(rng.choice(["yuv422_weird", "", "RGB 8", "16UC9", "jpeg", "\u00e9\u00e9"]))
    elif kind == 1:
        msg.width, msg.height = (0, msg.height) if rng.random() < 0.5 else (msg.width, 0)
    elif kind == 2:
        msg.step = int(rng.integers(0, msg.width * 3))
    elif kind == 3:
        msg.data = bytes(msg.data)[: int(rng.integers(0, len(msg.data)))]
    elif kind == 4:
        msg.width, msg.height, msg.step = 2**31 - 1, 2**31 - 1, 2**32 - 1  # claims far more than it carries
    else:
        enc = str(rng.choice(ENCODINGS))
        msg.encoding, msg.step = enc, msg.width  # too short a row for every multi-byte encoding
        if enc == "mono8":
            msg.data = bytes(msg.data)[: msg.width * msg.height - 1]
    return msg


def _bad_compressed(rng: np.random.Generator) -> CompressedImage:
    img = rng.integers(0, 256, (int(rng.integers(8, 48)), int(rng.integers(8, 48)), 3), dtype=np.uint8)
    ext = str(rng.choice([".jpg", ".png"]))
    data = cv2.imencode(ext, img)[1].tobytes()
    kind = int(rng.integers(0, 3))
    if kind == 0:
        data = data[: int(rng.integers(0, len(data)))]  # truncated
    elif kind == 1:
        data = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()  # garbage
    else:
        data = b""
    return CompressedImage(format=str(rng.choice(["jpeg", "png", "", "bmp??"])), data=data)


def valid_compressed(rng: np.random.Generator) -> CompressedImage:
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return CompressedImage(format="jpeg", data=cv2.imencode(".jpg", img)[1].tobytes())


def malformed(seed: int, count: int, compressed: bool) -> list[tuple[object, str]]:
    """count messages, each with "malformed_headers" or "malformed_images"."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.3:  # a decodable image, but a header the node must refuse
            msg = valid_compressed(rng) if compressed else _valid_raw(rng)
            if rng.random() < 0.6:
                msg.header.frame_id = str(rng.choice(BAD_IDS))
            else:
                msg.header.stamp.sec = int(rng.integers(-(2**31), 2**31 - 1))
                msg.header.stamp.nanosec = int(rng.integers(1_000_000_000, 2**32))
            out.append((msg, "malformed_headers"))
            continue
        msg = _bad_compressed(rng) if compressed else _bad_raw(rng)
        msg.header.frame_id = str(rng.choice(EDGE_IDS))
        msg.header.stamp.sec = int(rng.integers(-(2**31), 2**31 - 1))
        msg.header.stamp.nanosec = int(rng.integers(0, 1_000_000_000))
        out.append((msg, "malformed_images"))
    return out


def malformed_keyframes(seed: int, count: int) -> list[tuple[object, str]]:
    """count maqbool_ros/Keyframe messages, each with the counter the node files it under:
    malformed_keyframes (no image / both images, robot or map id, stamp), malformed_images (an
    undecodable image in the message) or malformed_depth (a valid image with a bad depth image:
    the keyframe itself is processed and stored, ids 10000 + i)."""
    from maqbool_ros.msg import Keyframe

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        msg = Keyframe(keyframe_id=int(rng.integers(-(2**63), 2**63 - 1, dtype=np.int64)),
                       robot_id=str(rng.choice(["", "robot_a", "r-1"])))
        kind = int(rng.integers(0, 6))
        if kind == 0:  # no image at all, or both
            if rng.random() < 0.5:
                msg.image, msg.compressed_image = _valid_raw(rng), valid_compressed(rng)
            out.append((msg, "malformed_keyframes"))
        elif kind == 1:  # ids the database refuses, stamps out of range
            msg.image = _valid_raw(rng)
            which = int(rng.integers(0, 3))
            if which == 0:
                msg.robot_id = "r" * int(rng.integers(257, 2000))
            elif which == 1:
                msg.map_id = str(rng.choice(["m" * 65, "a\nb", "\u00e9" * 33]))
            else:
                msg.header.stamp.nanosec = int(rng.integers(1_000_000_000, 2**32))
            out.append((msg, "malformed_keyframes"))
        elif kind in (2, 3):
            if kind == 2:
                msg.image = _bad_raw(rng)
            else:
                msg.compressed_image = _bad_compressed(rng)
            if not len(msg.image.data) and not len(msg.compressed_image.data):
                out.append((msg, "malformed_keyframes"))  # the corruption emptied it: no image at all
            else:
                out.append((msg, "malformed_images"))
        else:  # a good keyframe whose depth image is unusable
            msg.keyframe_id, msg.robot_id = 10_000 + i, "robot_a"
            pixels = rng.integers(0, 256, 32 * 32 * 3, dtype=np.uint8).tobytes()  # above the network minimum
            msg.image = Image(height=32, width=32, encoding="rgb8", step=96, data=pixels)
            depth = _bad_raw(rng)
            depth.encoding = str(rng.choice(["16UC1", "32FC1", "rgb8", "8UC3"]))
            if depth.encoding in ("16UC1", "32FC1"):
                depth.data = bytes(depth.data)[:1]  # far too short for its size
            msg.depth = depth
            out.append((msg, "malformed_depth"))
    return out
