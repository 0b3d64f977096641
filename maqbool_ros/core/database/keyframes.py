"""Keyframe database: global descriptors + ids + per-keyframe region cache, searched
with per-query exclusion rules, optionally persisted crash-safely (db_storage.py).

A keyframe is identified by (robot_id, keyframe_id). Each has a row; rows are
append-only until a compaction (remove() only marks rows dead). Distances are squared
L2 between unit vectors (2 - 2 cos), ascending.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from maqbool_ros.core.database import log as db_log
from maqbool_ros.core.database.columns import Column, Growable, check_extras
from maqbool_ros.core.database.index import HalfScan, VectorIndex, exact_top_k
from maqbool_ros.core.database.persistence import PersistenceMixin
from maqbool_ros.core.types import Candidates

ROBOT_FILTERS = ("all", "inter_robot", "intra_robot")


class KeyframeDatabase(PersistenceMixin):
    """In-memory keyframe database; `open()` makes it persistent (append log + snapshots)."""

    def __init__(self, dim: int, index_type: str = "flat", device: str = "auto"):
        if int(dim) <= 0:
            raise ValueError(f"dim: must be positive, got {dim}")
        self.dim = int(dim)
        self.index_type = index_type
        self.device = device
        self._index = VectorIndex(self.dim, index_type, device)
        # CPU flat: fp16 scan copy (half the bytes to stream per query; see db_index).
        self._scan = HalfScan(self.dim) if not self._index.uses_faiss else None
        self.scan_fallbacks = 0
        self._reset_rows()
        self._path: Path | None = None
        self._log: db_log.LogWriter | None = None
        self._generation = 0
        self.flush_interval_s = 0.0
        self._last_flush = time.monotonic()
        self._flush_timer = None  # fsyncs a pending log tail when no further add comes
        self._dir_lock = None  # flock on <path>/.lock while open() for writing

    def _reset_rows(self) -> None:
        self._desc = Growable((self.dim,), np.float32)
        self._kf = Growable((), np.int64)
        self._robot = Growable((), np.int32)
        self._stamp = Growable((), np.float64)
        self._seq = Growable((), np.int64)  # per-robot insertion counter ("last N keyframes")
        self._alive = Growable((), np.bool_)
        self._extras: dict[str, Column] = {}
        self._robots: list[str] = []
        self._robot_code: dict[str, int] = {}
        self._next_seq: list[int] = []
        self._rows: dict[tuple[int, int], int] = {}  # (robot code, keyframe id) -> row

    # --- queries about the content ------------------------------------------------
    def __len__(self) -> int:
        """Number of live keyframes."""
        return len(self._rows)

    @property
    def num_rows(self) -> int:
        """Rows including removed ones not yet compacted away."""
        return len(self._kf)

    @property
    def robots(self) -> list[str]:
        """Robot ids seen so far, in order of first appearance."""
        return list(self._robots)

    def bytes_per_keyframe(self) -> int:
        """Bytes one keyframe takes: fp32 descriptor, ids/stamp/robot/sequence/alive, the
        search structure (fp16 scan copy, or HNSW's vector copy + level-0 links) and the
        region cache (memory-mapped from the snapshot after a load or save)."""
        fixed = self.dim * 4 + 8 + 4 + 8 + 8 + 1
        fixed += self.dim * 2 if self._scan is not None else 0
        fixed += self.dim * 4 + 2 * self._index.hnsw_m * 4 if self.index_type == "hnsw" else 0
        return fixed + sum(c.nbytes_per_row for c in self._extras.values())

    def keyframes(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rows, keyframe_ids, robot_ids) of all live keyframes, in row order."""
        rows = np.flatnonzero(self._alive.data)
        return rows, self._kf.data[rows].copy(), [self._robots[c] for c in self._robot.data[rows]]

    def row_of(self, keyframe_id: int, robot_id: str) -> int | None:
        """Row of a live keyframe, or None."""
        code = self._robot_code.get(str(robot_id))
        return None if code is None else self._rows.get((code, int(keyframe_id)))

    def descriptors(self, rows: np.ndarray) -> np.ndarray:
        """Stored (unit, fp32) descriptors of rows."""
        return self._desc.data[np.asarray(rows, dtype=np.int64)]

    def get_extras(self, rows) -> dict[str, np.ndarray]:
        """Region-cache arrays stacked over rows (zeros for keyframes stored without a key)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError(f"rows out of range [0, {self.num_rows})")
        return {k: c.take(rows) for k, c in self._extras.items()}

    # --- add / remove -------------------------------------------------------------
    def _unit(self, vec, what: str) -> np.ndarray:
        v = np.asarray(vec, dtype=np.float64).reshape(-1)
        if v.shape != (self.dim,):
            raise ValueError(f"{what}: descriptor has {v.size} values, the database is {self.dim}-D")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{what}: descriptor contains NaN or inf")
        norm = np.linalg.norm(v)
        if norm == 0:
            raise ValueError(f"{what}: descriptor is all zeros")
        return (v / norm).astype(np.float32)

    def add(self, keyframe_id: int, robot_id: str, stamp: float, descriptor,
            extras: dict[str, np.ndarray] | None = None) -> int:
        """Insert one keyframe (descriptor is L2-normalised here); returns its row.

        Raises ValueError for a duplicate (robot_id, keyframe_id), a descriptor of the
        wrong size or with NaN/inf, or extras whose shape/dtype differ from the stored key's.
        """
        if isinstance(keyframe_id, bool) or not isinstance(keyframe_id, (int, np.integer)):
            raise ValueError(f"keyframe_id: expected an integer, got {keyframe_id!r}")
        robot, kf, stamp = str(robot_id), int(keyframe_id), float(stamp)
        what = f"keyframe {robot}/{kf}"
        if not np.isfinite(stamp):
            raise ValueError(f"{what}: stamp {stamp} is not finite")
        code = self._robot_code.get(robot)
        if code is not None and (code, kf) in self._rows:
            raise ValueError(f"{what}: already in the database (remove it first)")
        vec = self._unit(descriptor, what)
        ex = check_extras(extras, self._extras, what)
        if self._log is not None:  # write-ahead: a failing disk leaves memory unchanged
            self._log.append(db_log.encode_record({"op": "add", "kf": kf, "robot": robot, "stamp": stamp},
                                              {"descriptor": vec, **{f"x.{k}": v for k, v in ex.items()}}))
            self._maybe_flush()
        return self._insert(kf, robot, stamp, vec, ex)

    def _insert(self, kf: int, robot: str, stamp: float, vec: np.ndarray, ex: dict[str, np.ndarray]) -> int:
        code = self._robot_code.get(robot)
        if code is None:
            code = self._robot_code[robot] = len(self._robots)
            self._robots.append(robot)
            self._next_seq.append(0)
        row = self.num_rows
        for key, arr in ex.items():
            if key not in self._extras:
                self._extras[key] = Column(arr.shape, arr.dtype)
                self._extras[key].pad_to(row)
        for key, col in self._extras.items():
            col.append(ex.get(key))
        self._desc.append(vec)
        self._kf.append(kf)
        self._robot.append(code)
        self._stamp.append(stamp)
        self._seq.append(self._next_seq[code])
        self._next_seq[code] += 1
        self._alive.append(True)
        self._rows[(code, kf)] = row
        self._index.add(vec[None])
        if self._scan is not None:
            self._scan.add(vec)
        return row

    def remove(self, keyframe_ids, robot_id: str | None = None) -> int:
        """Forget keyframes (of robot_id, or of any robot when None); returns how many.

        Unknown ids are ignored (a SLAM back end may prune keyframes never sent here).
        """
        ids = np.atleast_1d(np.asarray(keyframe_ids, dtype=np.int64))
        rows = self._match_rows(ids, robot_id)
        if len(rows) == 0:
            return 0
        if self._log is not None:
            self._log.append(db_log.encode_record({"op": "remove", "robot": robot_id, "ids": ids.tolist()}, {}))
            self._maybe_flush()
        self._kill(rows)
        if self._path is None and self.num_rows - len(self) > max(1024, len(self)):
            self.compact()  # in memory only: persistent databases compact on save()
        return len(rows)

    def _match_rows(self, ids: np.ndarray, robot_id: str | None) -> np.ndarray:
        if robot_id is None:
            return np.flatnonzero(self._alive.data & np.isin(self._kf.data, ids))
        code = self._robot_code.get(str(robot_id))
        found = [self._rows.get((code, int(i))) for i in ids] if code is not None else []
        return np.array(sorted({r for r in found if r is not None}), dtype=np.int64)

    def _kill(self, rows: np.ndarray) -> None:
        self._alive.data[rows] = False
        for r in rows:
            self._rows.pop((int(self._robot.data[r]), int(self._kf.data[r])), None)

    def compact(self) -> None:
        """Drop removed rows (rows are renumbered; extras stay aligned). A persistent
        database compacts by writing a snapshot, which streams the region cache."""
        if self._path is not None:
            self.save()
            return
        keep = np.flatnonzero(self._alive.data)
        if len(keep) == self.num_rows:
            return
        self._rebuild_rows(keep)

    def _rebuild_rows(self, keep: np.ndarray) -> None:
        old = (self._desc.data, self._kf.data, self._robot.data, self._stamp.data, self._seq.data)
        extras = {k: c.keep(keep) for k, c in self._extras.items()}
        robots, next_seq = self._robots, self._next_seq
        self._reset_rows()
        self._robots, self._next_seq = robots, next_seq
        self._robot_code = {r: i for i, r in enumerate(robots)}
        self._desc, self._kf, self._robot, self._stamp, self._seq = (
            Growable(a.shape[1:], a.dtype, a[keep]) for a in old)
        self._alive = Growable((), np.bool_, np.ones(len(keep), np.bool_))
        self._extras = extras
        self._rows = {(int(c), int(k)): i for i, (c, k) in enumerate(zip(self._robot.data, self._kf.data))}
        self._rebuild_index()

    def _rebuild_index(self, hnsw_ready: bool = False) -> None:
        if not hnsw_ready:
            self._index.rebuild(self._desc.data)
        if self._scan is not None:
            self._scan.rebuild(self._desc.data)

    # --- search -------------------------------------------------------------------
    def admissible(self, robot_id: str | None = None, stamp: float | None = None,
                   exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
                   robot_filter: str = "all") -> np.ndarray:
        """Boolean mask over rows of keyframes a query may return (the exclusion rules).

        Same-robot keyframes among that robot's last N added, or with |stamp - query
        stamp| < T, are excluded (the robot is still there, not back); robot_filter
        inter_robot keeps other robots only, intra_robot the same robot only.
        """
        if robot_filter not in ROBOT_FILTERS:
            raise ValueError(f"robot_filter: {robot_filter!r} is not one of {list(ROBOT_FILTERS)}")
        if exclude_recent_keyframes < 0 or exclude_recent_seconds < 0:
            raise ValueError("exclude_recent_keyframes / exclude_recent_seconds: must be >= 0")
        ok = self._alive.data.copy()
        if robot_id is None:
            if robot_filter != "all":
                raise ValueError(f"robot_filter {robot_filter!r} needs the query's robot_id")
            return ok
        code = self._robot_code.get(str(robot_id), -1)
        same = self._robot.data == code
        if robot_filter == "inter_robot":
            ok &= ~same
        elif robot_filter == "intra_robot":
            ok &= same
        if code >= 0 and exclude_recent_keyframes > 0:
            ok &= ~(same & (self._seq.data >= self._next_seq[code] - exclude_recent_keyframes))
        if code >= 0 and exclude_recent_seconds > 0 and stamp is not None:
            ok &= ~(same & (np.abs(self._stamp.data - float(stamp)) < exclude_recent_seconds))
        return ok

    def search(self, query, k: int, *, robot_id: str | None = None, stamp: float | None = None,
               exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
               robot_filter: str = "all", max_distance: float = 4.0) -> Candidates:
        """The k nearest admissible keyframes (fewer if fewer exist or pass max_distance)."""
        if int(k) < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        q = self._unit(query, "query")
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
            rows, sims = self._exact_top_k(q, k, ok)
        dist = np.clip(2.0 - 2.0 * sims.astype(np.float32), 0.0, 4.0)
        order = np.lexsort((rows, dist))
        rows, dist = rows[order], dist[order]
        keep = dist <= max_distance
        return self._candidates(rows[keep], dist[keep])

    def _exact_top_k(self, q: np.ndarray, k: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, sims, settled = exact_top_k(self._desc.data, q, k, ok, self._scan)
        self.scan_fallbacks += int(not settled)
        return rows, sims

    def _candidates(self, rows: np.ndarray, dist: np.ndarray) -> Candidates:
        rows = rows.astype(np.int64)
        return Candidates(rows=rows, keyframe_ids=self._kf.data[rows].copy(),
                          robot_ids=[self._robots[c] for c in self._robot.data[rows]],
                          stamps=self._stamp.data[rows].copy(), distances=dist.astype(np.float32))
