"""Keyframe database: global descriptors + ids + per-keyframe region cache, searched
with per-query exclusion rules, optionally persisted crash-safely.

A keyframe is identified by (robot_id, keyframe_id). KeyframeDatabase composes a
RowStore (rows.py: the columns, all-or-nothing appends), a search index (index.py) and,
when persistent, a DatabaseFiles (persistence.py: snapshot + append log). It owns one
re-entrant lock taken by every public method, the deferred log fsync included, so
callers (the node's two workers, its services) need no lock of their own.
Distances are squared L2 between unit vectors (2 - 2 cos), ascending.
"""
from __future__ import annotations

import functools
import threading
import weakref
from pathlib import Path

import numpy as np

from maqbool_ros.core.database import persistence as pers
from maqbool_ros.core.database import storage as st
from maqbool_ros.core.database import validate
from maqbool_ros.core.database.index import HalfScan, VectorIndex, exact_top_k
from maqbool_ros.core.database.recovery import RecoveryReport
from maqbool_ros.core.database.rows import ROBOT_FILTERS, RowStore
from maqbool_ros.core.types import Candidates

__all__ = ["KeyframeDatabase", "ROBOT_FILTERS"]


def _locked(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return run


class KeyframeDatabase:
    """In-memory keyframe database; `open()` makes it persistent (append log + snapshots)."""

    def __init__(self, dim: int, index_type: str = "flat", device: str = "auto"):
        if int(dim) <= 0:
            raise ValueError(f"dim: must be positive, got {dim}")
        self.dim = int(dim)
        self.index_type = index_type
        self.device = device
        self._lock = threading.RLock()
        self._index = VectorIndex(self.dim, index_type, device)
        # CPU flat: fp16 scan copy (half the bytes to stream per query; see index.py).
        self._scan = HalfScan(self.dim) if not self._index.uses_faiss else None
        self.scan_fallbacks = 0
        self._rows = RowStore(self.dim)
        self._files: pers.DatabaseFiles | None = None
        self._flush_interval_s = 0.0
        #: What reading the log had to give up (torn tail, skipped records); empty when clean.
        self.recovery_report = RecoveryReport()

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path, dim: int | None = None, index_type: str = "flat", device: str = "auto",
             create: bool = True, load: bool = True, flush_interval_s: float = 0.0,
             verify: bool = True) -> "KeyframeDatabase":
        """Open-or-create a persistent database in directory `path`.

        Every add/remove is appended to the log (one write: a killed process loses
        nothing already added) and fsynced at most `flush_interval_s` apart (0: on every
        add), so an OS crash loses at most the keyframes since the last flush.
        load=False starts empty and moves an existing database aside to
        `<path>.prev-<UTC time>` instead of overwriting it. Log records that cannot be
        applied and a torn log tail are skipped, kept beside the log and counted in
        `recovery_report`.
        """
        root = Path(path)
        if flush_interval_s < 0:
            raise ValueError("flush_interval_s: must be >= 0")
        if not (root / st.MANIFEST).exists():
            if not create:
                raise FileNotFoundError(f"{root}: no keyframe database (and create=False)")
            if dim is None:
                raise ValueError("dim: needed to create a new database")
            db = cls(dim, index_type, device)
            db._files = pers.DatabaseFiles.create(root, db._rows, index_type, db._hnsw_blob(),
                                                  flush_interval_s, weakref.WeakMethod(db.flush))
        elif not load:
            pers.move_aside(root)
            return cls.open(root, dim, index_type, device, create, True, flush_interval_s, verify)
        else:
            found = int(st.read_manifest(root)["dim"])
            if dim is not None and int(dim) != found:
                raise ValueError(f"{root / st.MANIFEST}: database is {found}-D, {dim}-D requested")
            lock = st.lock_directory(root)
            try:
                db = cls._from_disk(root, device, index_type, verify, lock, flush_interval_s)
            except BaseException:
                lock.close()
                raise
        db._flush_interval_s = float(flush_interval_s)
        return db

    @classmethod
    def load(cls, path, device: str = "auto", index_type: str | None = None,
             verify: bool = True) -> "KeyframeDatabase":
        """Read snapshot + log into an in-memory database (files are not modified)."""
        return cls._from_disk(Path(path), device, index_type, verify, None, 0.0)

    @classmethod
    def _from_disk(cls, root: Path, device: str, index_type: str | None, verify: bool, lock,
                   flush_interval_s: float) -> "KeyframeDatabase":
        state = pers.read_state(root, verify)
        db = cls(int(state.manifest["dim"]), index_type or state.manifest["index_type"], device)
        in_snapshot = state.rows.num_rows
        skipped = pers.replay(state.rows, state.log, state.log_path)
        db._rows = state.rows
        db._build_index(state.hnsw_blob, in_snapshot)
        if lock is None:
            db.recovery_report = pers.recovery_report(state, skipped)
        else:
            db._files, db.recovery_report = pers.DatabaseFiles.attach(
                state, skipped, lock, flush_interval_s, weakref.WeakMethod(db.flush))
        return db

    # --- queries about the content ------------------------------------------------------
    @_locked
    def __len__(self) -> int:
        """Number of live keyframes."""
        return len(self._rows)

    @property
    def num_rows(self) -> int:
        """Rows including removed ones not yet compacted away."""
        return self._rows.num_rows

    @property
    def robots(self) -> list[str]:
        """Robot ids seen so far, in order of first appearance."""
        return self._rows.robots

    @_locked
    def extras_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Per extras key: (row shape, dtype)."""
        return self._rows.extras_spec()

    @_locked
    def bytes_per_keyframe(self) -> int:
        """Bytes one keyframe takes: fp32 descriptor, ids/stamp/robot/sequence/alive, the
        search structure (fp16 scan copy, or HNSW's vector copy + level-0 links) and the
        region cache (memory-mapped from the snapshot after a load or save)."""
        fixed = self.dim * 4 + 8 + 4 + 8 + 8 + 1
        fixed += self.dim * 2 if self._scan is not None else 0
        fixed += self.dim * 4 + 2 * self._index.hnsw_m * 4 if self.index_type == "hnsw" else 0
        return fixed + self._rows.extras_bytes_per_row()

    @_locked
    def keyframes(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rows, keyframe_ids, robot_ids) of all live keyframes, in row order."""
        rows = self._rows.live_rows()
        return rows, self._rows.column("keyframe_ids")[rows].copy(), self._rows.robot_names(rows)

    @_locked
    def row_of(self, keyframe_id: int, robot_id: str) -> int | None:
        """Row of a live keyframe, or None."""
        return self._rows.row_of(keyframe_id, robot_id)

    @_locked
    def descriptors(self, rows: np.ndarray) -> np.ndarray:
        """Stored (unit, fp32) descriptors of rows."""
        return self._rows.descriptors[np.asarray(rows, dtype=np.int64)]

    @_locked
    def get_extras(self, rows) -> dict[str, np.ndarray]:
        """Region-cache arrays stacked over rows (zeros for keyframes stored without a key)."""
        return self._rows.take_extras(rows)

    # --- add / remove -------------------------------------------------------------------
    @_locked
    def add(self, keyframe_id: int, robot_id: str, stamp: float, descriptor,
            extras: dict[str, np.ndarray] | None = None) -> int:
        """Insert one keyframe (descriptor is L2-normalised here); returns its row.

        Every field is checked before anything is written (validate.py): a duplicate
        (robot_id, keyframe_id), an id outside int64, a non-finite stamp, an empty or
        over-long robot id, a descriptor of the wrong shape or with NaN/inf, or extras
        whose shape/dtype differ from the stored key's raise ValueError naming the field.
        The insert is all-or-nothing in memory and in the log.
        """
        row = self._rows.validate(keyframe_id, robot_id, stamp, descriptor, extras)
        logged = self._files is not None and self._files.log is not None
        record = pers.add_record(row) if logged else None
        mark, size = self._rows.mark(), None
        try:
            if record is not None:  # write-ahead: a failing disk leaves memory unchanged
                size = self._files.append(record)
            at = self._rows.append(row)
            self._index.add(row.descriptor[None])
            if self._scan is not None:
                self._scan.add(row.descriptor)
            if record is not None:
                self._files.after_append()
            return at
        except BaseException:
            self._undo(mark, size)
            raise

    def _undo(self, mark, size: int | None) -> None:
        if self._files is not None:
            self._files.rollback(size)
        self._rows.rollback(mark)
        searchable = self._rows.num_rows
        if (self._index.uses_faiss and len(self._index) != searchable) or (
                self._scan is not None and len(self._scan) != searchable):
            self._build_index()

    @_locked
    def remove(self, keyframe_ids, robot_id: str | None = None) -> int:
        """Forget keyframes (of robot_id, or of any robot when None); returns how many.

        Unknown ids are ignored (a SLAM back end may prune keyframes never sent here);
        ids outside int64 raise ValueError.
        """
        ids = validate.keyframe_ids(keyframe_ids)
        robot = None if robot_id is None else str(robot_id)
        rows = self._rows.match_rows(ids, robot)
        if len(rows) == 0:
            return 0
        if self._files is not None and self._files.log is not None:
            size = self._files.append(pers.remove_record(ids, robot))
            try:
                self._files.after_append()
            except BaseException:
                self._files.rollback(size)
                raise
        self._rows.kill(rows)
        if self._files is None and self.num_rows - len(self) > max(1024, len(self)):
            self.compact()  # in memory only: persistent databases compact on save()
        return len(rows)

    @_locked
    def compact(self) -> None:
        """Drop removed rows (rows are renumbered; extras stay aligned). A persistent
        database compacts by writing a snapshot, which streams the region cache."""
        if self._files is not None:
            self.save()
        elif len(self) != self.num_rows:
            self._rows = self._rows.compacted()
            self._build_index()

    @_locked
    def reset(self) -> None:
        """Forget every keyframe. A persistent database is moved aside to
        `<path>.prev-<UTC time>` (never deleted) and restarts empty at its path."""
        old = self._files
        if old is not None:
            old.flush()
            pers.move_aside(old.root, locked=old.holds_lock)  # raises with nothing changed
            old.close()  # its log and lock now live in the moved directory
            self._files = None
        self._rows = RowStore(self.dim)
        self._build_index()
        self.recovery_report = RecoveryReport()
        if old is not None:
            self._files = pers.DatabaseFiles.create(old.root, self._rows, self.index_type, self._hnsw_blob(),
                                                    self._flush_interval_s, weakref.WeakMethod(self.flush))

    def _build_index(self, hnsw_blob: bytes | None = None, blob_rows: int = 0) -> None:
        """Index every row: a stored HNSW graph of the first blob_rows rows is reused and
        the rest added one by one (as they were live); else rebuilt from scratch."""
        desc = self._rows.descriptors
        if hnsw_blob is not None and self.index_type == "hnsw" and self._index.deserialize(hnsw_blob, blob_rows):
            for v in desc[blob_rows:]:
                self._index.add(v[None])
        else:
            self._index.rebuild(desc)
        if self._scan is not None:
            self._scan.rebuild(desc)

    # --- persistence --------------------------------------------------------------------
    @_locked
    def save(self, path=None) -> None:
        """Write a compacted snapshot atomically; on the database's own path it also
        starts a new, empty log (the old generation is deleted only after the commit)."""
        root = Path(path) if path is not None else (self._files.root if self._files is not None else None)
        if root is None:
            raise ValueError("path: this database has no directory; pass one to save()")
        if self._files is not None and root.resolve() == self._files.root.resolve():
            state = self._files.save(self._rows, self.index_type, self._hnsw_blob())
            self._rows = state.rows  # compacted, region cache memory-mapped from the new files
            self._build_index(state.hnsw_blob, state.rows.num_rows)
        else:
            pers.save_copy(root, self._rows, self.index_type, self._hnsw_blob())

    def _hnsw_blob(self) -> bytes | None:
        """The HNSW graph of the live rows, as saved beside the snapshot (saves a rebuild on load)."""
        if self.index_type != "hnsw":
            return None
        index = self._index
        if len(self) != self.num_rows:
            index = VectorIndex(self.dim, "hnsw", "cpu")
            index.add(self._rows.descriptors[self._rows.live_rows()])
        return index.serialize()

    @property
    def flush_interval_s(self) -> float:
        """Longest time between log fsyncs (0: every add)."""
        return self._flush_interval_s

    @flush_interval_s.setter
    def flush_interval_s(self, value: float) -> None:
        if float(value) < 0:
            raise ValueError("flush_interval_s: must be >= 0")
        with self._lock:
            self._flush_interval_s = float(value)
            if self._files is not None:
                self._files.flush_interval_s = float(value)

    @property
    def log_bytes(self) -> int:
        """Size of the append log since the last snapshot (a node may save() when large:
        the log's region caches stay in RAM until then, and load replays it)."""
        with self._lock:
            log = self._files.log if self._files is not None else None
            return log.size if log is not None else 0

    @_locked
    def flush(self) -> None:
        """fsync the log: keyframes added so far survive an OS crash or power loss."""
        if self._files is not None:
            self._files.flush()

    @_locked
    def close(self) -> None:
        """Flush and close the log and release the directory (the database stays usable
        in memory; a later save() to its path makes it the writer again)."""
        if self._files is not None:
            self._files.close()

    def __enter__(self) -> "KeyframeDatabase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- search -------------------------------------------------------------------------
    @_locked
    def admissible(self, robot_id: str | None = None, stamp: float | None = None,
                   exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
                   robot_filter: str = "all") -> np.ndarray:
        """Boolean mask over rows of keyframes a query may return (the exclusion rules).

        Same-robot keyframes among that robot's last N added, or with |stamp - query
        stamp| < T, are excluded (the robot is still there, not back); robot_filter
        inter_robot keeps other robots only, intra_robot the same robot only.
        """
        return self._rows.admissible(robot_id, stamp, exclude_recent_keyframes, exclude_recent_seconds,
                                     robot_filter)

    @_locked
    def search(self, query, k: int, *, robot_id: str | None = None, stamp: float | None = None,
               exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
               robot_filter: str = "all", max_distance: float = 4.0) -> Candidates:
        """The k nearest admissible keyframes (fewer if fewer exist or pass max_distance)."""
        if int(k) < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        try:
            q = validate.unit_descriptor(query, self.dim)
        except ValueError as e:
            raise ValueError(f"query: {e}") from None
        ok = self.admissible(robot_id, stamp, exclude_recent_keyframes, exclude_recent_seconds, robot_filter)
        n_ok = int(ok.sum())
        k = min(int(k), n_ok)
        if k == 0:
            return self._candidates(np.zeros(0, np.int64), np.zeros(0, np.float32))
        k_wide = k + (self.num_rows - n_ok)  # enough that k admissible rows survive the mask
        if self._index.uses_faiss and k_wide <= self._index.max_k and 4 * k_wide <= self.num_rows:
            rows, sims = self._index.search(q, k_wide)
            good = rows >= 0
            good[good] = ok[rows[good]]
            rows, sims = rows[good][:k], sims[good][:k]
        else:
            rows, sims, settled = exact_top_k(self._rows.descriptors, q, k, ok, self._scan)
            self.scan_fallbacks += int(not settled)
        dist = np.clip(2.0 - 2.0 * sims.astype(np.float32), 0.0, 4.0)
        order = np.lexsort((rows, dist))
        rows, dist = rows[order], dist[order]
        keep = dist <= max_distance
        return self._candidates(rows[keep], dist[keep])

    @_locked
    def search_with_extras(self, query, k: int, **rules) -> tuple[Candidates, dict[str, np.ndarray]]:
        """search() and the candidates' region cache in one step: no compaction (which
        renumbers rows) can come between them."""
        cands = self.search(query, k, **rules)
        return cands, (self._rows.take_extras(cands.rows) if len(cands) else {})

    def _candidates(self, rows: np.ndarray, dist: np.ndarray) -> Candidates:
        rows = rows.astype(np.int64)
        return Candidates(rows=rows, keyframe_ids=self._rows.column("keyframe_ids")[rows].copy(),
                          robot_ids=self._rows.robot_names(rows),
                          stamps=self._rows.column("stamps")[rows].copy(), distances=dist.astype(np.float32))
