"""Latency summaries the node reports at run time (p50/p95/p99 per stage); the evaluation reports
use the same function (core/evaluation/metrics.py re-exports it)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def latency_percentiles(samples_ms: Mapping[str, Sequence[float]],
                        percentiles: Sequence[float] = (50, 95, 99)) -> dict[str, dict[str, float]]:
    """Per stage: p50/p95/p99 (linear interpolation), mean, max and count, in ms."""
    report: dict[str, dict[str, float]] = {}
    for stage, values in samples_ms.items():
        arr = np.asarray(list(values), dtype=float)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            continue
        entry = {f"p{int(p) if float(p).is_integer() else p}": float(np.percentile(arr, p))
                 for p in percentiles}
        entry.update(mean=float(arr.mean()), max=float(arr.max()), count=int(arr.size))
        report[stage] = entry
    return report
