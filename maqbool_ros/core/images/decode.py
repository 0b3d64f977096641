"""sensor_msgs/Image and CompressedImage payloads -> RGB uint8 arrays, without cv_bridge.

Works on the raw fields (bytes, width, height, encoding, step) so it is testable without
ROS. Every failure raises ImageDecodeError naming the offending field.

Memory is bounded before decoding: raw images check width*height, compressed ones the size in
their header (headers.py), against ``max_image_pixels``; 16-bit images are brought to 8 bits
without a float copy of the full image.
"""
from __future__ import annotations

import cv2
import numpy as np

from maqbool_ros.core.config import FIELDS
from maqbool_ros.core.images.headers import ImageDecodeError, image_size

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "ImageDecodeError", "MIN_KEYFRAME_SIDE", "SUPPORTED_ENCODINGS",
           "UninformativeImage", "check_keyframe_image", "check_pixels", "decode_compressed", "decode_raw",
           "encode_raw"]

DEFAULT_MAX_IMAGE_PIXELS: int = FIELDS["max_image_pixels"].default
#: Smallest width or height of a keyframe the node accepts: the network's input minimum
#: (image_width/height >= 32) and the verification features' (ORB's border alone is 19 px).
#: A smaller frame is no camera image (a 1x1 would be enlarged to a full, featureless input).
MIN_KEYFRAME_SIDE = 32


class UninformativeImage(ImageDecodeError):
    """A well-formed image that shows nothing: every pixel has the same value."""

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


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """Raise ImageDecodeError if width*height exceeds max_pixels; ``what`` starts the message
    with the field and format, e.g. ``"data: PNG"`` or ``"width/height:"``."""
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{what} {width}x{height} = {width * height / 1e6:.1f} MP exceeds max_image_pixels "
            f"{max_pixels / 1e6:.1f} MP ({max_pixels} pixels); refused before decoding")


def check_keyframe_image(rgb: np.ndarray) -> None:
    """Refuse a decoded keyframe that is smaller than MIN_KEYFRAME_SIDE (ImageDecodeError) or
    blank (UninformativeImage): every blank frame (lens cap, dark room, a driver sending zeros)
    would get the same descriptor and match every other one as a loop."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_KEYFRAME_SIDE:
        raise ImageDecodeError(f"width/height: {w}x{h} is smaller than the {MIN_KEYFRAME_SIDE} px minimum side "
                               "of a keyframe")
    lo, hi = int(rgb.min()), int(rgb.max())
    if lo == hi:
        raise UninformativeImage(f"data: every pixel is {lo} (a blank {w}x{h} image shows no place)")


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit, scaled by the image's own maximum (keeps low-bit-depth sensors visible).

    cv2.convertScaleAbs rounds and saturates row by row, so the only new full-size array is
    the uint8 result: no float32 copy (4 bytes per sample, twice) as numpy arithmetic makes.
    """
    peak = max(int(img.max()), 1)
    return cv2.convertScaleAbs(img, alpha=255.0 / peak)


def decode_raw(data: bytes, width: int, height: int, encoding: str, step: int,
               is_bigendian: bool = False, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/Image payload to an (height, width, 3) uint8 RGB array.

    width*height is checked against max_pixels before the data is looked at. mono16 is scaled
    to 8 bits by the image's own maximum (keeps low-bit-depth sensors visible).
    """
    enc = encoding.lower()
    if enc not in _RAW:
        raise ImageDecodeError(f"encoding: {encoding!r} is not supported (use one of {list(SUPPORTED_ENCODINGS)})")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"width/height: image is empty ({width}x{height})")
    check_pixels(width, height, max_pixels, "width/height:")
    channels, dtype, conversion = _RAW[enc]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step: {step} bytes is less than width*channels*bytes = {row_bytes}")
    if len(data) < step * height:
        raise ImageDecodeError(f"data: {len(data)} bytes, expected step*height = {step * height}")
    buf = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)[:, :row_bytes]
    arr = np.ascontiguousarray(buf).view(np.dtype(dtype).newbyteorder(">" if is_bigendian else "<"))
    if dtype == np.uint16:
        if is_bigendian:  # OpenCV takes native byte order only: one uint16 copy
            arr = arr.astype(np.uint16)
        arr = _to_uint8(arr.reshape(height, width))  # mono16 is the only 16-bit encoding
    else:
        arr = arr.reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(arr)
    return cv2.cvtColor(np.ascontiguousarray(arr), conversion)


def decode_compressed(data: bytes, fmt: str = "", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage payload or an image file's bytes to RGB uint8.

    The size in the header is checked against max_pixels first; formats whose header is not
    understood (headers.SUPPORTED_FORMATS) are refused. 16-bit images are scaled to 8 bits by
    their own maximum.
    """
    if not data:
        raise ImageDecodeError("data: compressed image is empty")
    kind, width, height = image_size(data)
    check_pixels(width, height, max_pixels, f"data: {kind}")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageDecodeError(f"data: cannot decode {kind} image (format {fmt!r}, {len(data)} bytes; "
                               "truncated or corrupt)")
    if img.dtype == np.uint16:
        img = _to_uint8(img)
    elif img.dtype != np.uint8:
        raise ImageDecodeError(f"data: {kind} image has {img.dtype} pixels; only 8- and 16-bit images are supported")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: the decoder's array is ours


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
