"""The keyframe database's search structure over every row of its RowStore.

CPU flat: the fp16 scan copy (index.HalfScan) proven exact by exact_top_k; GPU flat and
HNSW: a faiss index (index.VectorIndex) asked for k + excluded rows. Row numbers are the
row store's: rows are only appended, and a compaction or load rebuilds this.
"""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.database.index import HalfScan, VectorIndex, exact_top_k


class SearchIndex:
    """A faiss index or the fp16 scan copy, plus the k-nearest search with a row mask."""

    def __init__(self, dim: int, index_type: str = "flat", device: str = "auto"):
        self.index = VectorIndex(dim, index_type, device)
        # CPU flat: fp16 scan copy (half the bytes to stream per query; see index.py).
        self.scan = HalfScan(dim) if not self.index.uses_faiss else None
        self.scan_fallbacks = 0  # exact queries the fp16 bound could not settle (near-ties)

    def add(self, vector: np.ndarray) -> None:
        """Append one row (unit fp32)."""
        self.index.add(vector[None])
        if self.scan is not None:
            self.scan.add(vector)

    def holds(self, num_rows: int) -> bool:
        """Whether exactly num_rows rows are indexed (False after a failed add)."""
        return (not self.index.uses_faiss or len(self.index) == num_rows) and (
            self.scan is None or len(self.scan) == num_rows)

    def build(self, descriptors: np.ndarray, hnsw_blob: bytes | None = None, blob_rows: int = 0) -> None:
        """Index every row: a stored HNSW graph of the first blob_rows rows is reused and
        the rest added one by one (as they were live); else rebuilt from scratch."""
        index = self.index
        if hnsw_blob is not None and index.index_type == "hnsw" and index.deserialize(hnsw_blob, blob_rows):
            for v in descriptors[blob_rows:]:
                index.add(v[None])
        else:
            index.rebuild(descriptors)
        if self.scan is not None:
            self.scan.rebuild(descriptors)

    def bytes_per_row(self) -> int:
        """fp16 scan copy, or HNSW's vector copy + level-0 links."""
        dim = self.index.dim
        return (dim * 2 if self.scan is not None else 0) + (
            dim * 4 + 2 * self.index.hnsw_m * 4 if self.index.index_type == "hnsw" else 0)

    def hnsw_blob(self, live_descriptors: np.ndarray, all_live: bool) -> bytes | None:
        """The HNSW graph of the live rows, as saved beside a snapshot (saves a rebuild on load)."""
        if self.index.index_type != "hnsw":
            return None
        index = self.index
        if not all_live:
            index = VectorIndex(self.index.dim, "hnsw", "cpu")
            index.add(live_descriptors)
        return index.serialize()

    def nearest(self, descriptors: np.ndarray, q: np.ndarray, k: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, squared distances) of the k nearest rows where ok, ascending, ties by row.
        k must be <= ok.sum()."""
        num_rows = len(descriptors)
        k_wide = k + (num_rows - int(ok.sum()))  # enough that k admissible rows survive the mask
        if self.index.uses_faiss and k_wide <= self.index.max_k and 4 * k_wide <= num_rows:
            rows, sims = self.index.search(q, k_wide)
            good = rows >= 0
            good[good] = ok[rows[good]]
            rows, sims = rows[good][:k], sims[good][:k]
        else:
            rows, sims, settled = exact_top_k(descriptors, q, k, ok, self.scan)
            self.scan_fallbacks += int(not settled)
        dist = np.clip(2.0 - 2.0 * sims.astype(np.float32), 0.0, 4.0)
        order = np.lexsort((rows, dist))
        return rows[order].astype(np.int64), dist[order]
