"""Growable columnar storage for the keyframe database (rows, fixed per-row shapes).

A column is a read-only *base* (e.g. a memory-mapped snapshot file, so a multi-GB
region cache is paged from disk instead of held in RAM) followed by an in-memory
*tail* that grows by doubling (amortised O(1) appends, no per-add reallocation).
"""
from __future__ import annotations

import numpy as np


class Column:
    """Rows of one fixed shape and dtype: base (maybe memmap) + growable tail."""

    def __init__(self, row_shape: tuple[int, ...], dtype: np.dtype | str, base: np.ndarray | None = None):
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        empty = np.zeros((0, *self.row_shape), self.dtype)
        self.base = empty if base is None else base
        if self.base.shape[1:] != self.row_shape or self.base.dtype != self.dtype:
            raise ValueError(f"column base has shape {self.base.shape[1:]} {self.base.dtype}, "
                             f"expected {self.row_shape} {self.dtype}")
        self._tail = empty
        self._tail_n = 0

    def __len__(self) -> int:
        return len(self.base) + self._tail_n

    @property
    def nbytes_per_row(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def append(self, row: np.ndarray | None) -> None:
        """Append one row (None: a zero row, for keyframes without this extra)."""
        if self._tail_n == len(self._tail):
            grown = np.zeros((max(16, 2 * len(self._tail)), *self.row_shape), self.dtype)
            grown[:self._tail_n] = self._tail[:self._tail_n]
            self._tail = grown
        self._tail[self._tail_n] = 0 if row is None else row  # 0: a truncated row may have left data
        self._tail_n += 1

    def truncate(self, n: int) -> None:
        """Drop rows appended after the first n (an insert being rolled back; never into the base)."""
        if n < len(self.base):
            raise ValueError(f"cannot truncate below the read-only base ({len(self.base)} rows)")
        self._tail_n = min(self._tail_n, n - len(self.base))

    def pad_to(self, n: int) -> None:
        """Append zero rows until the column has n rows."""
        while len(self) < n:
            self.append(None)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows stacked (a copy), reading memory-mapped base rows from disk as needed."""
        rows = np.asarray(rows, dtype=np.int64)
        nb = len(self.base)
        if len(rows) == 0 or rows.max() < nb:
            return np.asarray(self.base[rows])
        if rows.min() >= nb:
            return self._tail[rows - nb]
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        in_base = rows < nb
        out[in_base] = self.base[rows[in_base]]
        out[~in_base] = self._tail[rows[~in_base] - nb]
        return out

    def fill_into(self, out: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> None:
        """Copy `rows` into `out` chunk by chunk (streams a memory-mapped base)."""
        for s in range(0, len(rows), chunk):
            out[s:s + chunk] = self.take(rows[s:s + chunk])

    def keep(self, rows: np.ndarray) -> Column:
        """A new in-memory column with only `rows`, in that order."""
        col = Column(self.row_shape, self.dtype)
        col._tail = np.empty((max(16, len(rows)), *self.row_shape), self.dtype)
        self.fill_into(col._tail, np.asarray(rows, dtype=np.int64))
        col._tail_n = len(rows)
        return col


class Growable:
    """A 1-D or 2-D in-memory array with amortised O(1) appends; `.data` is a view."""

    def __init__(self, row_shape: tuple[int, ...], dtype: np.dtype | str, initial: np.ndarray | None = None):
        self._buf = np.zeros((16, *row_shape), dtype)
        self._n = 0
        if initial is not None and len(initial):
            self._buf = np.array(initial, dtype=dtype, copy=True)
            self._n = len(initial)

    def __len__(self) -> int:
        return self._n

    @property
    def data(self) -> np.ndarray:
        return self._buf[:self._n]

    def append(self, value) -> None:
        if self._n == len(self._buf):
            grown = np.zeros((max(16, 2 * len(self._buf)), *self._buf.shape[1:]), self._buf.dtype)
            grown[:self._n] = self._buf[:self._n]
            self._buf = grown
        self._buf[self._n] = value
        self._n += 1

    def truncate(self, n: int) -> None:
        """Drop rows after the first n (an insert being rolled back)."""
        self._n = min(self._n, int(n))

