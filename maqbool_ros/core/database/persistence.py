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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.database import log as db_log
from maqbool_ros.core.database import storage as st
from maqbool_ros.core.database.index import INDEX_TYPES, VectorIndex
from maqbool_ros.core.database.recovery import RecoveryReport, make_report, replay
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


@dataclass
class Restored:
    """A database read back (or created) for KeyframeDatabase to adopt: its rows, the
    stored HNSW graph of the first blob_rows rows, the recovery report and, when opened
    for writing, the open directory."""

    dim: int
    index_type: str
    rows: RowStore
    hnsw_blob: bytes | None
    blob_rows: int
    report: RecoveryReport
    files: DatabaseFiles | None = None


def open_directory(root: Path, dim: int | None, index_type: str, create: bool, load: bool,
                   flush_interval_s: float, verify: bool) -> Restored:
    """KeyframeDatabase.open's work: create, move aside (load=False) or read + lock + replay."""
    if flush_interval_s < 0:
        raise ValueError("flush_interval_s: must be >= 0")
    if index_type not in INDEX_TYPES:  # before anything is written
        raise ValueError(f"index_type: {index_type!r} is not one of {list(INDEX_TYPES)}")
    if not (root / st.MANIFEST).exists():
        if not create:
            raise FileNotFoundError(f"{root}: no keyframe database (and create=False)")
        if dim is None:
            raise ValueError("dim: needed to create a new database")
        rows = RowStore(int(dim))
        blob = VectorIndex(rows.dim, "hnsw", "cpu").serialize() if index_type == "hnsw" else None
        files = DatabaseFiles.create(root, rows, index_type, blob, flush_interval_s)
        return Restored(rows.dim, index_type, rows, None, 0, RecoveryReport(), files)
    if not load:
        move_aside(root)
        return open_directory(root, dim, index_type, create, True, flush_interval_s, verify)
    found = int(st.read_manifest(root)["dim"])
    if dim is not None and int(dim) != found:
        raise ValueError(f"{root / st.MANIFEST}: database is {found}-D, {dim}-D requested")
    lock = st.lock_directory(root)
    try:
        return read_directory(root, index_type, verify, lock, flush_interval_s)
    except BaseException:
        lock.close()
        raise


def read_directory(root: Path, index_type: str | None, verify: bool, lock=None,
                   flush_interval_s: float = 0.0) -> Restored:
    """Snapshot + replayed log. With a held writer lock the directory is attached for
    writing (torn tail and skipped records kept beside the log); without, nothing is written."""
    state = read_state(root, verify)
    in_snapshot = state.rows.num_rows
    skipped = replay(state.rows, state.log, state.log_path)
    restored = Restored(int(state.manifest["dim"]), index_type or state.manifest["index_type"], state.rows,
                        state.hnsw_blob, in_snapshot, make_report(state.log, skipped))
    if lock is not None:
        restored.files, restored.report = DatabaseFiles.attach(state, skipped, lock, flush_interval_s)
    return restored


def add_record(row: NewRow) -> bytes:
    """The log record of an add (encoded before anything is written: too large raises)."""
    return db_log.encode_record({"op": "add", "kf": row.keyframe_id, "robot": row.robot_id, "stamp": row.stamp},
                                {"descriptor": row.descriptor, **{f"x.{k}": v for k, v in row.extras.items()}})


def remove_record(ids: np.ndarray, robot_id: str | None) -> bytes:
    return db_log.encode_record({"op": "remove", "robot": robot_id, "ids": ids.tolist()}, {})


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

    def __init__(self, root: Path, generation: int, dir_lock, flush_interval_s: float):
        self.root, self.generation, self.flush_interval_s = root, int(generation), float(flush_interval_s)
        self._dir_lock = dir_lock
        self.log: db_log.LogWriter | None = db_log.LogWriter(st.log_path(root, self.generation))
        #: What the deferred-fsync timer calls: the owner sets a weak method (a pending timer
        #: must not keep a dropped database alive) that flushes under the owner's lock.
        self.flush_later: Callable[[], Callable[[], None] | None] = lambda: None
        self._last_flush = time.monotonic()
        self._timer: threading.Timer | None = None

    @classmethod
    def create(cls, root: Path, rows: RowStore, index_type: str, hnsw_blob: bytes | None,
               flush_interval_s: float) -> DatabaseFiles:
        """A new database directory holding `rows` as generation 1."""
        st.check_empty(root)
        root.mkdir(parents=True, exist_ok=True)
        lock = st.lock_directory(root)
        try:
            write_generation(root, 1, rows, index_type, hnsw_blob)
        except BaseException:
            lock.close()
            raise
        return cls(root, 1, lock, flush_interval_s)

    @classmethod
    def attach(cls, state: DiskState, skipped: list[tuple[int, str]], dir_lock,
               flush_interval_s: float) -> tuple[DatabaseFiles, RecoveryReport]:
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
        files = cls(path.parent, int(state.manifest["generation"]), dir_lock, flush_interval_s)
        return files, make_report(state.log, skipped, torn_copy, skipped_copy)

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
            self._timer = threading.Timer(wait, _timed_flush, args=(self.flush_later,))
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

    def restart(self, rows: RowStore, index_type: str, hnsw_blob: bytes | None) -> DatabaseFiles:
        """Move this directory aside (never deleted; its log and lock go with it) and create
        a new database of `rows` at the same path; this object is closed."""
        self.flush()
        move_aside(self.root, locked=self.holds_lock)
        self.close()
        return DatabaseFiles.create(self.root, rows, index_type, hnsw_blob, self.flush_interval_s)

    @property
    def log_bytes(self) -> int:
        return self.log.size if self.log is not None else 0

    def close(self) -> None:
        """Flush and close the log and release the writer lock."""
        if self._timer is not None:
            self._timer.cancel()
        if self.log is not None:
            self.log.close()
            self.log = None
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
