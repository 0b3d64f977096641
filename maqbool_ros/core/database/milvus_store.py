"""Server-side helpers of the Milvus backend (milvus.py): the client wrapper that reloads
released collections, collection creation and checks, the stored insertion counter of a
robot, the row a keyframe becomes, and stacking stored extras."""
from __future__ import annotations

import time
import types

import numpy as np

from maqbool_ros.core.database import milvus_schema as ms
from maqbool_ros.core.database import validate
from maqbool_ros.core.database.rows import ROBOT_FILTERS
from maqbool_ros.core.types import Candidates

# Session: a robot reads its own writes at once; other robots' keyframes appear within
# Milvus' bounded staleness (well under a second), and searches never wait for a global
# timestamp sync as Strong would (docs/milvus.md).
CONSISTENCY = "Session"


class Reloading:
    """The MilvusClient, but a call that finds the collections released (a restarted
    milvus-lite server forgets what was loaded) loads them and is retried once, instead of
    being taken for a refused request."""

    def __init__(self, client, collections: list[str]):
        self._client, self._collections = client, collections

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except Exception as e:
                if "released" not in str(e) and "not loaded" not in str(e) and "load()" not in str(e):
                    raise
                for c in self._collections:
                    self._client.load_collection(c)
                return method(*args, **kwargs)
        return call


def open_collections(client, collection: str, counters: str, dim: int, index_type: str) -> None:
    """Create the keyframe and counter collections if missing, check the dimension, load both."""
    from pymilvus import DataType, MilvusClient

    kind, params = ms.INDEX[index_type]
    for name, schema, field, index_kind, index_params in (
            (collection, ms.keyframe_schema(MilvusClient, DataType, dim), "descriptor", kind, params),
            (counters, ms.counter_schema(MilvusClient, DataType), "unused", "FLAT", {})):
        if client.has_collection(name):
            continue
        index = client.prepare_index_params()
        index.add_index(field_name=field, index_type=index_kind, metric_type="L2", params=index_params)
        try:
            client.create_collection(name, schema=schema, index_params=index, consistency_level=CONSISTENCY)
        except Exception:
            # Another robot may be creating it at this moment (milvus-lite registers a new
            # collection only after writing its files): wait for it, else re-raise.
            for _ in range(50):
                if client.has_collection(name):
                    break
                time.sleep(0.1)
            else:
                raise
    field = next(f for f in client.describe_collection(collection)["fields"] if f["name"] == "descriptor")
    stored = int(field["params"]["dim"])
    if stored != dim:
        raise ValueError(f"dim: the collection {collection!r} holds {stored}-D descriptors, not {dim}")
    client.load_collection(collection)
    client.load_collection(counters)


def stored_next_seq(client, collection: str, counters: str, robot: str, lo: int, timeout_s: float) -> int:
    """A robot's next insertion number from the server: its largest stored seq (>= lo) + 1,
    or its kept counter (written when its newest keyframes were removed), if larger."""
    while True:  # only the largest seq matters: raise the floor until a page is not full
        page = client.query(collection, filter=f"robot_id == {ms.quote(robot)} and seq >= {lo}",
                            output_fields=["seq"], limit=ms.MAX_TOP_K, timeout=timeout_s)
        if page:
            lo = max(int(p["seq"]) for p in page) + 1
        if len(page) < ms.MAX_TOP_K:
            break
    # query, not get: pymilvus' get() quotes a string key without escaping it
    kept = client.query(counters, filter=f"robot_id == {ms.quote(robot)}", output_fields=["next_seq"],
                        timeout=timeout_s)
    return max(lo, int(kept[0]["next_seq"]) if kept else 0)


def new_row(keyframe_id, robot_id, stamp, descriptor, dim: int, map_id: str) -> dict:
    """The collection row of a keyframe (extras {} and seq -1: filled in by the caller),
    every field checked (ValueError "keyframe <robot>/<id>: <field>: ...")."""
    kf, robot = validate.keyframe_id(keyframe_id), validate.robot_id(robot_id)
    try:
        return {"pk": ms.keyframe_pk(robot, kf), "keyframe_id": kf, "robot_id": robot, "map_id": map_id,
                "stamp": validate.stamp(stamp), "seq": -1, "extras": {},
                "descriptor": validate.unit_descriptor(descriptor, dim).tolist()}
    except ValueError as e:
        raise ValueError(f"keyframe {robot}/{kf}: {e}") from None


