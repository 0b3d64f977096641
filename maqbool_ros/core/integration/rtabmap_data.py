"""RTAB-Map node data in plain numpy: depth images as RTAB-Map compresses them, image formats,
and node positions from a MapData graph (for markers and tools)."""
from __future__ import annotations

import cv2
import numpy as np

RVL_MAGIC = b"DEPTHRVL"


class DepthFormatError(ValueError):
    """A depth image the bridge cannot decode (the keyframe goes on without depth)."""


def image_format(data: bytes) -> str:
    """'jpeg' or 'png' from the magic bytes (RTAB-Map's Mem/ImageCompressionFormat); ValueError else."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    raise ValueError(f"left_compressed: neither JPEG nor PNG (first bytes {data[:8]!r})")


def decode_depth(data: bytes) -> np.ndarray:
    """RTAB-Map's compressed depth (rtabmap::compressImage) -> uint16 millimetres or float32 metres.

    16UC1 depth is RVL ("DEPTHRVL", Mem/DepthCompressionFormat ".rvl", RTAB-Map's default) or a
    16-bit PNG; 32FC1 depth is its raw float bytes stored as an 8-bit BGRA PNG. DepthFormatError
    for anything else."""
    if data[:8] == RVL_MAGIC:
        return decode_rvl(data)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DepthFormatError("right_compressed: not a decodable depth PNG")
    if img.ndim == 2 and img.dtype == np.uint16:
        return img
    if img.ndim == 3 and img.shape[2] == 4 and img.dtype == np.uint8:
        return np.ascontiguousarray(img).view(np.float32).reshape(img.shape[:2])
    raise DepthFormatError(f"right_compressed: unexpected depth layout {img.dtype} {img.shape}")


def _vle_values(words: np.ndarray) -> np.ndarray:
    """All variable-length integers of an RVL stream: 32-bit words of 8 nibbles, most significant
    first; a nibble carries 3 bits (least significant first) and 0x8 when more follow."""
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    nib = ((words[:, None] >> shifts) & 0xF).ravel().astype(np.int64)
    ends = (nib & 8) == 0
    gid = np.concatenate([[0], np.cumsum(ends)[:-1]])
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    k = np.arange(len(nib)) - starts[gid]
    return np.bincount(gid, weights=(nib & 7) << (3 * k)).astype(np.int64)


def decode_rvl(data: bytes) -> np.ndarray:
    """RTAB-Map's RVL depth (rtabmap/core/rvl_codec.cpp, after Wilson 2017) -> uint16 millimetres.
    Layout: "DEPTHRVL", uint32 cols, uint32 rows, then runs of (zeros, nonzeros, zig-zag deltas)."""
    if len(data) < 16:
        raise DepthFormatError("right_compressed: RVL header truncated")
    cols, rows = (int(v) for v in np.frombuffer(data[8:16], dtype="<u4"))
    n = rows * cols
    if n == 0 or n > 1 << 28:
        raise DepthFormatError(f"right_compressed: RVL size {cols}x{rows} out of range")
    body = data[16:]
    values = _vle_values(np.frombuffer(body[: len(body) // 4 * 4], dtype="<u4"))
    starts, lengths, firsts = [], [], []  # per nonzero run: first pixel, length, index of its first delta
    i = pixel = 0
    while pixel < n:
        if i + 1 >= len(values):
            raise DepthFormatError("right_compressed: RVL data truncated")
        zeros, nonzeros = int(values[i]), int(values[i + 1])
        pixel += zeros
        starts.append(pixel)
        lengths.append(nonzeros)
        firsts.append(i + 2)
        pixel += nonzeros
        i += 2 + nonzeros
    if pixel != n or i > len(values):
        raise DepthFormatError("right_compressed: RVL runs do not match the image size")
    lengths_a = np.asarray(lengths, dtype=np.int64)
    offsets = np.arange(int(lengths_a.sum())) - np.repeat(np.cumsum(lengths_a) - lengths_a, lengths_a)
    positive = values[np.repeat(firsts, lengths_a) + offsets]
    deltas = (positive >> 1) ^ -(positive & 1)
    out = np.zeros(n, dtype=np.uint16)
    out[np.repeat(starts, lengths_a) + offsets] = (np.cumsum(deltas) & 0xFFFF).astype(np.uint16)
    return out.reshape(rows, cols)


def encode_depth(depth: np.ndarray) -> bytes:
    """The inverse of decode_depth (PNG), as RTAB-Map stores depth; used by tests and tools."""
    if depth.dtype == np.float32:
        bgra = np.ascontiguousarray(depth).view(np.uint8).reshape(*depth.shape, 4)
        ok, buf = cv2.imencode(".png", bgra)
    else:
        ok, buf = cv2.imencode(".png", depth.astype(np.uint16))
    if not ok:
        raise ValueError("could not encode the depth image as PNG")
    return buf.tobytes()


def graph_positions(graph) -> dict[int, np.ndarray]:
    """{node id: position (x, y, z) in the map frame} from an rtabmap_msgs MapGraph, or a MapData
    (its .graph): the optimised poses RTAB-Map publishes on mapData / mapGraph. Landmarks
    (negative ids) are left out."""
    graph = getattr(graph, "graph", graph)
    ids, poses = list(graph.poses_id), list(graph.poses)
    if len(ids) != len(poses):
        raise ValueError(f"MapGraph: {len(ids)} poses_id but {len(poses)} poses")
    return {int(i): np.array([p.position.x, p.position.y, p.position.z]) for i, p in zip(ids, poses) if i > 0}
