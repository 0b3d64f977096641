"""Per-keyframe map / session ids (Keyframe.map_id), stored as a fixed-size extras column.

Extras columns are numeric arrays of one shape per key, persisted by both backends (the
FAISS map's snapshot + log, Milvus' extras JSON) and returned with every search, so a map
id rides along without a schema change: UTF-8 bytes, zero-padded to MAP_ID_BYTES. Keyframes
stored without one read back as "" (extras are zero-filled for them).
"""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.text import printable

MAP_ID_KEY = "map_id"
MAP_ID_BYTES = 64


def encode_map_id(map_id: str, field: str = "map_id") -> np.ndarray:
    """map_id -> (MAP_ID_BYTES,) uint8; ValueError naming the field when it does not fit or
    holds a NUL / control character (it would not read back the same)."""
    if not isinstance(map_id, str):
        raise ValueError(f"{field}: expected a string, got {map_id!r}")
    if not map_id.isprintable():
        raise ValueError(f"{field}: '{printable(map_id)}' contains control characters")
    data = map_id.encode("utf-8")
    if len(data) > MAP_ID_BYTES:
        raise ValueError(f"{field}: {len(data)} bytes in UTF-8, at most {MAP_ID_BYTES} allowed")
    out = np.zeros(MAP_ID_BYTES, np.uint8)
    out[: len(data)] = np.frombuffer(data, np.uint8)
    return out


def decode_map_ids(extras: dict[str, np.ndarray], n: int) -> list[str]:
    """The map ids of n candidates from their stacked extras ("" where none was stored)."""
    arr = extras.get(MAP_ID_KEY)
    if arr is None or len(arr) != n:
        return [""] * n
    return [bytes(row).rstrip(b"\0").decode("utf-8", errors="replace") for row in np.asarray(arr, np.uint8)]
