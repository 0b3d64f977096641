"""Valid "decompression bomb" images built in a few milliseconds and a few hundred kB of memory.

Shared by test/test_images_*.py and benchmarks/image_decode.py.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zero_png(width: int, height: int, bit_depth: int = 16, colour_type: int = 6) -> bytes:
    """A valid PNG whose pixels are all zero (default: 16-bit RGBA, the issue's bomb).

    Every scanline (filter byte 0 + zeros) is compressed once and the compressed block repeated:
    a full flush resets the deflate dictionary and byte-aligns the output, so each row's block is
    identical. The Adler-32 of n zero bytes is (n mod 65521) << 16 | 1. A 10000x10000 16-bit
    RGBA image (800 MB decoded) is ~1 MB here.
    """
    row = bytes(1 + width * _CHANNELS[colour_type] * bit_depth // 8)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(row) + comp.flush(zlib.Z_FULL_FLUSH)
    final = comp.flush(zlib.Z_FINISH)
    raw_len = len(row) * height
    idat = b"\x78\xda" + block * height + final + struct.pack(">I", (raw_len % 65521) << 16 | 1)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def huge_jpeg(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims width x height."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)
