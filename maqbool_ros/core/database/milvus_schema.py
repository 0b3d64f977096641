"""Milvus collection layout of the keyframe database, its filter expressions and the
extras codec (pure functions; pymilvus is imported only by the callers that talk to it).

One row per keyframe: pk (int64 hash of robot id + keyframe id), keyframe_id, robot_id,
map_id, stamp, seq (the robot's insertion counter, for the "last N keyframes" rule),
extras (JSON: the re-ranker's arrays, base64) and the unit descriptor (FLOAT_VECTOR).
A second, tiny collection `<name>_robots` keeps a robot's insertion counter when its
newest keyframes are removed (the counter must not go back: see docs/milvus.md).
"""
from __future__ import annotations

import base64
import hashlib
import json
import math

import numpy as np

#: Milvus' default limit for one JSON value (proxy.maxJSONLength is not configurable in milvus-lite).
MAX_EXTRAS_JSON_BYTES = 65_536
MAX_TOP_K = 16_384  # Milvus' largest `limit` of one search
ROBOT_ID_BYTES = 1024  # VARCHAR max_length counts UTF-8 bytes; robot ids are <= 256 characters
INDEX = {"flat": ("FLAT", {}), "hnsw": ("HNSW", {"M": 32, "efConstruction": 40})}
OUTPUT = ["keyframe_id", "robot_id", "stamp"]


def keyframe_pk(robot_id: str, keyframe_id: int) -> int:
    """63-bit primary key of (robot, keyframe): every process derives the same one without
    a round trip; a collision (p ~ n^2 / 2^64) is detected and refused by `add`."""
    digest = hashlib.blake2b(f"{keyframe_id}\x1f{robot_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def quote(text: str) -> str:
    """A Milvus string literal (robot ids may contain quotes and backslashes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def keyframe_schema(client_cls, data_type, dim: int):
    """The keyframe collection schema (client_cls: pymilvus.MilvusClient, data_type: DataType)."""
    s = client_cls.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pk", data_type.INT64, is_primary=True)
    s.add_field("keyframe_id", data_type.INT64)
    s.add_field("robot_id", data_type.VARCHAR, max_length=ROBOT_ID_BYTES)
    s.add_field("map_id", data_type.VARCHAR, max_length=ROBOT_ID_BYTES)
    s.add_field("stamp", data_type.DOUBLE)
    s.add_field("seq", data_type.INT64)
    s.add_field("extras", data_type.JSON)
    s.add_field("descriptor", data_type.FLOAT_VECTOR, dim=dim)
    return s


def counter_schema(client_cls, data_type):
    """`<name>_robots`: robot_id -> next insertion number (a collection needs a vector field)."""
    s = client_cls.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("robot_id", data_type.VARCHAR, max_length=ROBOT_ID_BYTES, is_primary=True)
    s.add_field("next_seq", data_type.INT64)
    s.add_field("unused", data_type.FLOAT_VECTOR, dim=2)
    return s


def search_filter(robot_id: str | None, stamp: float | None, robot_next_seq: int, exclude_recent_keyframes: int,
                  exclude_recent_seconds: float, robot_filter: str) -> str:
    """The exclusion rules of KeyframeDatabase.admissible as a Milvus boolean expression
    ("" = no filter). robot_next_seq: the query robot's next insertion number; its last N
    keyframes are those with seq >= robot_next_seq - N."""
    if robot_id is None:
        return ""
    same = f"robot_id == {quote(robot_id)}"
    recent = []
    if exclude_recent_keyframes > 0:
        recent.append(f"seq >= {int(robot_next_seq) - int(exclude_recent_keyframes)}")
    if exclude_recent_seconds > 0 and stamp is not None:
        lo, hi = float(stamp) - float(exclude_recent_seconds), float(stamp) + float(exclude_recent_seconds)
        recent.append(f"(stamp > {lo!r} and stamp < {hi!r})")
    # A same-robot keyframe is admissible when it is in none of the recent windows.
    same_ok = same + (f" and not ({' or '.join(recent)})" if recent else "")
    if robot_filter == "inter_robot":
        return f"robot_id != {quote(robot_id)}"
    if robot_filter == "intra_robot":
        return same_ok
    return f"robot_id != {quote(robot_id)} or ({same_ok})" if recent else ""


def encode_extras(extras: dict[str, np.ndarray]) -> dict:
    """Arrays -> JSON-safe dict {key: {"d": dtype, "s": shape, "b": base64 bytes}}; raises
    ValueError naming the field when the encoding exceeds Milvus' JSON limit."""
    out = {k: {"d": v.dtype.str, "s": list(v.shape), "b": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode()}
           for k, v in extras.items()}
    size = len(json.dumps(out))
    if size > MAX_EXTRAS_JSON_BYTES:
        raise ValueError(f"extras: {size} bytes once encoded; the milvus backend stores at most "
                         f"{MAX_EXTRAS_JSON_BYTES} per keyframe (use the faiss backend for larger region caches)")
    return out


def decode_extras(stored: dict | None) -> dict[str, np.ndarray]:
    """Inverse of encode_extras (dtype and shape exactly as stored)."""
    out = {}
    for key, v in (stored or {}).items():
        out[key] = np.frombuffer(base64.b64decode(v["b"]), dtype=np.dtype(v["d"])).reshape(v["s"]).copy()
    return out


def encoded_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes one extras array takes in the collection (base64: 4/3 of the raw bytes)."""
    return 4 * math.ceil(int(np.prod(shape)) * np.dtype(dtype).itemsize / 3)


def bytes_per_row(dim: int, index_type: str, extras_spec: dict) -> int:
    """Bytes one keyframe takes in the collection: fp32 descriptor (FLAT reads it in place;
    HNSW adds ~2*M*4 bytes of links), the scalar fields, the extras JSON (base64 + keys)."""
    links = 2 * INDEX["hnsw"][1]["M"] * 4 if index_type == "hnsw" else 0
    extras = sum(encoded_bytes(v.row_shape, v.dtype) + 48 for v in extras_spec.values())
    return dim * 4 + links + 8 * 4 + 2 * 16 + extras
