"""Runs of stored keyframes for sequence matching: per robot, its keyframes by insertion
number (the row store's ``sequence`` column, stable across compaction and reload), and a
small integer code per map id.

A *run* is one robot's keyframes of one map in insertion order; a keyframe's position in
it is its insertion number, so a removed keyframe or one of another map leaves a gap. The
index follows a RowStore incrementally (rows are only appended between compactions) and
rebuilds itself when the store was replaced (compaction, load) or rolled back.
"""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.database.locking import locked
from maqbool_ros.core.database.map_ids import MAP_ID_BYTES, MAP_ID_KEY

MAP_FILTERS = ("all", "inter_map", "intra_map")


class RunIndex:
    """(robot code, insertion number) -> row, and a map code per row, for one RowStore."""

    def __init__(self) -> None:
        self._store = None
        self._n = 0
        self._by_seq: list[np.ndarray] = []  # per robot code: row per insertion number (-1: none)
        self._map_codes = np.zeros(0, np.int32)
        self._map_code: dict[bytes, int] = {}

    def sync(self, store) -> None:
        """Catch up with the store's rows (a new or shrunk store is indexed from scratch)."""
        if store is not self._store or store.num_rows < self._n:
            self.__init__()
            self._store = store
        n = store.num_rows
        if n == self._n:
            return
        new = np.arange(self._n, n, dtype=np.int64)
        codes = store.column("robot_codes")[self._n:n]
        seqs = store.column("sequence")[self._n:n]
        while len(self._by_seq) < len(store.robots):
            self._by_seq.append(np.full(16, -1, np.int64))
        for code in np.unique(codes):
            mine = codes == code
            arr, top = self._by_seq[code], int(seqs[mine].max()) + 1
            if top > len(arr):
                grown = np.full(max(top, 2 * len(arr)), -1, np.int64)
                grown[:len(arr)] = arr
                arr = self._by_seq[code] = grown
            arr[seqs[mine]] = new[mine]
        self._map_codes = np.concatenate([self._map_codes, self._codes_of(store, new)])
        self._n = n

    def _codes_of(self, store, rows: np.ndarray) -> np.ndarray:
        if MAP_ID_KEY not in store.extras_spec():
            raw = np.zeros((len(rows), MAP_ID_BYTES), np.uint8)
        else:
            raw = store.take_extras(rows)[MAP_ID_KEY]
        return np.array([self.map_code(bytes(r)) for r in raw], np.int32)

    def map_code(self, encoded: bytes) -> int:
        """The code of a map id (its zero-padded bytes, map_ids.encode_map_id); new ids get one."""
        encoded = bytes(encoded).ljust(MAP_ID_BYTES, b"\0")
        return self._map_code.setdefault(encoded, len(self._map_code))

    @property
    def map_codes(self) -> np.ndarray:
        """Map code per row."""
        return self._map_codes

    def rows(self, codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Rows at (robot code, insertion number) pairs; -1 where there is none."""
        codes, positions = np.asarray(codes, np.int64), np.asarray(positions, np.int64)
        if codes.size and codes.flat[0] == codes.min() == codes.max() and 0 <= codes.flat[0] < len(self._by_seq):
            arr = self._by_seq[int(codes.flat[0])]  # one robot (the common case): no masks
            inside = (positions >= 0) & (positions < len(arr))
            return np.where(inside, arr[np.clip(positions, 0, len(arr) - 1)], -1)
        out = np.full(positions.shape, -1, np.int64)
        for code in np.unique(codes):
            if not 0 <= code < len(self._by_seq):
                continue
            arr = self._by_seq[code]
            sel = (codes == code) & (positions >= 0) & (positions < len(arr))
            out[sel] = arr[positions[sel]]
        return out

    def map_mask(self, map_code: int, map_filter: str) -> np.ndarray | None:
        """Rows allowed by map_filter for a query of map_code (None: all rows)."""
        if map_filter not in MAP_FILTERS:
            raise ValueError(f"map_filter: {map_filter!r} is not one of {list(MAP_FILTERS)}")
        if map_filter == "all":
            return None
        same = self._map_codes == map_code
        return ~same if map_filter == "inter_map" else same


class RunSearch:
    """KeyframeDatabase's sequence-matching queries (its lock, rows and run index)."""

    @locked
    def run_keys(self, robot_ids: list[str], keyframe_ids) -> tuple[np.ndarray, np.ndarray]:
        """(robot codes, run positions) of live keyframes, the stable keys sequence matching
        caches per window frame (rows renumber on compaction; these do not). Unknown ones dropped."""
        rows = [self._rows.row_of(int(k), r) for r, k in zip(robot_ids, keyframe_ids, strict=True)]
        rows = np.array([r for r in rows if r is not None], np.int64)
        return (self._rows.column("robot_codes")[rows].astype(np.int64),
                self._rows.column("sequence")[rows].copy())

    @locked
    def search_sequence(self, window, k: int, params, *, robot_id: str | None = None, stamp: float | None = None,
                        exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
                        robot_filter: str = "all", max_distance: float = 4.0, map_id: str = "",
                        map_filter: str = "all"):
        """The k best run ends for a sequence window (sequence.runs_search.SequenceWindow) under
        the same rules as search(): (Candidates with each end's own distance, their extras,
        RunMatches with the alignment). One locked call, so rows cannot renumber in between."""
        from maqbool_ros.core.sequence.runs_search import search_runs

        ok = self.admissible(robot_id, stamp, exclude_recent_keyframes, exclude_recent_seconds, robot_filter,
                             map_id, map_filter)
        found = search_runs(window, k, params, ok, self._runs, self._rows.column("robot_codes"),
                            self._rows.column("sequence"), self._rows.descriptors, max_distance)
        cands = self._candidates(found.rows, found.alignment.end_distances)
        return cands, (self._rows.take_extras(found.rows) if len(found.rows) else {}), found