def stack_extras(stored: list, spec: dict[str, types.SimpleNamespace]) -> dict[str, np.ndarray]:
    """Stored extras (JSON) of several keyframes stacked per key; a keyframe without a key
    reads zeros. spec (key -> row_shape, dtype) learns keys seen here for the first time."""
    decoded = [ms.decode_extras(s) for s in stored]
    for d in decoded:
        for key, arr in d.items():
            spec.setdefault(key, types.SimpleNamespace(row_shape=arr.shape, dtype=arr.dtype))
    out = {}
    for key, s in spec.items():
        out[key] = np.zeros((len(decoded),) + tuple(s.row_shape), s.dtype)
        for i, d in enumerate(decoded):
            if key in d:
                out[key][i] = d[key]
    return out


def check_new(client, collection: str, rows: list[dict], strict: bool, timeout_s: float) -> tuple[list[dict], int]:
    """(rows whose key is not stored yet, how many were already stored). strict: a stored
    one raises "already in the database"; a key held by another keyframe (hash collision) raises."""
    got = client.get(collection, ids=[r["pk"] for r in rows], output_fields=["keyframe_id", "robot_id"],
                     timeout=timeout_s)
    stored = {g["pk"]: (g["keyframe_id"], g["robot_id"]) for g in got}
    fresh, dups = [], 0
    for r in rows:
        if r["pk"] not in stored:
            fresh.append(r)
        elif stored[r["pk"]] == (r["keyframe_id"], r["robot_id"]):
            if strict:
                raise ValueError("already in the database (remove it first)")
            dups += 1
        else:
            held = stored[r["pk"]]
            raise ValueError(f"primary key {r['pk']} collides with keyframe {held[1]}/{held[0]}")
    return fresh, dups


def checked_query(query, k, dim: int, robot_id, robot_filter: str, n_recent, t_recent) -> np.ndarray:
    """The unit query vector, after the FAISS backend's checks of a search's arguments."""
    if int(k) < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    try:
        q = validate.unit_descriptor(query, dim)
    except ValueError as e:
        raise ValueError(f"query: {e}") from None
    if robot_filter not in ROBOT_FILTERS:
        raise ValueError(f"robot_filter: {robot_filter!r} is not one of {list(ROBOT_FILTERS)}")
    if n_recent < 0 or t_recent < 0:
        raise ValueError("exclude_recent_keyframes / exclude_recent_seconds: must be >= 0")
    if robot_id is None and robot_filter != "all":
        raise ValueError(f"robot_filter {robot_filter!r} needs the query's robot_id")
    return q


def hit_pk(hit: dict) -> int:
    """A search hit's primary key: under the field's name ("pk") from Milvus >= 2.4 and
    milvus-lite, under "id" from a Milvus 2.3 server (its results carry no field name)."""
    return int(hit["pk"] if "pk" in hit else hit["id"])


def candidates(hits: list, max_distance: float) -> tuple[Candidates, list[dict]]:
    """Search hits -> Candidates (rows: primary keys; distances: squared L2, which Milvus'
    L2 metric returns, clipped to 0..4 like the FAISS backend) ascending, ties by stamp,
    within max_distance; and the hits' entities in the same order."""
    dist = np.clip(np.array([h["distance"] for h in hits], np.float32), 0.0, 4.0)
    ents = [h["entity"] for h in hits]
    order = [i for i in np.lexsort((np.array([e["stamp"] for e in ents]), dist)) if dist[i] <= max_distance]
    hits, ents = [hits[i] for i in order], [ents[i] for i in order]
    return Candidates(rows=np.array([hit_pk(h) for h in hits], np.int64),
                      keyframe_ids=np.array([e["keyframe_id"] for e in ents], np.int64),
                      robot_ids=[e["robot_id"] for e in ents], stamps=np.array([e["stamp"] for e in ents]),
                      distances=dist[order].astype(np.float32)), ents


def remove_keyframes(client, collection: str, counters: str, ids: list[int], robot: str | None, next_seq,
                     timeout_s: float) -> int:
    """Delete those keyframe ids (of robot, or of every robot when None); returns how many.
    next_seq(robot) gives a robot's insertion counter, kept in `counters` first: removing a
    robot's newest keyframes must not shift its "last N keyframes" window onto older ones."""
    expr = f"keyframe_id in {ids}" + (f" and robot_id == {ms.quote(robot)}" if robot is not None else "")
    hits = client.query(collection, filter=expr, output_fields=["robot_id"], timeout=timeout_s)
    if not hits:
        return 0
    robots = sorted({h["robot_id"] for h in hits})
    client.upsert(counters, [{"robot_id": r, "next_seq": next_seq(r), "unused": [0.0, 0.0]} for r in robots],
                  timeout=timeout_s)
    client.delete(collection, ids=[h["pk"] for h in hits], timeout=timeout_s)
    return len(hits)
