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
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.database.storage import LOG_MAGIC, DatabaseFormatError

REC_MAGIC = b"KFR1"  # header of every log record
_REC_HEAD = struct.Struct("<4sIII")  # magic, json bytes, body bytes, crc32(json + body)

log = logging.getLogger(__name__)


def encode_record(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """One log record: JSON header (with blob specs) + raw C-order array bytes + crc32."""
    blobs = [(name, np.ascontiguousarray(a)) for name, a in arrays.items()]
    header = dict(header, blobs=[[n, a.dtype.str, list(a.shape)] for n, a in blobs])
    head = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join(a.tobytes() for _, a in blobs)
    crc = zlib.crc32(body, zlib.crc32(head))
    return _REC_HEAD.pack(REC_MAGIC, len(head), len(body), crc) + head + body


def read_log(path: Path) -> tuple[list[tuple[dict[str, Any], dict[str, np.ndarray]]], int]:
    """Parse a log; returns (records, valid_bytes).

    A damaged *last* record is a torn write from a crash and is dropped (valid_bytes
    stops before it); damage followed by further records is corruption and raises.
    """
    data = path.read_bytes()
    if not data.startswith(LOG_MAGIC):
        raise DatabaseFormatError(f"{path}: not a keyframe log (bad file header)")
    records, pos = [], len(LOG_MAGIC)
    while pos < len(data):
        rec, end = _parse_record(data, pos)
        if rec is None:
            if _later_record_exists(data, pos + 1):
                raise DatabaseFormatError(f"{path}: corrupt record at byte {pos} followed by more records; "
                                          "the database was left untouched")
            log.warning("%s: dropping a torn last record (%d bytes) left by a crash", path, len(data) - pos)
            break
        records.append(rec)
        pos = end
    return records, pos


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
    header = json.loads(head)
    arrays, off = {}, 0
    for name, dtype, shape in header.pop("blobs"):
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(body, dt, count, off).reshape(shape).copy()
        off += count * dt.itemsize
    return (header, arrays), end


def _later_record_exists(data: bytes, start: int) -> bool:
    i = data.find(REC_MAGIC, start)
    while i != -1:
        if _parse_record(data, i)[0] is not None:
            return True
        i = data.find(REC_MAGIC, i + 1)
    return False


class LogWriter:
    """Appends records with one unbuffered write each (a killed process loses nothing
    already written); flush() fsyncs, which is what survives an OS crash / power loss."""

    def __init__(self, path: Path, valid_bytes: int | None = None):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY)
        size = os.fstat(self._fd).st_size
        if valid_bytes is not None and valid_bytes < size:
            # Keep the torn tail's bytes beside the log before cutting it off.
            torn = path.with_name(path.name + ".torn")
            with open(path, "rb") as f:
                f.seek(valid_bytes)
                torn.write_bytes(f.read())
            os.ftruncate(self._fd, valid_bytes)
            log.warning("%s: torn tail moved to %s", path, torn)
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
            os.ftruncate(self._fd, self.size)
            os.lseek(self._fd, self.size, os.SEEK_SET)
            raise
        self.size += len(record)
        self.dirty = True

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
