"""Rolling latency statistics for diagnostics (p50/p95/p99 per stage)."""
from __future__ import annotations

import collections
import threading

from maqbool_ros.core.evaluation.metrics import latency_percentiles


class LatencyStats:
    """Keeps the last `window` samples per stage name (milliseconds)."""

    def __init__(self, window: int = 1000):
        self._window = window
        self._samples: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def add(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            for name, value in timings_ms.items():
                self._samples.setdefault(name, collections.deque(maxlen=self._window)).append(float(value))

    def summary(self, percentiles: tuple[int, ...] = (50, 95, 99)) -> dict[str, dict[str, float]]:
        """stage -> {"p50": ..., "p95": ..., "p99": ..., "mean", "max", "count": n} (the
        offline reports' summary, maqbool_ros.core.evaluation.metrics.latency_percentiles)."""
        with self._lock:
            snapshot = {k: list(v) for k, v in sorted(self._samples.items()) if v}
        return latency_percentiles(snapshot, percentiles)
