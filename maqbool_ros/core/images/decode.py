"""sensor_msgs/Image and CompressedImage payloads -> RGB uint8 arrays, without cv_bridge.

Works on the raw fields (bytes, width, height, encoding, step) so it is testable without
ROS. Every failure raises ImageDecodeError naming the offending field.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, dtype, conversion to RGB)
_RAW = {
    "rgb8": (3, np.uint8, None),
    "bgr8": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8uc1": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2RGB),
    "16uc1": (1, np.uint16, cv2.COLOR_GRAY2RGB),
}
SUPPORTED_ENCODINGS = tuple(_RAW)


class ImageDecodeError(ValueError):
    """The image message cannot be turned into an RGB array; the text names the field."""


def decode_raw(data: bytes, width: int, height: int, encoding: str, step: int,
               is_bigendian: bool = False) -> np.ndarray:
    """Decode a sensor_msgs/Image payload to an (height, width, 3) uint8 RGB array.

    mono16 is scaled to 8 bits by the image's own maximum (keeps low-bit-depth sensors visible).
    """
    enc = encoding.lower()
    if enc not in _RAW:
        raise ImageDecodeError(f"encoding: {encoding!r} is not supported (use one of {list(SUPPORTED_ENCODINGS)})")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"width/height: image is empty ({width}x{height})")
    channels, dtype, conversion = _RAW[enc]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step: {step} bytes is less than width*channels*bytes = {row_bytes}")
    if len(data) < step * height:
        raise ImageDecodeError(f"data: {len(data)} bytes, expected step*height = {step * height}")
    buf = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    arr = np.ascontiguousarray(buf).view(np.dtype(dtype).newbyteorder(">" if is_bigendian else "<"))
    arr = arr.reshape(height, width, channels)
    if dtype == np.uint16:
        peak = max(int(arr.max()), 1)
        arr = (arr.astype(np.float32) * (255.0 / peak)).round().astype(np.uint8)
    if conversion is None:
        return np.ascontiguousarray(arr)
    return cv2.cvtColor(np.ascontiguousarray(arr), conversion)


def decode_compressed(data: bytes, fmt: str = "") -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage payload (JPEG/PNG) to RGB uint8."""
    if not data:
        raise ImageDecodeError("data: compressed image is empty")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageDecodeError(f"data: cannot decode compressed image (format {fmt!r}, {len(data)} bytes; truncated or not JPEG/PNG)")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / max(int(img.max()), 1))).round().astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_raw(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[bytes, int]:
    """RGB uint8 -> (payload, step) for a sensor_msgs/Image of the given encoding (tests, bag tools)."""
    enc = encoding.lower()
    if enc == "rgb8":
        out = rgb
    elif enc == "bgr8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif enc == "mono8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif enc == "mono16":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype("<u2") * 257
    else:
        raise ImageDecodeError(f"encoding: cannot encode {encoding!r}")
    out = np.ascontiguousarray(out)
    return out.tobytes(), out.shape[1] * out.itemsize * (out.shape[2] if out.ndim == 3 else 1)
