"""Keyframe database on Milvus (milvus-lite file or a Milvus server / cluster): the
KeyframeDatabase interface the pipeline uses, for a map shared by several robots and
sessions (docs/milvus.md).

Search semantics equal the FAISS backend's: the exclusion rules are a Milvus filter
expression applied before the top-k (milvus_schema.search_filter), distances are squared
L2 between unit vectors (Milvus' L2 metric is already squared), ascending. Writes go
through an Outbox: while the server is unreachable they wait in a bounded buffer and are
retried with backoff; nothing accepted is dropped. Row handles (`Candidates.rows`) are the
keyframes' 63-bit primary keys. One writer per robot id (its insertion counter lives in
the writing process); any number of robots per collection.
"""
from __future__ import annotations

import threading
import time
import types

import numpy as np

from maqbool_ros.core.database import milvus_schema as ms
from maqbool_ros.core.database import milvus_store as store
from maqbool_ros.core.database import validate
from maqbool_ros.core.database.locking import locked
from maqbool_ros.core.database.outbox import Outbox, is_unavailable
from maqbool_ros.core.database.recovery import RecoveryReport
from maqbool_ros.core.types import Candidates

# milvus-lite searches slow down with every small insert left in its memtable (10k x 512
# after 300 single inserts: ~1 s per search; flushed every 20: 26 ms), so on milvus-lite
# the backend flushes every LITE_FLUSH_ROWS keyframes. A Milvus server seals growing
# segments itself, and frequent flush() calls are discouraged there: not done.
LITE_FLUSH_ROWS = 20


