"""Bounded, ordered buffer of writes for a remote database, retried with exponential
backoff while the server is unreachable. Nothing accepted is dropped: an operation leaves
the buffer only once the server has acknowledged it; a full buffer refuses new writes
(the caller raises), it never evicts old ones.
"""
from __future__ import annotations

import collections
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field


def is_unavailable(exc: BaseException) -> bool:
    """Whether exc means "server not reachable / not answering" (retry later) rather than
    a refused request (report to the caller)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import grpc
        if isinstance(exc, grpc.RpcError):
            return True
    except ImportError:  # pragma: no cover - pymilvus depends on grpcio
        pass
    text = str(exc).lower()
    return any(s in text for s in ("unavailable", "fail connecting", "deadline", "connection", "timed out",
                                   "not ready", "timeout"))


@dataclass
class OutboxStats:
    """Counters of the buffer (reported in the node's stats)."""

    failed_attempts: int = 0  # write attempts that found the server unreachable
    retries: int = 0  # background retry rounds
    delivered_late: int = 0  # operations written after having been buffered
    refused_full: int = 0  # writes refused because the buffer was full
    refused_by_server: int = 0  # buffered writes the server refused (not an outage): reported, not retried
    max_buffered: int = 0  # most operations waiting at once
    longest_wait_s: float = 0.0  # longest time an operation waited between push and delivery
    outages: int = 0  # outages ended (the buffer delivered after a failed attempt)
    outage_s_total: float = 0.0  # their summed duration (first failure to full delivery)
    last_error: str = ""
    stalls: list = field(default_factory=list)  # (start, end) monotonic times of outages (last 16)


class Outbox:
    """Ordered operations awaiting the server. `deliver(ops)` writes a prefix of them and
    returns how many it wrote, raising when the server is unavailable; it is called with
    the owner's lock held (`lock`), from the writer's thread or the retry thread."""

    def __init__(self, deliver: Callable[[list], int], lock: threading.RLock, max_ops: int,
                 backoff_s: tuple[float, float] = (0.2, 10.0)):
        self._deliver = deliver
        self._lock = lock
        self.max_ops = int(max_ops)
        self.ops: collections.deque = collections.deque()
        self.pushed: collections.deque = collections.deque()  # monotonic push time of each op
        self.stats = OutboxStats()
        self._backoff = backoff_s
        self._delay = backoff_s[0]
        self._next_try = 0.0
        self._outage_start: float | None = None
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.ops)

    def push(self, op) -> None:
        """Append one operation (ValueError when full: the caller's write is refused)."""
        if len(self.ops) >= self.max_ops:
            self.stats.refused_full += 1
            raise ValueError(f"database_buffer_max: {self.max_ops} writes already wait for the unreachable "
                             f"database server ({self.stats.last_error}); this one is refused")
        self.ops.append(op)
        self.pushed.append(time.monotonic())
        self.stats.max_buffered = max(self.stats.max_buffered, len(self.ops))

    def waiting_s(self) -> float:
        """Seconds the oldest buffered operation has waited so far (0 when none waits)."""
        try:  # read without the lock (stats): the deque may empty meanwhile
            return time.monotonic() - self.pushed[0]
        except IndexError:
            return 0.0

    def report(self) -> dict:
        """The counters as plain numbers (docs/milvus.md "Server unreachable")."""
        s = self.stats
        return {"buffered": len(self.ops), "waiting_s": round(self.waiting_s(), 3), "max_buffered": s.max_buffered,
                "longest_wait_s": round(s.longest_wait_s, 3), "delivered_late": s.delivered_late,
                "outages": s.outages, "outage_s_total": round(s.outage_s_total, 3),
                "failed_attempts": s.failed_attempts, "retries": s.retries, "refused_full": s.refused_full,
                "refused_by_server": s.refused_by_server}

    def clear(self) -> None:
        """Forget every buffered operation (the database was reset)."""
        self.ops.clear()
        self.pushed.clear()

    def _pop(self) -> None:
        self.ops.popleft()
        self.stats.longest_wait_s = max(self.stats.longest_wait_s, time.monotonic() - self.pushed.popleft())

    def drain(self, force: bool = False) -> bool:
        """Deliver buffered operations in order; True when the buffer is empty. Unless force,
        does nothing before the backoff time (no failing round trip per keyframe in an outage).
        A refused operation (not an outage) is removed and its error raised."""
        if not self.ops:
            return True
        if not force and time.monotonic() < self._next_try:
            return False
        buffered_before = self._outage_start is not None
        while self.ops:
            batch = list(self.ops)
            try:
                done = self._deliver(batch)
            except Exception as e:
                if not is_unavailable(e):
                    self._pop()  # the head operation was refused: never retried
                    self.stats.refused_by_server += 1
                    raise
                self._failed(e)
                return False
            for _ in range(done):
                self._pop()
            if buffered_before:
                self.stats.delivered_late += done
        self._recovered()
        return True

    def _failed(self, e: Exception) -> None:
        now = time.monotonic()
        self.stats.failed_attempts += 1
        self.stats.last_error = f"{type(e).__name__}: {str(e)[:200]}"
        if self._outage_start is None:
            self._outage_start = now
            self._delay = self._backoff[0]
        else:
            self._delay = min(self._delay * 2, self._backoff[1])
        self._next_try = now + self._delay
        self._start_thread()
        self._wake.set()

    def _recovered(self) -> None:
        if self._outage_start is not None:
            now = time.monotonic()
            self.stats.stalls = (self.stats.stalls + [(self._outage_start, now)])[-16:]
            self.stats.outages += 1
            self.stats.outage_s_total += now - self._outage_start
        self._outage_start = None
        self._delay = self._backoff[0]
        self._next_try = 0.0

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # A weak reference: a dropped owner ends the thread instead of being kept alive by it.
            self._thread = threading.Thread(target=_retry_loop, args=(weakref.ref(self),), daemon=True,
                                            name="maqbool-db-outbox")
            self._thread.start()

    def close(self) -> None:
        """Stop the retry thread (buffered operations stay in `ops`)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


def _retry_loop(ref) -> None:
    while True:
        box = ref()
        if box is None or box._closed:
            return
        delay = max(0.0, box._next_try - time.monotonic()) if box.ops else 1.0
        wake = box._wake
        del box
        wake.wait(timeout=min(delay, 1.0))
        wake.clear()
        box = ref()
        if box is None or box._closed:
            return
        if box.ops and time.monotonic() >= box._next_try:
            with box._lock:
                box.stats.retries += 1
                try:
                    box.drain()
                except Exception as e:  # a refused write: counted, the rest continues
                    box.stats.last_error = f"refused: {type(e).__name__}: {str(e)[:200]}"
        del box
