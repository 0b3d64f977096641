"""Disk side of the keyframe database: one directory's snapshot, append log and writer lock.

KeyframeDatabase composes a RowStore (the rows), a search index and, when persistent,
a DatabaseFiles (here). This module reads and writes the rows only through RowStore's
public methods, and holds no lock of its own: the database calls it under its lock.
The on-disk format is storage.py (snapshot, manifest, flock) and log.py (records).
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from maqbool_ros.core.database import log as db_log
from maqbool_ros.core.database import storage as st
from maqbool_ros.core.database import validate
from maqbool_ros.core.database.recovery import MAX_REASONS, RecoveryReport
from maqbool_ros.core.database.rows import NewRow, RowStore

HNSW_FILE = "hnsw.faissindex"
log = logging.getLogger(__name__)


# --- reading ------------------------------------------------------------------------
@dataclass
class DiskState:
    """A directory's current generation: snapshot rows, HNSW graph bytes, log contents."""

    manifest: dict[str, Any]
    rows: RowStore
    hnsw_blob: bytes | None
    log: db_log.LogContents
    log_path: Path


def read_state(root: Path, verify: bool = True) -> DiskState:
    """Read and check the snapshot and parse the log (nothing is applied or written)."""
    snap = st.read_snapshot(root, verify=verify)
    m = snap.manifest
    try:
        rows = RowStore.from_columns(int(m["dim"]), m["robots"], m["next_seq"], snap.columns, snap.extras)
    except (ValueError, KeyError, TypeError) as e:
        raise st.DatabaseFormatError(f"{root / m['snapshot']}: inconsistent snapshot ({e}); "
                                     "the database was left untouched") from e
    blob = root / m["snapshot"] / HNSW_FILE
    return DiskState(m, rows, blob.read_bytes() if blob.is_file() else None,
                     db_log.read_log(root / m["log"]), root / m["log"])


def replay(rows: RowStore, contents: db_log.LogContents, source: Path) -> list[tuple[int, str]]:
    """Apply the log's records to rows in order. A record that cannot be applied (a field
    out of range, a duplicate add, an unknown operation...) is skipped, logged and
    returned as (record index, reason); the others still apply."""
    skipped = []
    for i, (header, arrays) in enumerate(contents.records):
        try:
            apply_record(rows, header, arrays)
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            reason = f"record {i} at byte {contents.spans[i][0]}: {type(e).__name__}: {e}"
            log.warning("%s: skipped %s", source, reason)
            skipped.append((i, reason))
    return skipped


