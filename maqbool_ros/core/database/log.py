"""Append log of the keyframe database: one record per add/remove since the snapshot.

File: 8-byte header LOG_MAGIC, then records: REC_MAGIC, u32 JSON length, u32 body
length, u32 CRC-32 of JSON + body (little-endian), the JSON header (op, ids, blob specs)
and the blobs' raw C-order bytes. Never pickled.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.database.storage import LOG_MAGIC, DatabaseFormatError, write_atomic

REC_MAGIC = b"KFR1"  # header of every log record
_REC_HEAD = struct.Struct("<4sIII")  # magic, json bytes, body bytes, crc32(json + body)
MAX_PART = (1 << 32) - 1  # JSON and body lengths are u32

log = logging.getLogger(__name__)


def encode_record(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """One log record: JSON header (with blob specs) + raw C-order array bytes + crc32."""
    blobs = [(name, np.ascontiguousarray(a)) for name, a in arrays.items()]
    header = dict(header, blobs=[[n, a.dtype.str, list(a.shape)] for n, a in blobs])
    head = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join(a.tobytes() for _, a in blobs)
    if len(head) > MAX_PART or len(body) > MAX_PART:
        raise ValueError(f"log record too large ({len(head)} + {len(body)} bytes, at most {MAX_PART} each)")
    crc = zlib.crc32(body, zlib.crc32(head))
    return _REC_HEAD.pack(REC_MAGIC, len(head), len(body), crc) + head + body


@dataclass
class LogContents:
    """A parsed log: the valid records (header, arrays) with their byte spans, and the torn
    tail that follows them (records started but not whole, left by a crash or truncation)."""

    records: list[tuple[dict[str, Any], dict[str, np.ndarray]]]
    spans: list[tuple[int, int]]
    valid_bytes: int
    torn_bytes: int = 0
    torn_records: int = 0


def read_log(path: Path) -> LogContents:
    """Parse a log file.

    A damaged tail with no valid record after it is a torn write from a crash (or a
    truncation): it is dropped (valid_bytes stops before it) and counted: every record
    header seen in it is one lost record, at least one. Damage followed by further valid
    records is corruption and raises DatabaseFormatError.
    """
    data = path.read_bytes()
    if not data.startswith(LOG_MAGIC):
        raise DatabaseFormatError(f"{path}: not a keyframe log (bad file header)")
    out, pos = LogContents([], [], 0), len(LOG_MAGIC)
    while pos < len(data):
        rec, end = _parse_record(data, pos)
        if rec is None:
            if _later_record_exists(data, pos + 1):
                raise DatabaseFormatError(f"{path}: corrupt record at byte {pos} followed by more records; "
                                          "the database was left untouched")
            out.torn_bytes = len(data) - pos
            out.torn_records = max(1, data.count(REC_MAGIC, pos))
            log.warning("%s: at least %d record(s) (%d bytes from byte %d) torn or truncated, e.g. by a crash: "
                        "dropped (how many records followed the cut is unknown)",
                        path, out.torn_records, out.torn_bytes, pos)
            break
        out.records.append(rec)
        out.spans.append((pos, end))
        pos = end
    out.valid_bytes = pos
    return out


def _parse_record(data: bytes, pos: int):
    if pos + _REC_HEAD.size > len(data):
        return None, pos
    magic, nh, nb, crc = _REC_HEAD.unpack_from(data, pos)
    start = pos + _REC_HEAD.size
    end = start + nh + nb
    if magic != REC_MAGIC or end > len(data):
        return None, pos
    head, body = data[start:start + nh], data[start + nh:end]
    if zlib.crc32(body, zlib.crc32(head)) != crc:
        return None, pos
    try:  # CRC-valid but unparsable (a buggy writer): replay skips and reports it
        header = json.loads(head)
        if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
            raise ValueError("the JSON header is not an object with a blob list")
        arrays, off = {}, 0
        for name, dtype, shape in header.pop("blobs"):
            dt = np.dtype(dtype)
            if dt.hasobject:
                raise ValueError("object dtype")
            count = int(np.prod(shape, dtype=np.int64))
            arrays[str(name)] = np.frombuffer(body, dt, count, off).reshape(shape).copy()
            off += count * dt.itemsize
    except (TypeError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return ({"op": "unreadable", "error": f"{type(e).__name__}: {e}"}, {}), end
    return (header, arrays), end


def _later_record_exists(data: bytes, start: int) -> bool:
    i = data.find(REC_MAGIC, start)
    while i != -1:
        if _parse_record(data, i)[0] is not None:
            return True
        i = data.find(REC_MAGIC, i + 1)
    return False


def cut_torn_tail(path: Path, valid_bytes: int) -> Path | None:
    """Before a writer appends: move the bytes after valid_bytes to a kept copy (see
    keep_copy) and truncate the log there. Returns the copy, or None if there was no tail."""
    with open(path, "rb+") as f:
        f.seek(valid_bytes)
        tail = f.read()
        if not tail:
            return None
        copy = keep_copy(path, "torn", tail)
        f.truncate(valid_bytes)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: torn tail (%d bytes) moved to %s", path, len(tail), copy)
    return copy


def keep_copy(path: Path, kind: str, data: bytes) -> Path:
    """Write data beside path as `<name>.<kind>`, `<name>.<kind>-2`, ... (never overwriting
    a different copy; an identical one is reused). These copies are never deleted by the
    database: the user removes them."""
    for i in range(1, 10_000):
        copy = path.with_name(f"{path.name}.{kind}" + (f"-{i}" if i > 1 else ""))
        if not copy.exists():
            write_atomic(copy, data)
            return copy
        if copy.stat().st_size == len(data) and copy.read_bytes() == data:
            return copy
    raise OSError(f"{path}: too many .{kind} copies beside it; remove some")


class LogWriter:
    """Appends records with one unbuffered write each (a killed process loses nothing
    already written); flush() fsyncs, which is what survives an OS crash / power loss."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY)
        self.size = os.lseek(self._fd, 0, os.SEEK_END)
        self.dirty = False

    def append(self, record: bytes) -> None:
        """Append one record; on failure (e.g. disk full) cut the partial record off
        again, so later records never follow garbage."""
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except BaseException:
            self.truncate(self.size)
            raise
        self.size += len(record)
        self.dirty = True

    def truncate(self, size: int) -> None:
        """Cut the log back to `size` bytes (a partial record, or an insert rolled back)."""
        os.ftruncate(self._fd, size)
        os.lseek(self._fd, size, os.SEEK_SET)
        self.size = size

    def flush(self) -> None:
        if self.dirty and self._fd >= 0:
            self.dirty = False  # before fsync: an append racing with it marks dirty again
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # a database dropped without close() must not leak its fd
        try:
            self.close()
        except OSError:
            pass
