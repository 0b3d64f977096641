"""Cost of the monocular ambiguity search (verification/ambiguity.py) and of the jackknife
(verification/jackknife.py): every pair of a posed monocular dataset verified with and without
each (the stage replaced by a no-op), the per-pair verification time (matching + estimation +
covariance) and each stage alone.
Medians after one warm-up pass, one thread; the machine load is printed (shared machine: figures
under load are upper bounds).

    PYTHONPATH=$PWD python -m benchmarks.mono_ambiguity --dataset ../shared/data/kitti_snippets/seq1 \\
        --pairs consecutive:3
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from maqbool_ros.core.evaluation.machine import machine_line  # noqa: E402
from maqbool_ros.core.evaluation.relative_poses import parse_pairs  # noqa: E402
from maqbool_ros.core.verification import (  # noqa: E402
    LocalFeatureExtractor,
    VerificationParams,
    ambiguity,
    jackknife,
    verify,
)
from maqbool_ros.tools.dataset_args import add_dataset_args, open_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--pairs", default="consecutive:3")
    add_dataset_args(ap)
    args = ap.parse_args()
    ds = open_dataset(args, require_poses=True)
    pairs = parse_pairs(args.pairs, len(ds.frames), getattr(ds, "positives", None))
    ex = LocalFeatureExtractor(VerificationParams())
    feats = {i: ex.extract(ds.frames[i]) for i in {i for p in pairs for i in p}}
    print(machine_line())
    for module, attr, skip in ((ambiguity, "resolve", lambda pose, *a, **k: pose),
                               (jackknife, "essential_jackknife", lambda *a, **k: None)):
        original, stage = getattr(module, attr), []

        def timed(*a, _fn=original, **k):
            t0 = time.perf_counter()
            out = _fn(*a, **k)
            stage.append(time.perf_counter() - t0)
            return out

        for name, fn in (("without", skip), ("with", timed)):
            setattr(module, attr, fn)
            times = []
            for _ in range(2):  # the first pass warms up
                stage.clear()
                times = []
                for q, c in pairs:
                    t0 = time.perf_counter()
                    verify(feats[q], feats[c], ds.camera)
                    times.append(time.perf_counter() - t0)
            print(f"{name:8s} {attr}: verify per pair median {1e3 * np.median(times):.1f} ms, "
                  f"max {1e3 * np.max(times):.1f} ms ({len(pairs)} pairs)")
        setattr(module, attr, original)
        print(f"{attr} alone ({len(stage)} poses): median {1e3 * np.median(stage):.1f} ms, "
              f"max {1e3 * np.max(stage):.1f} ms")
    print(machine_line())


if __name__ == "__main__":
    main()
