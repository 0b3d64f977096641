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

import threading
import weakref
from pathlib import Path

import numpy as np

from maqbool_ros.core.database import persistence as pers
from maqbool_ros.core.database import validate
from maqbool_ros.core.database.locking import locked
from maqbool_ros.core.database.map_ids import encode_map_id
from maqbool_ros.core.database.recovery import RecoveryReport
from maqbool_ros.core.database.rows import RowStore
from maqbool_ros.core.database.runs import RunIndex, RunSearch
from maqbool_ros.core.database.search import SearchIndex
from maqbool_ros.core.types import Candidates


class KeyframeDatabase(RunSearch):
    """In-memory keyframe database; `open()` makes it persistent (append log + snapshots)."""

    def __init__(self, dim: int, index_type: str = "flat", device: str = "auto", *,
                 _restored: pers.Restored | None = None):
        if int(dim) <= 0:
            raise ValueError(f"dim: must be positive, got {dim}")
        self.dim = int(dim)
        self.index_type = index_type
        self.device = device
        self._lock = threading.RLock()
        self._search = SearchIndex(self.dim, index_type, device)
        self._rows = RowStore(self.dim)
        self._files: pers.DatabaseFiles | None = None
        self._flush_interval_s = 0.0
        self._runs = RunIndex()  # sequence matching's view of the rows (database/runs.py)
        #: What reading the log had to give up (torn tail, skipped records); empty when clean.
        self.recovery_report = RecoveryReport()
        if _restored is not None:  # from open()/load(): adopt what persistence read
            self._rows, self.recovery_report = _restored.rows, _restored.report
            self._search.build(self._rows.descriptors, _restored.hnsw_blob, _restored.blob_rows)
            self._adopt(_restored.files)

    def _adopt(self, files: pers.DatabaseFiles | None) -> None:
        self._files = files
        if files is not None:
            self._flush_interval_s = files.flush_interval_s
            files.flush_later = weakref.WeakMethod(self.flush)  # deferred fsyncs take our lock

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path, dim: int | None = None, index_type: str = "flat", device: str = "auto",
             create: bool = True, load: bool = True, flush_interval_s: float = 0.0,
             verify: bool = True) -> KeyframeDatabase:
        """Open-or-create a persistent database in directory `path` (docs/keyframe-database.md).

        Every add/remove is appended to the log (a killed process loses nothing added) and
        fsynced at most `flush_interval_s` apart (0: every add). load=False moves an existing
        database aside to `<path>.prev-<UTC time>`. Log records that cannot be applied and a
        torn log tail are skipped, kept beside the log and counted in `recovery_report`.
        """
        restored = pers.open_directory(Path(path), dim, index_type, create, load, flush_interval_s, verify)
        try:
            return cls(restored.dim, restored.index_type, device, _restored=restored)
        except BaseException:
            restored.files.close()
            raise

    @classmethod
    def load(cls, path, device: str = "auto", index_type: str | None = None,
             verify: bool = True) -> KeyframeDatabase:
        """Read snapshot + log into an in-memory database (files are not modified)."""
        restored = pers.read_directory(Path(path), index_type, verify)
        return cls(restored.dim, restored.index_type, device, _restored=restored)

    # --- queries about the content ------------------------------------------------------
    @property
    def scan_fallbacks(self) -> int:
        """Exact queries the fp16 scan could not settle (near-ties; redone in fp32)."""
        return self._search.scan_fallbacks

    def __len__(self) -> int:
        """Number of live keyframes. Lock-free (one atomic read), so a node's stats never
        wait for a snapshot being written."""
        return len(self._rows)

    @property
    def num_rows(self) -> int:
        """Rows including removed ones not yet compacted away."""
        return self._rows.num_rows

    @property
    @locked
    def robots(self) -> list[str]:
        """Robot ids seen so far, in order of first appearance."""
        return self._rows.robots

    def robot_counts(self) -> dict[str, int]:
        """Live keyframes per robot id (lock-free like len(), for the node's stats)."""
        return self._rows.robot_counts()

    def outage_report(self) -> dict:
        """Writes waiting for an unreachable server and outage counters: none for a local map."""
        return {}

    @locked
    def extras_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Per extras key: (row shape, dtype)."""
        return self._rows.extras_spec()

    @locked
    def bytes_per_keyframe(self) -> int:
        """Bytes one keyframe takes: fp32 descriptor, ids/stamp/robot/sequence/alive, the
        search structure (fp16 scan copy, or HNSW's vector copy + level-0 links) and the
        region cache (memory-mapped from the snapshot after a load or save)."""
        return self.dim * 4 + 8 + 4 + 8 + 8 + 1 + self._search.bytes_per_row() + self._rows.extras_bytes_per_row()

    @locked
    def keyframes(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rows, keyframe_ids, robot_ids) of all live keyframes, in row order."""
        rows = self._rows.live_rows()
        return rows, self._rows.column("keyframe_ids")[rows].copy(), self._rows.robot_names(rows)

    @locked
    def row_of(self, keyframe_id: int, robot_id: str) -> int | None:
        """Row of a live keyframe, or None."""
        return self._rows.row_of(keyframe_id, robot_id)

    @locked
    def descriptors(self, rows: np.ndarray) -> np.ndarray:
        """Stored (unit, fp32) descriptors of rows."""
        return self._rows.descriptors[np.asarray(rows, dtype=np.int64)]

    @locked
    def get_extras(self, rows) -> dict[str, np.ndarray]:
        """Region-cache arrays stacked over rows (zeros for keyframes stored without a key)."""
        return self._rows.take_extras(rows)

    # --- add / remove -------------------------------------------------------------------
    @locked
    def add(self, keyframe_id: int, robot_id: str, stamp: float, descriptor,
            extras: dict[str, np.ndarray] | None = None) -> int:
        """Insert one keyframe (descriptor is L2-normalised here); returns its row.

        Every field is checked before anything is written (validate.py; duplicates, ids
        outside int64, bad stamps, robot ids, descriptors, extras): ValueError naming the
        field. The insert is all-or-nothing in memory and in the log.
        """
        row = self._rows.validate(keyframe_id, robot_id, stamp, descriptor, extras)
        logged = self._files is not None and self._files.log is not None
        record = pers.add_record(row) if logged else None
        mark, size = self._rows.mark(), None
        try:
            if record is not None:  # write-ahead: a failing disk leaves memory unchanged
                size = self._files.append(record)
            at = self._rows.append(row)
            self._search.add(row.descriptor)
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
        if not self._search.holds(self._rows.num_rows):
            self._search.build(self._rows.descriptors)

    @locked
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

    @locked
    def compact(self) -> None:
        """Drop removed rows (rows are renumbered; extras stay aligned). A persistent
        database compacts by writing a snapshot, which streams the region cache."""
        if self._files is not None:
            self.save()
        elif len(self) != self.num_rows:
            self._rows = self._rows.compacted()
            self._search.build(self._rows.descriptors)

    @locked
    def reset(self) -> None:
        """Forget every keyframe. A persistent database is moved aside to
        `<path>.prev-<UTC time>` (never deleted) and restarts empty at its path."""
        fresh = RowStore(self.dim)
        if self._files is not None:  # a failed move raises with nothing changed
            self._adopt(self._files.restart(fresh, self.index_type, self._search.hnsw_blob(fresh.descriptors, False)))
        self._rows = fresh
        self._search.build(fresh.descriptors)
        self.recovery_report = RecoveryReport()

    # --- persistence --------------------------------------------------------------------
    @locked
    def save(self, path=None) -> None:
        """Write a compacted snapshot atomically; on the database's own path it also
        starts a new, empty log (the old generation is deleted only after the commit)."""
        root = Path(path) if path is not None else (self._files.root if self._files is not None else None)
        if root is None:
            raise ValueError("path: this database has no directory; pass one to save()")
        if self._files is not None and root.resolve() == self._files.root.resolve():
            state = self._files.save(self._rows, self.index_type, self._hnsw_blob())
            self._rows = state.rows  # compacted, region cache memory-mapped from the new files
            self._search.build(self._rows.descriptors, state.hnsw_blob, state.rows.num_rows)
        else:
            pers.save_copy(root, self._rows, self.index_type, self._hnsw_blob())

    def _hnsw_blob(self) -> bytes | None:
        return self._search.hnsw_blob(self._rows.descriptors[self._rows.live_rows()], len(self) == self.num_rows)

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
            return self._files.log_bytes if self._files is not None else 0

    @locked
    def flush(self) -> None:
        """fsync the log: keyframes added so far survive an OS crash or power loss."""
        if self._files is not None:
            self._files.flush()

    @locked
    def close(self) -> None:
        """Flush and close the log and release the directory (the database stays usable
        in memory; a later save() to its path makes it the writer again)."""
        if self._files is not None:
            self._files.close()

    def __enter__(self) -> KeyframeDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- search -------------------------------------------------------------------------
    @locked
    def admissible(self, robot_id: str | None = None, stamp: float | None = None,
                   exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
                   robot_filter: str = "all", map_id: str = "", map_filter: str = "all") -> np.ndarray:
        """Boolean mask over rows of keyframes a query may return (the exclusion rules).

        Same-robot keyframes among that robot's last N added, or with |stamp - query
        stamp| < T, are excluded (the robot is still there, not back); robot_filter
        inter_robot keeps other robots only, intra_robot the same robot only; map_filter
        inter_map keeps other maps than map_id only, intra_map map_id only.
        """
        ok = self._rows.admissible(robot_id, stamp, exclude_recent_keyframes, exclude_recent_seconds,
                                   robot_filter)
        code = self._runs_synced().map_code(encode_map_id(map_id).tobytes())
        maps = self._runs.map_mask(code, map_filter)
        return ok if maps is None else ok & maps

    def _runs_synced(self) -> RunIndex:
        self._runs.sync(self._rows)
        return self._runs

    @locked
    def search(self, query, k: int, *, robot_id: str | None = None, stamp: float | None = None,
               exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
               robot_filter: str = "all", max_distance: float = 4.0, map_id: str = "",
               map_filter: str = "all") -> Candidates:
        """The k nearest admissible keyframes (fewer if fewer exist or pass max_distance)."""
        if int(k) < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        try:
            q = validate.unit_descriptor(query, self.dim)
        except ValueError as e:
            raise ValueError(f"query: {e}") from None
        ok = self.admissible(robot_id, stamp, exclude_recent_keyframes, exclude_recent_seconds, robot_filter,
                             map_id, map_filter)
        k = min(int(k), int(ok.sum()))
        rows, dist = (np.zeros(0, np.int64), np.zeros(0, np.float32)) if k == 0 else \
            self._search.nearest(self._rows.descriptors, q, k, ok)
        keep = dist <= max_distance
        return self._candidates(rows[keep], dist[keep])

    def _candidates(self, rows: np.ndarray, distances: np.ndarray) -> Candidates:
        return Candidates(rows=rows, keyframe_ids=self._rows.column("keyframe_ids")[rows].copy(),
                          robot_ids=self._rows.robot_names(rows), stamps=self._rows.column("stamps")[rows].copy(),
                          distances=np.asarray(distances, np.float32))

    @locked
    def search_with_extras(self, query, k: int, **rules) -> tuple[Candidates, dict[str, np.ndarray]]:
        """search() and the candidates' region cache in one step: no compaction (which
        renumbers rows) can come between them."""
        cands = self.search(query, k, **rules)
        return cands, (self._rows.take_extras(cands.rows) if len(cands) else {})
