"""What sequence matching remembers between keyframes: per stream (robot id, map id), the
last keyframes' descriptors and the run keys of their single-frame hits, newest first;
and the running mean that descriptor standardisation subtracts.

A stream restarts (its window empties) when a keyframe's stamp does not advance (a
restarted bag, a clock jump), when the database is reset, or when told to (a dataset's
declared sequence break). A new map id is a new stream. Thread-safe: the node's re-rank
worker and its ~/detect service may both query.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from maqbool_ros.core.sequence.runs_search import SequenceWindow

StreamKey = tuple[str, str]


class SequenceHistory:
    """The window of each stream: up to ``capacity`` past keyframes."""

    def __init__(self, capacity: int = 100) -> None:
        self.capacity = int(capacity)
        self._streams: dict[StreamKey, deque] = {}
        self._last_stamp: dict[StreamKey, float] = {}
        self._lock = threading.Lock()
        self.restarts = 0  # streams restarted because a stamp did not advance (counted at push)

    def window(self, key: StreamKey, stamp: float, descriptor: np.ndarray, hits: tuple, length: int) -> SequenceWindow:
        """The window ending at the current keyframe (its descriptor and hits first), at most
        ``length`` keyframes, never reaching across a restart."""
        with self._lock:
            frames = [(descriptor, hits)]
            if self._continues(key, stamp):
                frames += list(self._streams.get(key, ()))[: max(0, int(length) - 1)]
        return SequenceWindow(np.stack([f[0] for f in frames]).astype(np.float32),
                              [np.asarray(f[1][0], np.int64) for f in frames],
                              [np.asarray(f[1][1], np.int64) for f in frames],
                              np.array([f[1][2] if len(f[1]) > 2 else 2.0 for f in frames]))

    def push(self, key: StreamKey, stamp: float, descriptor: np.ndarray, hits: tuple) -> None:
        """Remember a processed keyframe (newest first). hits: (robot codes, run positions[,
        gap distance]) of its single-frame candidates."""
        with self._lock:
            past = self._streams.setdefault(key, deque(maxlen=self.capacity))
            if not self._continues(key, stamp):
                past.clear()
                self.restarts += 1
            past.appendleft((np.asarray(descriptor, np.float32).copy(), hits))
            self._last_stamp[key] = float(stamp)

    def _continues(self, key: StreamKey, stamp: float) -> bool:
        """Whether a keyframe at `stamp` follows the stream's last one (a first one: trivially)."""
        last = self._last_stamp.get(key)
        return last is None or stamp > last

    def break_stream(self, key: StreamKey | None = None) -> None:
        """Start over: one stream, or all (None)."""
        with self._lock:
            for k in ([key] if key is not None else list(self._streams)):
                self._streams.pop(k, None)
                self._last_stamp.pop(k, None)


class Standardizer:
    """Descriptor standardisation (Schubert, Neubert & Protzel, ICRA 2020), causal: each
    keyframe minus the mean of its stream's previous ``window`` keyframes, re-normalised.
    The first keyframe of a stream has no past and passes unchanged."""

    def __init__(self) -> None:
        self._past: dict[StreamKey, deque] = {}
        self._sum: dict[StreamKey, np.ndarray] = {}
        self._lock = threading.Lock()

    def apply(self, key: StreamKey, descriptor: np.ndarray, window: int) -> np.ndarray:
        """The standardised descriptor (unit), remembering the raw one for later keyframes."""
        raw = np.asarray(descriptor, np.float64)
        with self._lock:
            past = self._past.get(key)
            if past is None or past.maxlen != window:  # a new window length starts a new mean
                past = self._past[key] = deque(maxlen=window)
                self._sum[key] = np.zeros_like(raw)
            out = raw - self._sum[key] / len(past) if len(past) else raw
            if len(past) == past.maxlen:
                self._sum[key] -= past[0]
            past.append(raw)
            self._sum[key] += raw
        norm = float(np.linalg.norm(out))
        # A keyframe equal to its stream's mean has no direction left: keep the raw one.
        return (out / norm if norm > 1e-6 else raw / max(float(np.linalg.norm(raw)), 1e-12)).astype(np.float32)

    def reset(self) -> None:
        with self._lock:
            self._past.clear()
            self._sum.clear()
