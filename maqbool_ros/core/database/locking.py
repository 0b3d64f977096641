"""The database's locking decorator, shared by the FAISS and Milvus backends."""
from __future__ import annotations

import functools


def locked(method):
    """Run a method under the instance's ``_lock`` (an RLock)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return run
