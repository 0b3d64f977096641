"""Rolling latency statistics for diagnostics (p50/p95/p99 per stage)."""
from __future__ import annotations

import collections
import threading

import numpy as np


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
        """stage -> {"p50": ..., "p95": ..., "p99": ..., "count": n}."""
        with self._lock:
            snapshot = {k: np.asarray(v) for k, v in self._samples.items() if v}
        out = {}
        for name, values in sorted(snapshot.items()):
            row = {f"p{p}": float(np.percentile(values, p)) for p in percentiles}
            row["count"] = int(values.size)
            out[name] = row
        return out
