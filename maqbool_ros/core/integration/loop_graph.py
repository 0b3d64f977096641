"""Keyframe positions and loop edges for RViz (plain numpy; the ROS side is ros/markers.py).

A keyframe's position comes from a pose source: a trajectory looked up by the keyframe's
stamp (:class:`Trajectory`: poses, odometry or a path) or a pose graph keyed by keyframe id
(RTAB-Map's MapGraph, read by rtabmap_data.graph_positions). Positions are resolved each time the edges are
drawn, so an optimised trajectory or graph moves the edges with it. After an RTAB-Map reset the
bridge's keyframe ids carry the session (bridge_state.keyframe_id): the graph is the newest
session's, so only keyframes of the newest session seen in the edges take graph positions.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np

from maqbool_ros.core.config import default_of
from maqbool_ros.core.integration.bridge_state import split_keyframe_id

Key = tuple[str, int]  # (robot_id, keyframe_id)


class Trajectory:
    """Timestamped positions, kept sorted by time (bounded: the oldest go first).

    ``position_at(t)``: linear interpolation between the two samples around t when they are at
    most 2 * tolerance_s apart (odometry at a few Hz or more), else the nearest sample when it is
    within tolerance_s (a pose per keyframe stamp), else None. Thread-safe.
    """

    def __init__(self, tolerance_s: float, max_samples: int = 100_000) -> None:
        self.tolerance_s = float(tolerance_s)
        self.max_samples = int(max_samples)
        self._t = np.empty(0)
        self._p = np.empty((0, 3))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._t)

    def add(self, t: float, xyz) -> None:
        """One sample (a later sample with the same stamp replaces it)."""
        self.add_many([t], [xyz], replace=False)

    def add_many(self, times, positions, replace: bool = False) -> None:
        """Several samples; replace=True drops the old ones first (a whole new path)."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        if len(t) != len(p):
            raise ValueError(f"times/positions: {len(t)} stamps for {len(p)} positions")
        keep = np.isfinite(t) & np.isfinite(p).all(axis=1)  # a NaN pose must not poison interpolation
        t, p = t[keep], p[keep]
        with self._lock:
            if not replace:
                t, p = np.concatenate([self._t, t]), np.concatenate([self._p, p])
            order = np.argsort(t, kind="stable")
            t, p = t[order], p[order]
            last = np.append(t[1:] != t[:-1], True)  # duplicates: the latest sample wins
            self._t, self._p = t[last][-self.max_samples:], p[last][-self.max_samples:]

    def position_at(self, t: float) -> np.ndarray | None:
        with self._lock:
            times, pos = self._t, self._p
        if not len(times) or not np.isfinite(t):
            return None
        i = int(np.searchsorted(times, t))
        if i < len(times) and times[i] == t:
            return pos[i].copy()
        if 0 < i < len(times) and times[i] - times[i - 1] <= 2 * self.tolerance_s:
            w = (t - times[i - 1]) / (times[i] - times[i - 1])
            return (1 - w) * pos[i - 1] + w * pos[i]
        near = [j for j in (i - 1, i) if 0 <= j < len(times)]
        j = min(near, key=lambda j: abs(times[j] - t))
        return pos[j].copy() if abs(times[j] - t) <= self.tolerance_s else None


@dataclass(frozen=True)
class LoopEdge:
    """One proposed loop: the query keyframe, the candidate, and whether it was verified."""

    query: Key
    candidate: Key
    query_stamp: float
    candidate_stamp: float
    verified: bool
    score: float


class LoopGraph:
    """The loop edges to draw (bounded, newest kept) and their endpoints' positions.

    Per query keyframe: every verified candidate, and the best ``unverified_per_keyframe``
    unverified ones. Positions: by keyframe id from a pose graph when one was given
    (``set_graph``), else by stamp from the trajectory. Thread-safe.
    """

    def __init__(self, trajectory: Trajectory | None = None, max_edges: int = default_of("markers.max_edges"),
                 unverified_per_keyframe: int = default_of("markers.unverified_per_keyframe")) -> None:
        self.trajectory = trajectory
        self.unverified_per_keyframe = int(unverified_per_keyframe)
        self._edges: collections.deque[LoopEdge] = collections.deque(maxlen=int(max_edges))
        self._graph: dict[int, np.ndarray] = {}
        self._session = 0  # newest RTAB-Map session among the edges' keyframe ids
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._edges)

    def add_result(self, query: Key, query_stamp: float, candidates) -> int:
        """Record one query's edges from (key, stamp, verified, score) tuples, best first; how many."""
        unverified = 0
        new = []
        for key, stamp, verified, score in candidates:
            if not verified:
                if unverified >= self.unverified_per_keyframe:
                    continue
                unverified += 1
            new.append(LoopEdge(query, (str(key[0]), int(key[1])), float(query_stamp), float(stamp),
                                bool(verified), float(score)))
        sessions = [split_keyframe_id(k)[0] for e in new for k in (e.query[1], e.candidate[1])]
        with self._lock:
            self._edges.extend(new)
            self._session = max([self._session, *sessions])
        return len(new)

    def set_graph(self, positions: dict[int, np.ndarray], replace: bool = False) -> None:
        """Pose-graph positions by keyframe id (merged into the known ones unless replace)."""
        with self._lock:
            self._graph = dict(positions) if replace else {**self._graph, **positions}

    def position(self, key: Key, stamp: float) -> np.ndarray | None:
        with self._lock:
            graph, newest = self._graph, self._session
        if graph:
            session, node_id = split_keyframe_id(int(key[1]))
            return graph.get(node_id) if session == newest else None  # an older session's node is gone
        return self.trajectory.position_at(stamp) if self.trajectory is not None else None

    def segments(self) -> tuple[list[tuple[LoopEdge, np.ndarray, np.ndarray]], int]:
        """(edge, query position, candidate position) for each edge whose both ends are known,
        and the number of edges left out for want of a position."""
        with self._lock:
            edges = list(self._edges)
        out, missing = [], 0
        for e in edges:
            a, b = self.position(e.query, e.query_stamp), self.position(e.candidate, e.candidate_stamp)
            if a is None or b is None:
                missing += 1
            else:
                out.append((e, a, b))
        return out, missing
