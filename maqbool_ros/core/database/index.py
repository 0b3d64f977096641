"""Vector search back ends of the keyframe database.

- CPU "flat": exact. A scan is memory-bound (100k x 512 fp32 = 205 MB per query), so
  HalfScan scans an fp16 copy (half the bytes) in two faiss IndexScalarQuantizer shards
  on two threads (k+32 per shard), with the exclusion mask as a faiss IDSelectorBitmap,
  and re-scores in fp32 the candidates whose fp16 score can still reach the top k.
  The fp16 error of an inner product is bounded (fp16_error_bound), so when the k-th
  exact score beats every unscanned row's bound the answer is exact; otherwise
  (near-ties) exact_top_k falls back to one numpy fp32 pass.
- GPU "flat": faiss GpuIndexFlatIP (exact) when faiss has GPU support and a GPU is
  present and the device is not "cpu".
- "hnsw": faiss IndexHNSWFlat (inner product), approximate, CPU.

faiss back ends return the k' = k + (number of excluded rows) nearest rows, so that at
least k admissible rows remain after the exclusion mask (see KeyframeDatabase.search).
Row numbers are the database's rows: rows are only ever appended, and a compaction
rebuilds the index.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from maqbool_ros.core.config import check_value

GPU_MAX_K = 2048  # faiss GPU k-selection limit
INDEX_TYPES = ("flat", "hnsw")


def gpu_available(device: str) -> bool:
    """True when the faiss build has GPU support, a GPU is visible and device allows it."""
    if device == "cpu":
        return False
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class VectorIndex:
    """Holds the optional faiss index; exact CPU search needs none (`uses_faiss` False)."""

    def __init__(self, dim: int, index_type: str = "flat", device: str = "auto",
                 hnsw_m: int = 32, ef_construction: int = 40, ef_search: int = 128):
        check_value("index_type", index_type)  # the schema's choices, not restated
        self.dim, self.index_type, self.device = int(dim), index_type, device
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.on_gpu = index_type == "flat" and gpu_available(device)
        self.uses_faiss = index_type == "hnsw" or self.on_gpu
        self._index = self._new() if self.uses_faiss else None

    @property
    def max_k(self) -> int:
        return GPU_MAX_K if self.on_gpu else 1 << 62

    def _new(self):
        import faiss

        if self.on_gpu:
            if getattr(self, "_res", None) is None:  # one per database: it reserves scratch memory
                self._res = faiss.StandardGpuResources()
            return faiss.GpuIndexFlatIP(self._res, self.dim)
        index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (row numbers continue from len(self))."""
        if self._index is not None and len(vectors):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def rebuild(self, vectors: np.ndarray) -> None:
        """Start over with exactly these rows (after a compaction or a load)."""
        if self._index is not None:
            self._index = self._new()
            self.add(vectors)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, inner products) of the k nearest, best first; rows < 0 are padding."""
        import faiss

        q = np.ascontiguousarray(query, dtype=np.float32)[None]
        k = int(min(k, len(self)))
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            sims, rows = self._index.search(q, k, params=params)
        else:
            sims, rows = self._index.search(q, k)
        return rows[0].astype(np.int64), sims[0]

    def serialize(self) -> bytes | None:
        """The HNSW graph as faiss's own binary format (saves a rebuild on load)."""
        if self.index_type != "hnsw" or self._index is None:
            return None
        import faiss

        return faiss.serialize_index(self._index).tobytes()

    def deserialize(self, data: bytes, expected_rows: int) -> bool:
        """Load a serialized HNSW graph; False (caller rebuilds) if it does not fit."""
        import faiss

        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if index.ntotal != expected_rows or index.d != self.dim:
            return False
        index.hnsw.efSearch = self.ef_search
        self._index = index
        return True


def fp16_error_bound(dim: int) -> float:
    """Upper bound of |q.x - q.fp16(x)| for unit q, x: fp16 rounding (relative 2^-11,
    taken as 2^-10 for safety) plus fp32 accumulation over dim terms."""
    return 2.0 ** -10 + dim * 2.0 ** -23


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kfdb-scan")
        return _POOL


