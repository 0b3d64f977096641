"""Re-ranking deadline at 960x540: 200 queries through the offline pipeline, per method.

    python -m benchmarks.deadline_960 [--methods landmarks,maqbool] [--queries 200] [--native]

Data (built in memory, nothing written): the 84 frames of ../shared/data/rtabmap_loop
(512x384, real indoor run; $MAQBOOL_SHARED_DATA overrides ../shared/data) resized to
960x540 (aspect stretched). Map: the 84 frames plus
16 brightness-shifted copies = 100 refs, so every query gets the full top_k = 100
candidates (the worst case for re-ranking). Queries: 200 perturbed copies of the frames
(frame i % 84 with a seeded gain, shift of a few pixels and Gaussian noise), i.e. not new
places: this measures latency, not accuracy. Without the shared data the embedded
synthetic demo sequence (maqbool_ros.core.data.demo_sequence) is used the same way.

Protocol: maqbool_ros.core.evaluation.protocol (query_ref, as `maqbool eval`), default
config except method (maqbool at region_budget 50). One engine is shared by the methods.
--native: resize_policy native (the network sees 960x540: 34x60 cells) instead of the
default keep_aspect into 640x480 (640x360: 23x40 cells).

Printed per method: the deadline-governed span per query (extras + search + rerank, the
pipeline starts the rerank_deadline_ms clock before extras) as p50 / p95 / p99 / max,
and the number of queries whose re-ranking was cut by the deadline (complete == False).
The load average is printed before and after: wall times on a shared machine mostly
measure the queue.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.data.datasets import ImageList, QueryRefDataset  # noqa: E402
from maqbool_ros.core.evaluation.machine import machine_line  # noqa: E402
from maqbool_ros.core.evaluation.protocol import evaluate_offline  # noqa: E402

FRAMES = Path(os.environ.get("MAQBOOL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data")) \
    / "rtabmap_loop/frames"
SIZE = (960, 540)


def base_frames(folder: Path) -> tuple[list[np.ndarray], str]:
    """The source frames at 960x540 and a description of where they come from."""
    import cv2

    paths = sorted(folder.glob("*.jpg"))
    if paths:
        imgs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
        what = f"rtabmap_loop: {len(imgs)} real frames 512x384 resized to 960x540"
    else:
        from maqbool_ros.core.data.demo_sequence import demo_sequence

        seq = demo_sequence()
        imgs = [seq.frames[i] for i in range(len(seq.frames))]
        what = f"embedded SYNTHETIC demo sequence: {len(imgs)} frames resized to 960x540"
    return [cv2.resize(im, SIZE, interpolation=cv2.INTER_LINEAR) for im in imgs], what


def perturb(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded gain, a shift of up to 8 px and Gaussian noise (sigma 4)."""
    dx, dy = rng.integers(-8, 9, 2)
    out = np.roll(img.astype(np.float32) * rng.uniform(0.8, 1.2), (int(dy), int(dx)), axis=(0, 1))
    out += rng.normal(0.0, 4.0, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def build_dataset(folder: Path, num_queries: int, num_refs: int = 100) -> tuple[QueryRefDataset, str]:
    frames, what = base_frames(folder)
    rng = np.random.default_rng(0)
    n = len(frames)
    ref_src = [i % n for i in range(num_refs)]
    refs = [frames[i] if r < n else np.clip(frames[i].astype(np.int16) + 20, 0, 255).astype(np.uint8)
            for r, i in enumerate(ref_src)]
    q_src = [i % n for i in range(num_queries)]
    queries = [perturb(frames[i], rng) for i in q_src]
    positives = [np.array([r for r, s in enumerate(ref_src) if s == i], dtype=np.int64) for i in q_src]
    data = QueryRefDataset("deadline-960x540", ImageList.from_arrays(refs), ImageList.from_arrays(queries),
                           positives, source=what)
    return data, what


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="landmarks,maqbool")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--frames", type=Path, default=FRAMES, help="folder of *.jpg frames (default: rtabmap_loop)")
    ap.add_argument("--native", action="store_true", help="resize_policy native (960x540 into the network)")
    ap.add_argument("--max-regions", type=int, default=0, help="landmarks_max_regions (0: the default)")
    args = ap.parse_args()
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    data, what = build_dataset(args.frames, args.queries)
    base = MaqboolConfig(resize_policy="native") if args.native else MaqboolConfig()
    if args.max_regions:
        base = base.replace(landmarks_max_regions=args.max_regions)
    engine = DescriptorEngine.from_config(base)
    print(machine_line("numpy", "scipy", "onnxruntime", "faiss"))
    print(f"data: {what}; {len(data.refs)} refs, {len(data.queries)} perturbed queries (latency, not accuracy)")
    print(f"input 960x540, resize_policy {base.resize_policy} into {base.image_width}x{base.image_height}; "
          f"top_k {base.top_k}; rerank_deadline_ms {base.rerank_deadline_ms:.0f}; "
          f"landmarks_max_regions {base.landmarks_max_regions}")
    print("\n| method | load avg before/after | deadline span ms p50 / p95 / p99 / max | rerank ms p50 / max "
          "| deadline hits | R@1 | wall s |")
    print("|---|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        cfg = base.replace(method=method, region_budget=50) if method == "maqbool" else base.replace(method=method)
        load0, t0 = open("/proc/loadavg").read().split()[0], time.perf_counter()
        summary, records, _ = evaluate_offline(data, cfg, engine=engine, progress=False)
        wall, load1 = time.perf_counter() - t0, open("/proc/loadavg").read().split()[0]
        span = np.array([sum(r.timings_ms.get(k, 0.0) for k in ("extras", "search", "rerank")) for r in records])
        rerank = np.array([r.timings_ms.get("rerank", 0.0) for r in records])
        hits = sum(not r.complete for r in records)
        p = np.percentile(span, (50, 95, 99))
        r1 = summary.get("recall@1", float("nan"))
        print(f"| {method}{' n=50' if method == 'maqbool' else ''} | {load0} / {load1} | {p[0]:.0f} / {p[1]:.0f} / "
              f"{p[2]:.0f} / {span.max():.0f} | {np.median(rerank):.0f} / {rerank.max():.0f} | "
              f"{hits} of {len(records)} | {r1:.3f} | {wall:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
