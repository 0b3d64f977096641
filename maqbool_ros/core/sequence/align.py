"""Sequence alignment (SeqSLAM's line search, causal): the score of a stored keyframe as
the end of a run that the query's last L keyframes follow.

Window frame k (k = 0 is the current query, k = L-1 the oldest) is aligned, on line m,
with the stored keyframe at run position ``end - offsets[m, k]``, where
``offsets[m, k] = direction * round(velocity * k)``: forward lines walk back through the
run as the window walks back in time; reverse lines (direction -1) walk forward, for a
route travelled the other way. A position outside the run, removed, not admissible for
the query or in another map than the end is a gap. A line's distance is the mean over the
whole window of the squared descriptor distance of its aligned frames and, for a gap, the
frame's gap distance (a typical non-matching distance), so a line cannot gain by skipping
the frames that disagree with it; lines aligning fewer than ``need`` frames are not scored
(inf). An end keeps its best line. Pure numpy: no database, no ROS.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maqbool_ros.core.rerank.blas import single_thread_blas


def velocities(v_min: float, v_max: float, steps: int) -> np.ndarray:
    """The velocities tried: ``steps`` evenly spaced values in [v_min, v_max] (v_min once when equal)."""
    if steps <= 1 or v_max <= v_min:
        return np.array([float(v_min)])
    return np.linspace(float(v_min), float(v_max), int(steps))


def line_offsets(length: int, speeds: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (M, length) int64, signed velocity per line (M,)): one line per velocity,
    and per velocity again backwards when reverse. Duplicate lines (short windows round
    several velocities alike) are kept once, the first in velocity order."""
    k = np.arange(int(length))
    signed = [float(v) for v in speeds] + ([-float(v) for v in speeds] if reverse else [])
    offs, seen, kept = [], set(), []
    for v in signed:
        row = (np.sign(v) * np.round(abs(v) * k)).astype(np.int64)
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            offs.append(row)
            kept.append(v)
    return np.stack(offs), np.asarray(kept)


def min_aligned(length: int, fraction: float) -> int:
    """Frames a line must align: at least one, and ``fraction`` of the window rounded up."""
    return max(1, math.ceil(float(fraction) * int(length) - 1e-9))


@dataclass
class Alignment:
    """Per run end: best line's mean distance (inf: none aligned enough), aligned frames,
    signed velocity (0 when none) and the end's own single-frame distance."""

    distances: np.ndarray
    aligned: np.ndarray
    velocities: np.ndarray
    end_distances: np.ndarray


def align_ends(window: np.ndarray, end_codes: np.ndarray, end_positions: np.ndarray, end_maps: np.ndarray,
               offsets: np.ndarray, line_velocities: np.ndarray,
               rows_at: Callable[[np.ndarray, np.ndarray], np.ndarray],
               row_ok: np.ndarray, row_maps: np.ndarray, descriptors: np.ndarray, need: int,
               gaps: np.ndarray | None = None) -> Alignment:
    """Score E run ends (robot code, run position, map code each) against the window (L, D)
    of unit descriptors, row 0 the current query. rows_at(codes, positions) -> rows (-1:
    none); row_ok / row_maps: per stored row, admissible and its map code; need: frames a
    line must align."""
    num_ends, length = len(end_codes), len(window)
    if num_ends == 0:
        empty = np.zeros(0)
        return Alignment(empty, np.zeros(0, np.int64), empty, empty)
    pos = end_positions[:, None, None] - offsets[None, :, :]            # (E, M, L)
    codes = np.broadcast_to(end_codes[:, None, None], pos.shape)
    rows = rows_at(codes, pos)
    valid = rows >= 0
    hit = rows[valid]
    maps = np.broadcast_to(end_maps[:, None, None], pos.shape)[valid]
    valid[valid] = row_ok[hit] & (row_maps[hit] == maps)
    unique, inverse = unique_rows(rows[valid], len(row_ok))
    frame = np.broadcast_to(np.arange(length)[None, None, :], pos.shape)[valid]
    if len(unique):
        with single_thread_blas():  # a small GEMM beside the network worker (rerank/blas.py): 13 ms -> 0.5
            sims = window @ descriptors[unique].T
    else:
        sims = np.zeros((length, 0), np.float32)
    dist = np.zeros(pos.shape, np.float64)
    dist[valid] = np.clip(2.0 - 2.0 * sims[frame, inverse].astype(np.float64), 0.0, 4.0)
    if gaps is not None:
        dist[~valid] = np.broadcast_to(np.asarray(gaps, np.float64)[None, None, :], pos.shape)[~valid]
    count = valid.sum(axis=2)
    mean = dist.sum(axis=2) / length
    mean[count < need] = np.inf
    best = np.argmin(mean, axis=1)                                      # first best line on ties
    pick = np.arange(num_ends)
    scored = np.isfinite(mean[pick, best])
    # The end's own distance: frame 0 of any line (offset 0), the same on every line.
    return Alignment(mean[pick, best], np.where(scored, count[pick, best], 0).astype(np.int64),
                     np.where(scored, line_velocities[best], 0.0), dist[:, 0, 0])


def unique_rows(rows: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(rows, return_inverse=True) by scattering into a row-sized table: O(rows +
    num_rows) instead of a sort, which dominated the stage at 100k keyframes."""
    slot = np.full(num_rows, -1, np.int64)
    slot[rows] = 0
    unique = np.flatnonzero(slot >= 0)
    slot[unique] = np.arange(len(unique))
    return unique, slot[rows]


def shortlist_ends(hit_codes: list[np.ndarray], hit_positions: list[np.ndarray],
                   offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ends (codes, positions) reachable from window frame k's hits on some line: a
    hit at position p for frame k is on the line ending at p + offsets[m, k]. Not unique
    (the caller maps them to rows and drops repeats there, in O(rows))."""
    codes, positions = [], []
    for k, (c, p) in enumerate(zip(hit_codes, hit_positions, strict=True)):
        if len(c) == 0 or k >= offsets.shape[1]:
            continue
        shifted = np.asarray(p, np.int64)[:, None] + offsets[None, :, k]
        codes.append(np.repeat(np.asarray(c, np.int64), offsets.shape[0]))
        positions.append(shifted.ravel())
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(codes), np.concatenate(positions)