class MilvusKeyframeDatabase:
    """The keyframe database in a Milvus collection (uri: a local .db path for milvus-lite,
    or http(s)://host:19530)."""

    def __init__(self, dim: int, uri: str, collection: str = "maqbool_keyframes", map_id: str = "",
                 index_type: str = "flat", buffer_max: int = 10_000, timeout_s: float = 5.0):
        from pymilvus import MilvusClient  # optional dependency: only this backend needs it

        if int(dim) <= 0:
            raise ValueError(f"dim: must be positive, got {dim}")
        if index_type not in ms.INDEX:
            raise ValueError(f"index_type: {index_type!r} is not one of {list(ms.INDEX)}")
        if not uri:
            raise ValueError("database_uri: empty; give a milvus-lite .db path or http(s)://host:19530")
        self.dim, self.uri, self.collection, self.map_id = int(dim), str(uri), str(collection), str(map_id)
        self.index_type, self.timeout_s = index_type, float(timeout_s)
        self._lock = threading.RLock()
        self._counters = f"{self.collection}_robots"
        self.recovery_report = RecoveryReport()  # nothing to recover locally: the server keeps the data
        self.scan_fallbacks = 0
        self.flush_interval_s = 0.0  # accepted for the pipeline; the server decides its own flushing
        self.dropped_duplicates = 0  # buffered keyframes found already stored when delivered
        self.search_failures = 0  # searches answered empty because the server was unreachable
        self._next: dict[str, int] = {}  # robot -> next insertion number (robots seen by this process)
        self._own: set[str] = set()  # robots this process wrote: their counter is authoritative here
        self._spec: dict[str, types.SimpleNamespace] = {}  # extras key -> row_shape, dtype
        self._count = self._unflushed = 0
        try:
            self._client = store.Reloading(MilvusClient(uri=self.uri, timeout=self.timeout_s),
                                           [self.collection, self._counters])
            store.open_collections(self._client, self.collection, self._counters, self.dim, self.index_type)
            self._count = self._server_count()
            self._lite = str(self._client.get_server_version()).startswith("milvus_lite")
        except ValueError:
            raise
        except Exception as e:
            raise ConnectionError(f"database_uri: cannot open Milvus collection {self.collection!r} at "
                                  f"{self.uri}: {type(e).__name__}: {e}") from e
        self.outbox = Outbox(self._deliver, self._lock, buffer_max)

    def _server_count(self) -> int:
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"], timeout=self.timeout_s)
        return int(res[0]["count(*)"])

    # --- content ------------------------------------------------------------------------
    def __len__(self) -> int:
        """Live keyframes: the collection's count at the last write or search, plus the
        buffered ones (no round trip: a node's stats never wait for the server)."""
        return self._count + sum(1 for op in list(self.outbox.ops) if op[0] == "add")

    @property
    def num_rows(self) -> int:
        return len(self)

    @locked
    def robot_counts(self) -> dict[str, int]:
        """Keyframes per robot: not counted here (it would cost a server query per stats period)."""
        return {}

    def outage_report(self) -> dict:
        """The outbox's counters (how many writes waited, how long) and searches answered
        empty during an outage: the node's ~/stats `database_outbox` (docs/milvus.md)."""
        return dict(self.outbox.report(), search_failures=self.search_failures)

    def extras_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {k: (v.row_shape, v.dtype) for k, v in self._spec.items()}

    @locked
    def bytes_per_keyframe(self) -> int:
        """Bytes one keyframe takes in the collection: fp32 descriptor (the FLAT index reads
        it in place; HNSW adds ~2*M*4 bytes of links), the scalar fields, the extras JSON."""
        return ms.bytes_per_row(self.dim, self.index_type, self._spec)

    # --- writing ------------------------------------------------------------------------
    @locked
    def add(self, keyframe_id: int, robot_id: str, stamp: float, descriptor,
            extras: dict[str, np.ndarray] | None = None) -> int:
        """Insert one keyframe; returns its primary key. Checked like the FAISS backend
        (ValueError naming the field); accepted when written, or buffered while the server
        is unreachable (delivered in order later)."""
        row = store.new_row(keyframe_id, robot_id, stamp, descriptor, self.dim, self.map_id)
        kf, robot = row["keyframe_id"], row["robot_id"]
        try:
            ex = validate.extras(extras, self._spec)
            row["extras"] = ms.encode_extras(ex)
            if any(op[0] == "add" and op[1]["pk"] == row["pk"] for op in self.outbox.ops):
                raise ValueError("already in the database (remove it first)")
        except ValueError as e:
            raise ValueError(f"keyframe {robot}/{kf}: {e}") from None
        checked = False
        if not self.outbox.ops:  # server presumably up: refuse a duplicate now, like FAISS
            try:
                self._check_new([row], strict=True)
                checked = True
            except ValueError as e:
                raise ValueError(f"keyframe {robot}/{kf}: {e}") from None
            except Exception:  # unreachable: the check is redone at delivery
                pass
        self.outbox.push(("add", row, checked))
        for key, arr in ex.items():
            self._spec.setdefault(key, types.SimpleNamespace(row_shape=arr.shape, dtype=arr.dtype))
        self._own.add(robot)
        self.outbox.drain()
        return row["pk"]

    @locked
    def add_many(self, keyframe_ids, robot_ids, stamps, descriptors, batch: int = 1000) -> int:
        """Bulk insert without extras (importing a map, benchmarks): rows checked like add(),
        written `batch` at a time through the same buffer; returns how many were written
        (keyframes already stored are skipped and counted in dropped_duplicates)."""
        n, before = len(keyframe_ids), self._count
        for lo in range(0, n, batch):
            for i in range(lo, min(n, lo + batch)):
                row = store.new_row(keyframe_ids[i], robot_ids[i], stamps[i], descriptors[i], self.dim, self.map_id)
                self.outbox.push(("add", row, False))
                self._own.add(row["robot_id"])
            self.outbox.drain(force=True)
        return self._count - before

    def _check_new(self, rows: list[dict], strict: bool = False) -> list[dict]:
        fresh, dups = store.check_new(self._client, self.collection, rows, strict, self.timeout_s)
        self.dropped_duplicates += dups
        return fresh

    def _deliver(self, ops: list) -> int:
        """Outbox callback: write the leading run of adds in one insert, or one remove."""
        if ops[0][0] == "remove":
            self._remove_now(*ops[0][1:])
            return 1
        run = []
        for op in ops:
            if op[0] != "add" or len(run) >= 1000:
                break
            run.append(op)
        unchecked = [op[1] for op in run if not op[2]]
        fresh = {r["pk"] for r in self._check_new(unchecked)} if unchecked else set()
        rows = [op[1] for op in run if op[2] or op[1]["pk"] in fresh]
        for r in rows:  # insertion numbers are given at delivery, in order, from the server's state
            if r["seq"] < 0:
                r["seq"] = self._robot_next(r["robot_id"])
                self._next[r["robot_id"]] = r["seq"] + 1
        if rows:
            try:
                self._client.insert(self.collection, rows, timeout=self.timeout_s)
            except Exception:
                # A timed-out insert may still have been applied: check these again before
                # retrying (Milvus does not refuse a duplicate primary key).
                for i, op in enumerate(run):
                    self.outbox.ops[i] = ("add", op[1], False)
                raise
            self._count += len(rows)
            self._unflushed += len(rows)
            if self._lite and self._unflushed >= LITE_FLUSH_ROWS:
                try:  # only for speed: a failure must not make the outbox insert these rows again
                    self._client.flush(self.collection, timeout=self.timeout_s)
                    self._unflushed = 0
                except Exception:  # noqa: BLE001
                    pass
        return len(run)

    def _robot_next(self, robot: str) -> int:
        """The robot's next insertion number: known locally for our own robots once read;
        otherwise the largest stored seq + 1 (or the kept counter, if larger)."""
        if robot in self._next and robot in self._own:
            return self._next[robot]
        self._next[robot] = store.stored_next_seq(self._client, self.collection, self._counters, robot,
                                                  self._next.get(robot, 0), self.timeout_s)
        return self._next[robot]

    @locked
    def remove(self, keyframe_ids, robot_id: str | None = None) -> int:
        """Forget keyframes (of robot_id, or of every robot when None); returns how many
        (while the server is unreachable: buffered, returns 0)."""
        ids = validate.keyframe_ids(keyframe_ids)
        robot = None if robot_id is None else str(robot_id)
        if len(ids) == 0:
            return 0
        self.outbox.push(("remove", [int(i) for i in ids], robot))
        before = self._count
        self.outbox.drain(force=len(self.outbox) == 1)
        return max(0, before - self._count) if not self.outbox.ops else 0

    def _remove_now(self, ids: list[int], robot: str | None) -> None:
        self._count -= store.remove_keyframes(self._client, self.collection, self._counters, ids, robot,
                                              self._robot_next, self.timeout_s)

    # --- search -------------------------------------------------------------------------
    @locked
    def search(self, query, k: int, *, robot_id: str | None = None, stamp: float | None = None,
               exclude_recent_keyframes: int = 0, exclude_recent_seconds: float = 0.0,
               robot_filter: str = "all", max_distance: float = 4.0) -> Candidates:
        """The k nearest admissible keyframes (FAISS backend semantics; empty, counted in
        search_failures, while the server is unreachable)."""
        return self._search(query, k, robot_id, stamp, exclude_recent_keyframes, exclude_recent_seconds,
                            robot_filter, max_distance, False)[0]

    @locked
    def search_with_extras(self, query, k: int, **rules) -> tuple[Candidates, dict[str, np.ndarray]]:
        """search() and the candidates' extras in one round trip."""
        defaults = dict(robot_id=None, stamp=None, exclude_recent_keyframes=0, exclude_recent_seconds=0.0,
                        robot_filter="all", max_distance=4.0)
        unknown = set(rules) - set(defaults)
        if unknown:
            raise TypeError(f"search_with_extras: unexpected arguments {sorted(unknown)}")
        defaults.update(rules)
        return self._search(query, k, *defaults.values(), True)

    def _search(self, query, k, robot_id, stamp, n_recent, t_recent, robot_filter, max_distance, with_extras):
        q = store.checked_query(query, k, self.dim, robot_id, robot_filter, n_recent, t_recent)
        fields = ms.OUTPUT + (["extras"] if with_extras else [])
        try:
            self.outbox.drain()
            nxt = self._robot_next(robot_id) if robot_id is not None and n_recent > 0 else 0
            if robot_id in self._own:  # buffered keyframes count as added (their seq comes later)
                nxt += sum(1 for op in self.outbox.ops if op[0] == "add" and op[1]["robot_id"] == robot_id)
            expr = ms.search_filter(robot_id, stamp, nxt, n_recent, t_recent, robot_filter)
            params = {"metric_type": "L2", "params": {"ef": max(128, int(k))} if self.index_type == "hnsw" else {}}
            hits = self._client.search(self.collection, data=[q.tolist()], anns_field="descriptor", filter=expr,
                                       limit=min(int(k), ms.MAX_TOP_K), search_params=params, output_fields=fields,
                                       timeout=self.timeout_s)[0]
        except Exception as e:
            if not is_unavailable(e):
                raise
            self.search_failures += 1
            hits = []
        cands, ents = store.candidates(hits, max_distance)
        return cands, (store.stack_extras([e.get("extras") for e in ents], self._spec) if with_extras and ents else {})

    @locked
    def get_extras(self, rows) -> dict[str, np.ndarray]:
        """Extras of the keyframes with these primary keys, stacked (zeros where a keyframe has no such key)."""
        pks = [int(r) for r in np.asarray(rows, np.int64)]
        got = self._client.get(self.collection, ids=pks, output_fields=["extras"], timeout=self.timeout_s)
        by_pk = {g["pk"]: g.get("extras") for g in got}
        return store.stack_extras([by_pk.get(p) for p in pks], self._spec)

    # --- lifecycle ----------------------------------------------------------------------
    @locked
    def flush(self) -> None:
        """Deliver buffered writes now and make them durable on the server (raises
        ConnectionError while it is unreachable; the writes stay buffered)."""
        if not self.outbox.drain(force=True):
            raise ConnectionError(f"database_uri: {len(self.outbox)} writes still buffered "
                                  f"({self.outbox.stats.last_error})")
        self._client.flush(self.collection, timeout=self.timeout_s)
        self._count = self._server_count()

    def save(self, path=None) -> None:
        """flush(); the path is ignored (the server holds the map)."""
        self.flush()

    def close(self, wait_s: float = 10.0) -> None:
        """Deliver what is buffered (retrying up to wait_s), stop the retry thread, close the client."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                if self.outbox.drain(force=True) or time.monotonic() > deadline:
                    break
            time.sleep(0.2)
        self.outbox.close()
        with self._lock:
            self._client.close()

    @locked
    def reset(self) -> None:
        """Drop the collection (every robot's keyframes: the map is shared) and start empty."""
        for name in (self.collection, self._counters):
            self._client.drop_collection(name, timeout=self.timeout_s)
        self.outbox.clear()
        self._next.clear()
        self._own.clear()
        self._spec.clear()
        self._count = 0
        store.open_collections(self._client, self.collection, self._counters, self.dim, self.index_type)

    def __enter__(self) -> MilvusKeyframeDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
