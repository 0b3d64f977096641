"""Row store of the keyframe database: one row per keyframe, in insertion order.

Columns: unit fp32 descriptor, keyframe id (int64), robot code (int32, index into
`robots`), stamp (float64 s), per-robot insertion counter (int64, for "the robot's last
N keyframes"), alive flag, and one Column per extras key; plus the (robot code,
keyframe id) -> row map. Rows are append-only until `compacted()`; `kill` only marks
rows dead. The database and its persistence both go through this class's methods.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from maqbool_ros.core.database import validate
from maqbool_ros.core.database.columns import Column, Growable

ROBOT_FILTERS = ("all", "inter_robot", "intra_robot")


@dataclass(frozen=True)
class NewRow:
    """A keyframe whose every field passed validation (descriptor: unit float32)."""

    keyframe_id: int
    robot_id: str
    stamp: float
    descriptor: np.ndarray
    extras: dict[str, np.ndarray]


class Mark(NamedTuple):
    """Where the store stood before an append (see `RowStore.rollback`)."""

    rows: int
    robots: int
    extras: tuple[str, ...]
    next_seq: tuple[int, ...]


class RowStore:
    """All keyframe rows; `append` is all-or-nothing."""

    def __init__(self, dim: int):
        self.dim = int(dim)
        self._desc = Growable((self.dim,), np.float32)
        self._kf = Growable((), np.int64)
        self._robot = Growable((), np.int32)
        self._stamp = Growable((), np.float64)
        self._seq = Growable((), np.int64)
        self._alive = Growable((), np.bool_)
        self._extras: dict[str, Column] = {}
        self._robots: list[str] = []
        self._robot_code: dict[str, int] = {}
        self._next_seq: list[int] = []
        self._rows: dict[tuple[int, int], int] = {}

    @classmethod
    def from_columns(cls, dim: int, robots: list[str], next_seq: list[int], columns: dict[str, np.ndarray],
                     extras: dict[str, np.ndarray]) -> RowStore:
        """A store of snapshot rows (all alive). Extras arrays become the columns' read-only
        base (memory-mapped ones stay on disk). Raises ValueError when they disagree."""
        store = cls(dim)
        if len(next_seq) != len(robots) or len(set(robots)) != len(robots):
            raise ValueError(f"{len(robots)} robots (unique: {len(set(robots))}), {len(next_seq)} counters")
        # Names are not re-validated: a map written before the robot id rules must still open.
        store._robots, store._next_seq = [str(r) for r in robots], [int(s) for s in next_seq]
        store._robot_code = {r: i for i, r in enumerate(store._robots)}
        store._desc = Growable((store.dim,), np.float32, columns["descriptors"])
        store._kf = Growable((), np.int64, columns["keyframe_ids"])
        store._robot = Growable((), np.int32, columns["robot_codes"])
        store._stamp = Growable((), np.float64, columns["stamps"])
        store._seq = Growable((), np.int64, columns["sequence"])
        store._alive = Growable((), np.bool_, np.ones(len(store._kf), np.bool_))
        store._extras = {k: Column(a.shape[1:], a.dtype, base=a) for k, a in extras.items()}
        codes = store._robot.data
        if len(codes) and (codes.min() < 0 or codes.max() >= len(robots)):
            raise ValueError(f"robot codes outside [0, {len(robots)})")
        store._rows = {(int(c), int(k)): i for i, (c, k) in enumerate(zip(codes, store._kf.data, strict=True))}
        if len(store._rows) != len(codes):
            raise ValueError("a (robot, keyframe id) pair appears twice")
        return store

    # --- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        """Live keyframes."""
        return len(self._rows)

    @property
    def num_rows(self) -> int:
        """Rows including dead ones not yet compacted away."""
        return len(self._kf)

    @property
    def robots(self) -> list[str]:
        return list(self._robots)

    @property
    def next_seq(self) -> list[int]:
        return list(self._next_seq)

    @property
    def descriptors(self) -> np.ndarray:
        """(num_rows, dim) unit fp32 descriptors (a view: do not modify)."""
        return self._desc.data

    def column(self, name: str) -> np.ndarray:
        """A fixed column as a view: keyframe_ids, robot_codes, stamps, sequence or alive."""
        return {"keyframe_ids": self._kf, "robot_codes": self._robot, "stamps": self._stamp,
                "sequence": self._seq, "alive": self._alive}[name].data

    def robot_names(self, rows: np.ndarray) -> list[str]:
        return [self._robots[c] for c in self._robot.data[rows]]

    def extras_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {k: (c.row_shape, c.dtype) for k, c in self._extras.items()}

    def extras_bytes_per_row(self) -> int:
        return sum(c.nbytes_per_row for c in self._extras.values())

    def extras_base(self, key: str) -> np.ndarray:
        """The read-only base of an extras column (memory-mapped after a load or save)."""
        return self._extras[key].base

    def take_extras(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError(f"rows out of range [0, {self.num_rows})")
        return {k: c.take(rows) for k, c in self._extras.items()}

    def fill_extras(self, key: str, out: np.ndarray, rows: np.ndarray) -> None:
        """Copy an extras column's `rows` into `out` chunk-wise (streams a memory-mapped base)."""
        self._extras[key].fill_into(out, rows)

    def robot_counts(self) -> dict[str, int]:
        """Live keyframes per robot. Safe without the database lock (stats): the columns are
        read once each and cut to the shorter one if an append came in between."""
        robots, codes, alive = list(self._robots), self._robot.data, self._alive.data
        n = min(len(codes), len(alive))
        counts = np.bincount(codes[:n][alive[:n]], minlength=len(robots))
        return {r: int(c) for r, c in zip(robots, counts) if c}

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(self._alive.data)

    def row_of(self, keyframe_id: int, robot_id: str) -> int | None:
        code = self._robot_code.get(str(robot_id))
        return None if code is None else self._rows.get((code, int(keyframe_id)))

    def match_rows(self, ids: np.ndarray, robot_id: str | None) -> np.ndarray:
        """Live rows of these ids (of robot_id, or of any robot when None), sorted."""
        if robot_id is None:
            return np.flatnonzero(self._alive.data & np.isin(self._kf.data, ids))
        code = self._robot_code.get(str(robot_id))
        found = [self._rows.get((code, int(i))) for i in ids] if code is not None else []
        return np.array(sorted({r for r in found if r is not None}), dtype=np.int64)

    def admissible(self, robot_id: str | None, stamp: float | None, exclude_recent_keyframes: int,
                   exclude_recent_seconds: float, robot_filter: str) -> np.ndarray:
        """Boolean mask over rows a query may return (see KeyframeDatabase.admissible)."""
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

    # --- writing ----------------------------------------------------------------------
    def validate(self, keyframe_id, robot_id, stamp, descriptor, extras=None, stored: bool = False) -> NewRow:
        """Check every field against the store (ids in int64, finite stamp, descriptor
        shape/dtype/finite, robot id, extras vs the stored columns, no duplicate).
        Raises ValueError naming the field; nothing is modified. stored: the descriptor
        comes from the log (see validate.unit_descriptor)."""
        kf = validate.keyframe_id(keyframe_id)
        robot = validate.robot_id(robot_id)
        try:
            code = self._robot_code.get(robot)
            if code is not None and (code, kf) in self._rows:
                raise ValueError("already in the database (remove it first)")
            return NewRow(kf, robot, validate.stamp(stamp),
                          validate.unit_descriptor(descriptor, self.dim, stored=stored),
                          validate.extras(extras, self._extras))
        except ValueError as e:
            raise ValueError(f"keyframe {robot}/{kf}: {e}") from None

    def mark(self) -> Mark:
        return Mark(self.num_rows, len(self._robots), tuple(self._extras), tuple(self._next_seq))

    def append(self, row: NewRow) -> int:
        """Append a validated keyframe; returns its row. On any failure the store is as before."""
        mark = self.mark()
        try:
            code = self._robot_code.get(row.robot_id)
            if code is None:
                code = self._robot_code[row.robot_id] = len(self._robots)
                self._robots.append(row.robot_id)
                self._next_seq.append(0)
            n = self.num_rows
            for key, arr in row.extras.items():
                if key not in self._extras:
                    self._extras[key] = Column(arr.shape, arr.dtype)
                    self._extras[key].pad_to(n)
            for key, col in self._extras.items():
                col.append(row.extras.get(key))
            self._desc.append(row.descriptor)
            self._kf.append(row.keyframe_id)
            self._robot.append(code)
            self._stamp.append(row.stamp)
            self._seq.append(self._next_seq[code])
            self._alive.append(True)
            self._next_seq[code] += 1
            self._rows[(code, row.keyframe_id)] = n
            return n
        except BaseException:
            self.rollback(mark)
            raise

    def rollback(self, mark: Mark) -> None:
        """Undo the appends made since `mark` (rows, new robots, new extras keys, counters)."""
        n = mark.rows
        for r in range(n, self.num_rows):
            key = (int(self._robot.data[r]), int(self._kf.data[r]))
            if self._rows.get(key) == r:
                del self._rows[key]
        for key in [k for k in self._extras if k not in mark.extras]:
            del self._extras[key]
        for col in self._extras.values():
            col.truncate(n)
        for g in (self._desc, self._kf, self._robot, self._stamp, self._seq, self._alive):
            g.truncate(n)
        for robot in self._robots[mark.robots:]:
            del self._robot_code[robot]
        del self._robots[mark.robots:]
        self._next_seq[:] = mark.next_seq

    def kill(self, rows: np.ndarray) -> None:
        """Mark rows dead (their ids may be added again)."""
        self._alive.data[rows] = False
        for r in rows:
            self._rows.pop((int(self._robot.data[r]), int(self._kf.data[r])), None)

    def compacted(self) -> RowStore:
        """A new store with only the live rows, renumbered, extras aligned (in memory)."""
        keep = self.live_rows()
        cols = {"descriptors": self._desc.data[keep], "keyframe_ids": self._kf.data[keep],
                "robot_codes": self._robot.data[keep], "stamps": self._stamp.data[keep],
                "sequence": self._seq.data[keep]}
        store = RowStore.from_columns(self.dim, self._robots, self._next_seq, cols, {})
        store._extras = {k: c.keep(keep) for k, c in self._extras.items()}
        return store
