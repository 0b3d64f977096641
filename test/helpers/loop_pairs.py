"""rtabmap_loop's verification pairs, shared by test_verification_real.py and benchmarks/verify.py:
every true (query, earlier) pair and a seeded sample of clearly different pairs; and the nominal
camera those frames are verified with (the sample ships no calibration)."""
from __future__ import annotations

import numpy as np

from maqbool_ros.core.verification import Camera


def loop_pairs(root, n_false: int = 300, seed: int = 0):
    """All true (query, earlier) pairs, and a seeded sample of clearly different pairs: at least 10
    frames apart and at least 10 frames from every true match of the query."""
    truth = {}
    for line in (root / "loop_pairs.csv").read_text().splitlines()[1:]:
        i, js = line.split(",")
        truth[int(i)] = [int(j) for j in js.split()]
    true_pairs = [(i, j) for i, js in truth.items() for j in js]
    n = len(list((root / "frames").glob("*.jpg")))
    rng = np.random.default_rng(seed)
    false_pairs: list[tuple[int, int]] = []
    while len(false_pairs) < n_false:
        j, i = sorted(int(x) for x in rng.integers(0, n, 2))
        if i - j >= 10 and all(abs(j - m) >= 10 for m in truth.get(i, [])) and (i, j) not in false_pairs:
            false_pairs.append((i, j))
    return true_pairs, false_pairs


def nominal_camera(w: int, h: int, hfov_deg: float = 60.0) -> Camera:
    f = 0.5 * w / np.tan(np.deg2rad(hfov_deg) / 2)
    return Camera.from_params(f, f, (w - 1) / 2, (h - 1) / 2, w, h)
