"""Re-ranking GEMMs run on one BLAS thread (issue #17: threaded BLAS beside the network
worker made landmark re-ranking wait for its second thread on a busy CPU)."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from maqbool_ros.core.rerank import blas
from maqbool_ros.core.rerank.landmarks import Vocabulary, match_batch, matching, mine_regions, mining, vocab
from maqbool_ros.core.rerank.landmarks.mining import pool_regions


def test_single_thread_blas_limits_numpys_blas_to_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def numpy_blas_threads():  # numpy's own BLAS does the re-rankers' GEMMs
        return [p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas" and "numpy" in p["filepath"]]

    if not numpy_blas_threads():
        pytest.skip("numpy's BLAS reports no thread pool")
    with blas.single_thread_blas():
        assert numpy_blas_threads() == [1]


@pytest.fixture
def spy(monkeypatch):
    """Counts entries into single_thread_blas from the landmark modules."""
    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        with blas.single_thread_blas():
            yield

    for module in (matching, mining, vocab):
        monkeypatch.setattr(module, "single_thread_blas", recording)
    return entered


def test_landmark_gemms_run_on_one_blas_thread(spy):
    rng = np.random.default_rng(0)
    guidance = np.maximum(rng.standard_normal((4, 6, 8)), 0).astype(np.float32)
    features = rng.standard_normal((5, 6, 8)).astype(np.float32)
    regions = mine_regions(guidance, 10)
    vectors = pool_regions(regions, guidance, features)
    assert len(spy) == 1
    Vocabulary(rng.standard_normal((3, 5)).astype(np.float32), np.ones(3), 1).assign(vectors)
    assert len(spy) == 2
    cands = rng.standard_normal((3, 7, 5)).astype(np.float16)
    match_batch(vectors, np.ones(len(vectors)), cands, np.ones((3, 7)))
    assert len(spy) == 3
