"""Sequence-matching stage cost per keyframe (issue #22): run keys of the current hits,
the window, the run search (full or shortlist) and the merge, as the pipeline runs them.

    python -m benchmarks.sequence                       # 1k / 10k / 100k keyframes, ds 10 and 20
    python -m benchmarks.sequence --sizes 1000 --ds 10 --queries 50

The map is one robot's route of clustered 512-D unit descriptors (near neighbours exist);
the queries revisit a stretch of it in order with descriptor noise, so every window frame
has real hits (the shortlist's seeds), as on a revisit. Search k = top_k = 100, the default
exclusion rules; timings are wall-clock per keyframe after 20 warm-up queries.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before numpy/faiss load their thread pools
import numpy as np  # noqa: E402

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.database.keyframes import KeyframeDatabase  # noqa: E402
from maqbool_ros.core.evaluation.machine import machine_line  # noqa: E402
from maqbool_ros.core.sequence.stage import SequenceStage  # noqa: E402
from maqbool_ros.core.types import RerankResult, distance_scores  # noqa: E402

DIM, WARMUP = 512, 20


def route(n: int, seed: int = 0) -> np.ndarray:
    """n keyframes along a route: a slowly drifting descriptor (neighbours look alike)."""
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((n, DIM), dtype=np.float32)
    x = np.cumsum(steps * 0.35, axis=0) + rng.standard_normal((n, DIM), dtype=np.float32) * 3.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def run(n: int, ds: int, queries: int, cfg: MaqboolConfig) -> dict:
    data = route(n)
    db = KeyframeDatabase(DIM)
    for i, d in enumerate(data):
        db.add(i, "robot0", float(i), d)
    rng = np.random.default_rng(1)
    stage, start = SequenceStage(), n // 3
    cfg = cfg.replace(sequence_length=ds)
    rules = dict(robot_id="robot1", stamp=0.0, exclude_recent_keyframes=cfg.exclude_recent_keyframes,
                 exclude_recent_seconds=cfg.exclude_recent_seconds, robot_filter=cfg.robot_filter,
                 max_distance=cfg.max_descriptor_distance)
    times, modes, correct = [], set(), 0
    for q in range(WARMUP + queries):
        truth = start + q
        desc = data[truth] + rng.standard_normal(DIM).astype(np.float32) * 0.03
        desc /= np.linalg.norm(desc)
        cands, extras = db.search_with_extras(desc, cfg.top_k, **rules)
        rr = RerankResult(np.arange(len(cands)), cands.distances, distance_scores(cands.distances),
                          "netvlad_similarity", len(cands), True)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        ranked = stage.rank(cfg, db, ("robot1", ""), float(q + 1), desc, cands, extras, rr, rules, timings)
        if q >= WARMUP:
            times.append((time.perf_counter() - t0) * 1e3)
            correct += int(len(ranked.candidates) and abs(int(ranked.candidates.keyframe_ids[0]) - truth) <= 1)
        modes.add(ranked.search_mode)
    t = np.asarray(times)
    return {"n": n, "ds": ds, "p50": float(np.percentile(t, 50)), "p95": float(np.percentile(t, 95)),
            "mode": "/".join(sorted(modes)), "top1_within_1": correct / queries}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000", help="map sizes (keyframes), comma separated")
    p.add_argument("--ds", default="10,20", help="sequence lengths, comma separated")
    p.add_argument("--queries", type=int, default=200, help="timed queries per row (after 20 warm-up)")
    p.add_argument("--full-search-max", type=int, default=None,
                   help="override sequence_full_search_max (default: the schema's)")
    args = p.parse_args(argv)
    cfg = MaqboolConfig()
    if args.full_search_max is not None:
        cfg = cfg.replace(sequence_full_search_max=args.full_search_max)
    print(machine_line("numpy", "faiss"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'keyframes':>10} {'ds':>3} {'mode':>10} {'p50 ms':>8} {'p95 ms':>8} {'top-1 ok':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        for ds in (int(s) for s in args.ds.split(",")):
            r = run(n, ds, args.queries, cfg)
            print(f"{r['n']:>10} {r['ds']:>3} {r['mode']:>10} {r['p50']:>8.2f} {r['p95']:>8.2f} "
                  f"{r['top1_within_1']:>8.2f}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
