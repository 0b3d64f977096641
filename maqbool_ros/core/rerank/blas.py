"""One-thread BLAS for the re-rankers' small matrix products.

The pipeline runs the network and re-ranking on two workers at once, and the target
machines are small and shared, so threaded BLAS inside re-ranking oversubscribes the
cores: every GEMM then waits for its second thread to be scheduled (OpenBLAS threads
spin meanwhile). Measured on the shared 2-core machine: MAQBOOL region descriptors
840 ms wall with 2 BLAS threads vs 37 ms with 1 (docs/maqbool.md); landmark matching of
100 candidates, M = 200: docs/landmarks.md (Performance).
"""
from __future__ import annotations

_BLAS = None


def single_thread_blas():
    """Context manager limiting numpy's BLAS to one thread (process-wide while inside)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

        _BLAS = ThreadpoolController()  # created lazily: numpy's BLAS must be loaded first
    return _BLAS.limit(limits=1, user_api="blas")