class HalfScan:
    """fp16 copy of all rows, split round-robin over `shards` faiss SQfp16 indexes
    (row r lives in shard r % shards at local id r // shards)."""

    PARALLEL_MIN_BYTES = 32 << 20  # fp16 bytes scanned; below this, the thread hand-off costs more

    def __init__(self, dim: int, shards: int = 2):
        self.dim, self.shards = int(dim), int(shards)
        self.rebuild(np.zeros((0, dim), np.float32))

    def __len__(self) -> int:
        return sum(int(s.ntotal) for s in self._shards)

    def rebuild(self, vectors: np.ndarray) -> None:
        import faiss

        self._shards = [faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16,
                                                   faiss.METRIC_INNER_PRODUCT) for _ in range(self.shards)]
        for s, shard in enumerate(self._shards):
            if len(vectors) > s:
                shard.add(np.ascontiguousarray(vectors[s::self.shards], dtype=np.float32))

    def add(self, vector: np.ndarray) -> None:
        """Append one row (it becomes row len(self))."""
        self._shards[len(self) % self.shards].add(np.ascontiguousarray(vector, np.float32).reshape(1, -1))

    def _search_shard(self, s: int, q: np.ndarray, k: int, ok: np.ndarray):
        import faiss

        ok_s = ok[s::self.shards]
        k = min(k, len(ok_s))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), -np.inf
        bitmap = np.packbits(ok_s, bitorder="little")  # faiss: bit j of byte j>>3 is id j
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(ok_s), faiss.swig_ptr(bitmap)))
        # One OpenMP thread per search: our shards are the parallelism, and faiss's own
        # 2-thread team for one query measured 100x slower on a loaded 2-core machine.
        # omp_set_num_threads only changes the calling thread's setting.
        prev = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            sims, ids = self._shards[s].search(q, k, params=params)
        finally:
            faiss.omp_set_num_threads(prev)
        sims, ids = sims[0], ids[0]
        found = ids >= 0
        # Rows of this shard not returned score at most the k-th returned (if k were found).
        bound = float(sims[-1]) if found.all() else -np.inf
        return ids[found].astype(np.int64) * self.shards + s, sims[found], bound

    def search(self, query: np.ndarray, k: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(candidate rows, their fp16 scores, bound): every admissible row not returned
        has an fp16 score <= bound (-inf when all admissible rows were returned)."""
        q = np.ascontiguousarray(query, np.float32).reshape(1, -1)
        ok = ok[:len(self)]
        if 2 * len(ok) * self.dim >= self.PARALLEL_MIN_BYTES:  # faiss releases the GIL in search
            parts = list(_pool(self.shards).map(lambda s: self._search_shard(s, q, k, ok), range(self.shards)))
        else:
            parts = [self._search_shard(s, q, k, ok) for s in range(self.shards)]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                max(p[2] for p in parts))


def exact_top_k(desc: np.ndarray, q: np.ndarray, k: int, ok: np.ndarray,
                scan: HalfScan | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Exact top-k admissible rows by inner product: (rows, sims, settled_by_scan).

    With a scan: fp16 candidates re-scored in fp32, accepted when the k-th exact score
    beats every unreturned row's bound (see module doc); else one fp32 pass.
    """
    if scan is not None:
        rows, approx, bound = scan.search(q, k + 32, ok)
        eps = fp16_error_bound(len(q))
        # Re-score only rows that can still be in the top k: the k best fp16 scores are
        # each >= kth - eps exactly, so a row with fp16 score < kth - 2 eps cannot beat them.
        kth = np.partition(approx, len(approx) - k)[len(approx) - k]
        rows = rows[approx >= kth - 2 * eps]
        sims = np.einsum("ij,j->i", desc[rows], q)  # fp32, no BLAS thread team
        top = np.argsort(-sims, kind="stable")[:k]
        if bound == -np.inf or sims[top[-1]] > bound + eps:
            return rows[top], sims[top], True
    # Excluded rows are masked before the top-k selection. Small maps skip BLAS: its
    # 2-thread team measured 20 ms for 3k rows on the loaded 2-core machine (spinning).
    all_sims = np.einsum("ij,j->i", desc, q) if desc.size <= 1 << 22 else desc @ q
    all_sims[~ok] = -np.inf
    rows = np.argpartition(-all_sims, k - 1)[:k] if k < len(all_sims) else np.arange(len(all_sims))
    return rows, all_sims[rows], scan is None