def apply_record(rows: RowStore, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Apply one log record (all-or-nothing, like a live add/remove)."""
    op = header.get("op")
    if op == "add":
        if "descriptor" not in arrays:
            raise ValueError("add record without a descriptor")
        ex = {k[2:]: v for k, v in arrays.items() if k.startswith("x.")}
        rows.append(rows.validate(header["kf"], header["robot"], header["stamp"], arrays["descriptor"], ex,
                                  stored=True))
    elif op == "remove":
        robot = header["robot"]
        robot = None if robot is None else validate.robot_id(robot)
        rows.kill(rows.match_rows(validate.keyframe_ids(header["ids"]), robot))
    else:
        raise ValueError(f"unknown operation {op!r} {header.get('error', '')}".rstrip())


def add_record(row: NewRow) -> bytes:
    """The log record of an add (encoded before anything is written: too large raises)."""
    return db_log.encode_record({"op": "add", "kf": row.keyframe_id, "robot": row.robot_id, "stamp": row.stamp},
                                {"descriptor": row.descriptor, **{f"x.{k}": v for k, v in row.extras.items()}})


def remove_record(ids: np.ndarray, robot_id: str | None) -> bytes:
    return db_log.encode_record({"op": "remove", "robot": robot_id, "ids": ids.tolist()}, {})


def recovery_report(state: DiskState, skipped: list[tuple[int, str]], torn_copy: Path | None = None,
                    skipped_copy: Path | None = None) -> RecoveryReport:
    return RecoveryReport(torn_records=state.log.torn_records, torn_bytes=state.log.torn_bytes,
                          torn_copy=torn_copy, skipped_records=len(skipped),
                          skipped_reasons=tuple(r for _, r in skipped[:MAX_REASONS]), skipped_copy=skipped_copy)


# --- writing ------------------------------------------------------------------------
def write_generation(root: Path, generation: int, rows: RowStore, index_type: str, hnsw_blob: bytes | None) -> None:
    """Write the live rows as snapshot `generation` and commit it (storage.write_snapshot)."""
    keep = rows.live_rows()
    n = len(keep)
    columns = {"descriptors": rows.descriptors[keep], **{c: rows.column(c)[keep] for c in st.COLUMNS[1:]}}
    spec = rows.extras_spec()
    extras = {k: ((n, *shape), dtype, lambda out, k=k: rows.fill_extras(k, out, keep))
              for k, (shape, dtype) in spec.items()}
    manifest = {"dim": rows.dim, "index_type": index_type, "num_keyframes": n, "robots": rows.robots,
                "next_seq": rows.next_seq,
                "extras": {k: {"dtype": dt.str, "shape": list(shape)} for k, (shape, dt) in spec.items()},
                "saved_utc": datetime.now(timezone.utc).isoformat()}
    st.write_snapshot(root, generation, manifest, columns, extras, {HNSW_FILE: hnsw_blob} if hnsw_blob else {})


def save_copy(root: Path, rows: RowStore, index_type: str, hnsw_blob: bytes | None) -> None:
    """Save into a directory that is not the database's own (a new one, or a database no
    writer holds: it becomes that database's next generation)."""
    generation = 0
    if (root / st.MANIFEST).exists():
        generation = int(st.read_manifest(root)["generation"]) + 1  # raises if corrupt
    else:
        st.check_empty(root)
    root.mkdir(parents=True, exist_ok=True)
    with st.lock_directory(root):  # not into a database another writer has open
        write_generation(root, generation, rows, index_type, hnsw_blob)


def move_aside(root: Path, locked: bool = False) -> Path:
    """Rename a database directory to `<path>.prev-<UTC time>` (never deleted). locked: the
    caller holds its writer lock; else it is taken (never move one another writer has open)."""
    aside = root.with_name(f"{root.name}.prev-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
    if locked:
        shutil.move(str(root), aside)
    else:
        with st.lock_directory(root):
            shutil.move(str(root), aside)
    log.warning("%s: previous database moved to %s", root, aside)
    return aside


class DatabaseFiles:
    """An open database directory: writer lock (flock), generation, log writer, fsync timing."""

    def __init__(self, root: Path, generation: int, dir_lock, flush_interval_s: float,
                 flush_later: Callable[[], Callable[[], None] | None]):
        self.root, self.generation, self.flush_interval_s = root, int(generation), float(flush_interval_s)
        self._dir_lock = dir_lock
        self.log: db_log.LogWriter | None = db_log.LogWriter(st.log_path(root, self.generation))
        self._flush_later = flush_later  # a weak method: a pending timer must not keep the database alive
        self._last_flush = time.monotonic()
        self._timer: threading.Timer | None = None

    @classmethod
    def create(cls, root: Path, rows: RowStore, index_type: str, hnsw_blob: bytes | None, flush_interval_s: float,
               flush_later) -> "DatabaseFiles":
        """A new database directory holding `rows` as generation 1."""
        st.check_empty(root)
        root.mkdir(parents=True, exist_ok=True)
        lock = st.lock_directory(root)
        try:
            write_generation(root, 1, rows, index_type, hnsw_blob)
        except BaseException:
            lock.close()
            raise
        return cls(root, 1, lock, flush_interval_s, flush_later)

    @classmethod
    def attach(cls, state: DiskState, skipped: list[tuple[int, str]], dir_lock, flush_interval_s: float,
               flush_later) -> tuple["DatabaseFiles", RecoveryReport]:
        """Become the writer of a directory just read: keep the torn tail and the skipped
        records beside the log (never deleted by the database), cut the tail off."""
        path = state.log_path
        skipped_copy = None
        if skipped:
            data = path.read_bytes()
            spans = [state.log.spans[i] for i, _ in skipped]
            skipped_copy = db_log.keep_copy(path, "skipped", st.LOG_MAGIC + b"".join(data[a:b] for a, b in spans))
            log.warning("%s: %d record(s) that could not be applied kept in %s", path, len(skipped), skipped_copy)
        torn_copy = db_log.cut_torn_tail(path, state.log.valid_bytes)
        files = cls(path.parent, int(state.manifest["generation"]), dir_lock, flush_interval_s, flush_later)
        return files, recovery_report(state, skipped, torn_copy, skipped_copy)

    def append(self, record: bytes) -> int | None:
        """Append a record (None after close(): memory only); returns the log size before it."""
        if self.log is None:
            return None
        size = self.log.size
        self.log.append(record)
        return size

    def rollback(self, size: int | None) -> None:
        """Cut the log back to `size` (an insert that failed after its record was written)."""
        if size is not None and self.log is not None:
            self.log.truncate(size)

    def after_append(self) -> None:
        """fsync now if flush_interval_s has elapsed, else arm a one-shot timer."""
        wait = self._last_flush + self.flush_interval_s - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self._timer is None or not self._timer.is_alive():
            # The last keyframes before a pause must not wait for the next add to be fsynced.
            self._timer = threading.Timer(wait, _timed_flush, args=(self._flush_later,))
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()
        self._last_flush = time.monotonic()

    def save(self, rows: RowStore, index_type: str, hnsw_blob: bytes | None) -> DiskState:
        """Write the next generation (the previous one stays complete until the commit),
        start its empty log; returns the new state (extras memory-mapped) to install."""
        if self._dir_lock is None:  # saving again after close(): writer once more
            self._dir_lock = st.lock_directory(self.root)
        self.flush()  # if this save crashes, the old generation + its log stay complete
        write_generation(self.root, self.generation + 1, rows, index_type, hnsw_blob)
        self.generation += 1
        if self.log is not None:
            self.log.close()
        self.log = db_log.LogWriter(st.log_path(self.root, self.generation))
        state = read_state(self.root, verify=False)
        self._last_flush = time.monotonic()
        return state

    def close_log(self) -> None:
        """Flush and close the log; the writer lock stays held."""
        if self._timer is not None:
            self._timer.cancel()
        if self.log is not None:
            self.log.close()
            self.log = None

    def close(self) -> None:
        """Flush and close the log and release the writer lock."""
        self.close_log()
        if self._dir_lock is not None:
            self._dir_lock.close()  # releases the flock
            self._dir_lock = None

    @property
    def holds_lock(self) -> bool:
        return self._dir_lock is not None


def _timed_flush(flush_later) -> None:
    flush = flush_later()
    if flush is None:  # the database was dropped meanwhile
        return
    try:
        flush()  # KeyframeDatabase.flush: takes the database's lock
    except OSError as e:
        log.warning("deferred log fsync failed: %s", e)
