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

    16UC1 depth is a 16-bit PNG; 32FC1 depth is its raw float bytes stored as an 8-bit BGRA PNG.
    RVL (Mem/DepthCompressionFormat ".rvl", RTAB-Map's default for 16UC1) is not decoded here:
    DepthFormatError (set Mem/DepthCompressionFormat to ".png" to give the bridge depth)."""
    if data[:8] == RVL_MAGIC:
        raise DepthFormatError("RVL-compressed depth is not supported (set RTAB-Map's "
                               "Mem/DepthCompressionFormat to .png)")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DepthFormatError("right_compressed: not a decodable depth PNG")
    if img.ndim == 2 and img.dtype == np.uint16:
        return img
    if img.ndim == 3 and img.shape[2] == 4 and img.dtype == np.uint8:
        return np.ascontiguousarray(img).view(np.float32).reshape(img.shape[:2])
    raise DepthFormatError(f"right_compressed: unexpected depth layout {img.dtype} {img.shape}")


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
