"""Bounded hand-over queues between the node's stages, with an overload policy.

A SLAM system must never wait for loop closure: producers never block. When a queue
is full the policy decides what is lost, and every loss is counted.
"""
from __future__ import annotations

import collections
import threading
from typing import Any

from maqbool_ros.core.config import FIELDS

POLICIES = FIELDS["overload_policy"].metadata["choices"]  # the schema's, not restated


class Closed(Exception):
    """Raised by get() once the queue is closed and empty."""


class DropQueue:
    """A bounded FIFO whose put() never blocks.

    drop_oldest: a full queue drops its oldest item to make room.
    keep_latest: every put() replaces whatever is waiting (depth is at most 1).

    A consumer calls done() after each get() once it has handed the item on, so
    `in_flight` counts items taken but not finished and pending() == waiting + in flight
    (read under one lock: a keyframe is never invisible between the queue and a worker).
    """

    def __init__(self, maxsize: int, policy: str = "drop_oldest"):
        if maxsize < 1:
            raise ValueError(f"queue_size: must be >= 1, got {maxsize}")
        if policy not in POLICIES:
            raise ValueError(f"overload_policy: {policy!r} is not one of {list(POLICIES)}")
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self.accepted = 0
        self.in_flight = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def configure(self, maxsize: int | None = None, policy: str | None = None) -> None:
        """Change size/policy live; excess items are dropped (and counted) on the next put."""
        with self._cond:
            if maxsize is not None:
                if maxsize < 1:
                    raise ValueError(f"queue_size: must be >= 1, got {maxsize}")
                self.maxsize = maxsize
            if policy is not None:
                if policy not in POLICIES:
                    raise ValueError(f"overload_policy: {policy!r} is not one of {list(POLICIES)}")
                self.policy = policy

    def put(self, item: Any) -> int:
        """Enqueue without blocking; returns how many items were dropped to make room."""
        with self._cond:
            if self._closed:
                return 0
            limit = 1 if self.policy == "keep_latest" else self.maxsize
            dropped = 0
            while len(self._items) >= limit:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self.dropped += dropped
            self.accepted += 1
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> Any:
        """Dequeue the oldest item; raises Closed when closed and empty, TimeoutError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout):
                raise TimeoutError
            if self._items:
                self.in_flight += 1
                return self._items.popleft()
            raise Closed

    def done(self) -> None:
        """The item from the last get() is finished (handed on, published or failed)."""
        with self._cond:
            self.in_flight -= 1

    def pending(self) -> int:
        """Items waiting plus items taken and not yet done()."""
        with self._cond:
            return len(self._items) + self.in_flight

    def counters(self) -> dict[str, int]:
        """accepted / dropped / waiting / in_flight, read together."""
        with self._cond:
            return {"accepted": self.accepted, "dropped": self.dropped, "waiting": len(self._items),
                    "in_flight": self.in_flight}

    def close(self) -> None:
        """Wake every waiting consumer; queued items are still handed out, then Closed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
