"""Temporal consistency of loop closures (after DBoW2 / ORB-SLAM): a verified candidate is
accepted only when the k - 1 preceding query keyframes also had verified candidates, each a
map neighbour of the next one's, forming a chain of k consecutive queries; and which verified
candidate of a query is the loop to take (strongest_first)."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable


def id_neighbours(window: int) -> Callable[[Hashable, Hashable], bool]:
    """Neighbour test on keyframe ids: ints within `window`, or (robot_id, keyframe_id) tuples of
    the same robot within `window`."""
    def near(a: Hashable, b: Hashable) -> bool:
        if isinstance(a, tuple) and isinstance(b, tuple):
            return a[0] == b[0] and abs(int(a[1]) - int(b[1])) <= window
        if isinstance(a, tuple) or isinstance(b, tuple):
            return False  # a robot-qualified id is never a neighbour of a bare one
        return abs(int(a) - int(b)) <= window
    return near


class TemporalConsistency:
    """Chains of verified candidates over consecutive query keyframes.

    Call update() once per query keyframe, in order, with that keyframe's verified candidates
    (empty when none: it breaks every chain). chain length L(c) of candidate c at query i is
    1 + max L(c') over the previous query's candidates c' that are neighbours of c (1 if none).
    A candidate is accepted when L(c) >= k. k can be changed at any time (set_k): chains are
    tracked independently of k, so a new k applies from the next update on.
    """

    def __init__(self, k: int = 1, neighbours: Callable[[Hashable, Hashable], bool] | None = None,
                 window: int = 3) -> None:
        self.set_k(k)
        self._near = neighbours or id_neighbours(window)
        self._prev: dict[Hashable, int] = {}

    @property
    def k(self) -> int:
        return self._k

    def set_k(self, k: int) -> None:
        if int(k) < 1:
            raise ValueError(f"temporal consistency k = {k} must be >= 1")
        self._k = int(k)

    def reset(self) -> None:
        """Forget all chains (e.g. after the map was reset)."""
        self._prev = {}

    def update(self, verified_candidates: Iterable[Hashable]) -> dict[Hashable, bool]:
        """Candidate -> accepted, for this query keyframe's verified candidates."""
        cur: dict[Hashable, int] = {}
        for c in verified_candidates:
            best = max((n for p, n in self._prev.items() if self._near(p, c)), default=0)
            cur[c] = max(cur.get(c, 0), best + 1)
        self._prev = cur
        return {c: n >= self._k for c, n in cur.items()}

    def chain_lengths(self) -> dict[Hashable, int]:
        """The current query's chain length per candidate (after the last update)."""
        return dict(self._prev)


def strongest_first(verified, num_inliers) -> list[int]:
    """Positions of one query's candidates, the verified ones first by inlier count (most first;
    rank order on ties), then the unverified in rank order. The ranking (appearance, sequence)
    decides which candidates are checked; once geometry has confirmed several, the loop a back end
    should take is the one with the most geometric support, the strongest and most accurate
    constraint (docs/verification.md): the RTAB-Map bridge's links and `eval --pose-graph` use it."""
    flags = [bool(v) for v in verified]
    inliers = [int(n) for n in num_inliers]
    ranked = sorted((i for i, v in enumerate(flags) if v), key=lambda i: (-inliers[i], i))
    return ranked + [i for i, v in enumerate(flags) if not v]
