"""Sequence search over a keyframe database's rows: which run ends to try (every
admissible keyframe on a small map, else the shortlist reachable from the window's own
hits) and their alignment, best first. Called by KeyframeDatabase.search_sequence under
the database's lock; pure numpy."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from maqbool_ros.core.sequence.align import (
    Alignment,
    align_ends,
    line_offsets,
    min_aligned,
    shortlist_ends,
    unique_rows,
    velocities,
)


@dataclass
class SequenceParams:
    """The fields of the config's sequence section the search needs, by their short names
    (SequenceParams.from_config; defaults and ranges live in the schema only)."""

    min_velocity: float
    max_velocity: float
    velocity_steps: int
    reverse: bool
    min_aligned: float
    full_search_max: int

    @classmethod
    def from_config(cls, cfg) -> SequenceParams:
        """From a MaqboolConfig's sequence section (its other fields, length and
        standardize_window, are the stage's)."""
        section = cfg.section("sequence")
        return cls(**{f.name: section[f.name] for f in fields(cls)})


@dataclass
class SequenceWindow:
    """The query's window, newest first: unit descriptors (L, D), per frame the run keys
    (robot codes, run positions) of its single-frame hits (the shortlist's seeds), and per
    frame the distance a gap counts as (the pipeline gives the median distance of its
    hits: a typical candidate that is not the place; None: 2, unrelated unit vectors)."""

    descriptors: np.ndarray
    hit_codes: list[np.ndarray] = field(default_factory=list)
    hit_positions: list[np.ndarray] = field(default_factory=list)
    gap_distances: np.ndarray | None = None

    def gaps(self) -> np.ndarray:
        if self.gap_distances is None:
            return np.full(len(self.descriptors), 2.0)
        return np.asarray(self.gap_distances, np.float64)

    def __len__(self) -> int:
        return len(self.descriptors)


@dataclass
class RunMatches:
    """Scored run ends, best first: rows and their alignment; mode "full" or "shortlist"."""

    rows: np.ndarray
    alignment: Alignment
    mode: str


def search_runs(window: SequenceWindow, k: int, params: SequenceParams, ok: np.ndarray, runs, codes: np.ndarray,
                positions: np.ndarray, descriptors: np.ndarray, max_distance: float) -> RunMatches:
    """The k best run ends among admissible rows (ok), ordered by sequence distance, then
    their own distance, then row. runs: database.runs.RunIndex synced with the rows;
    codes / positions: per row, robot code and insertion number."""
    offsets, line_v = line_offsets(len(window), velocities(params.min_velocity, params.max_velocity,
                                                           params.velocity_steps), params.reverse)
    admissible = np.flatnonzero(ok)
    if len(admissible) <= params.full_search_max:
        mode, ends = "full", admissible
    else:
        mode = "shortlist"
        c, p = shortlist_ends(window.hit_codes, window.hit_positions, offsets)
        ends = runs.rows(c, p)
        ends = unique_rows(ends[ends >= 0], len(ok))[0]
        ends = ends[ok[ends]]
    maps = runs.map_codes
    al = align_ends(np.asarray(window.descriptors, np.float32), codes[ends].astype(np.int64),
                    positions[ends].astype(np.int64), maps[ends], offsets, line_v, runs.rows, ok, maps, descriptors,
                    min_aligned(len(window), params.min_aligned), window.gaps())
    keep = np.isfinite(al.distances) & (al.end_distances <= max_distance)
    ends = ends[keep]
    al = Alignment(al.distances[keep], al.aligned[keep], al.velocities[keep], al.end_distances[keep])
    order = np.lexsort((ends, al.end_distances, al.distances))[:int(k)]
    return RunMatches(ends[order], Alignment(al.distances[order], al.aligned[order], al.velocities[order],
                                             al.end_distances[order]), mode)
