"""MAQBOOL latency: proposals, region descriptors, re-ranking of top-100, PDL formats.

    python -m benchmarks.rerank [--image PATH] [--repeats 20] [--sizes 640x480,960x540] [--sizes-only]
                                [--config cfg.yaml]

Per input size first (--sizes; 960x540 is fed as the default config feeds it, keep_aspect
into 640x480 = 640x360, and natively, resize_policy native): the whole per-query cost the
rerank_deadline_ms clock covers for method maqbool at n = 50 with the configured default
decision layer: keyframe extras (proposals + region descriptors) and re-ranking of 100
candidates. --sizes-only stops after that table (about a minute).

Per keyframe (once): Edge Boxes proposals at several proposal-image sizes (and OpenCV's
default minBoxArea vs our 35 % bound), region descriptors (batched GEMM fast path vs
naive crop-and-aggregate). Per query: re-ranking of 100 candidates at n = 5, 10, 25, 50
(correlations, features, decision layer, distance update), and the decision layer alone
in both saved formats (.npz numpy trees vs .onnx onnxruntime), 50 and 100 trees.
Medians after a warm-up; CPU only (this code is numpy / OpenCV; the descriptor
network's GPU path belongs to the engine benchmark).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.evaluation.machine import machine_line  # noqa: E402
from maqbool_ros.core.rerank.blas import single_thread_blas  # noqa: E402
from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM  # noqa: E402
from maqbool_ros.core.rerank.maqbool.pdl import load_pdl  # noqa: E402
from maqbool_ros.core.rerank.maqbool.pdl_fit import to_pdl, train_forest  # noqa: E402
from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker  # noqa: E402
from maqbool_ros.core.rerank.regions.edge_boxes import filter_quantise_pad, propose_boxes  # noqa: E402
from maqbool_ros.core.rerank.regions.region_descriptors import region_descriptors, region_descriptors_naive  # noqa: E402
from maqbool_ros.core.types import Candidates  # noqa: E402

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared/data/rtabmap_loop/frames/0040.jpg"


def machine() -> str:
    return machine_line("numpy", "cv2", "onnxruntime", "sklearn")


def median_ms(fn, repeats: int, warmup: int = 2) -> str:
    """'wall / cpu' medians in ms. CPU time (process_time, all threads) is printed too
    because on a shared, oversubscribed machine wall time mostly measures the queue."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return f"{np.median(wall) * 1e3:.1f} / {np.median(cpu) * 1e3:.1f}"


def load_image(path: Path) -> np.ndarray:
    import cv2

    if path.is_file():
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    else:  # no shared data: a synthetic image with structure
        rng = np.random.default_rng(0)
        img = np.full((480, 640, 3), 60, np.uint8)
        for _ in range(12):
            x, y = rng.integers(0, 560), rng.integers(0, 400)
            img[y:y + rng.integers(30, 200), x:x + rng.integers(30, 250)] = rng.integers(0, 255, 3)
    return cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)


def synthetic_candidates(p: int, k: int = 100) -> tuple[Candidates, dict[str, np.ndarray]]:
    """k candidates stored as the database stores them (10 unit regions, float16)."""
    rng = np.random.default_rng(0)
    regions = rng.normal(size=(k, 10, p)).astype(np.float32)
    regions /= np.linalg.norm(regions, axis=2, keepdims=True)
    extras = {"maqbool_regions": regions.astype(np.float16),
              "maqbool_areas": rng.uniform(0.35, 1.0, (k, 10)).astype(np.float32)}
    d = np.sort(rng.uniform(0.5, 1.5, k)).astype(np.float32)
    return Candidates(np.arange(k), np.arange(k), ["r"] * k, np.zeros(k), d), extras


def size_table(cfg: MaqboolConfig, args) -> None:
    """Per input size and resize policy: keyframe extras + re-rank of 100 at n = 50."""
    import cv2

    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.maqbool.pdl import load_configured_pdl

    base = load_image(args.image)
    reps = max(5, args.repeats // 2)
    print(f"\nms wall / cpu, median of {reps}; load average {os.getloadavg()[0]:.1f}")
    print("\n| input | resize_policy | network image, map | keyframe extras (proposals + region descriptors) "
          "| re-rank top-100, n=50 | extras + re-rank |\n|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        img = cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA)
        for policy in ("keep_aspect", "native"):
            c = cfg.replace(resize_policy=policy, region_budget=50)
            engine = DescriptorEngine.from_config(c.replace(model_path=args.model or ""))
            out = engine.compute(img)
            if policy == "native" and out.image.shape[:2] == (480, 640) and (w, h) == (640, 480):
                continue  # same as keep_aspect
            rr = MaqboolReranker(c, engine.head, load_configured_pdl(c, engine.head, engine))
            cands, extras = synthetic_candidates(engine.head.output_dim)
            q, _ = rr.keyframe_extras(out)

            def extras_then_rerank():
                t0 = time.perf_counter()
                q, _ = rr.keyframe_extras(out)
                rr.rerank(q, cands, extras, t0 + 60)

            t_extras = median_ms(lambda: rr.keyframe_extras(out), reps)
            t_rerank = median_ms(lambda: rr.rerank(q, cands, extras, time.perf_counter() + 60), reps)
            t_both = median_ms(extras_then_rerank, reps)
            fm = out.feature_map.shape
            print(f"| {w}x{h} | {policy} | {out.image.shape[1]}x{out.image.shape[0]}, {fm[1]}x{fm[2]} cells | "
                  f"{t_extras} | {t_rerank} | {t_both} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--model", default="", help="ONNX model (default: embedded default)")
    ap.add_argument("--sizes", default="640x480,960x540", help="input sizes WxH for the per-size table")
    ap.add_argument("--sizes-only", action="store_true", help="only the per-size table")
    ap.add_argument("--config", default=None, help="YAML config for the per-size table (e.g. region_source, "
                    "region_min_area); method is set to maqbool")
    args = ap.parse_args()
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    print(machine())
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    cfg = (MaqboolConfig.from_yaml(args.config) if args.config else MaqboolConfig()).replace(method="maqbool")
    print(f"region_source {cfg.region_source}, region_min_area {cfg.region_min_area:g}")
    size_table(cfg, args)
    if args.sizes_only:
        return 0
    engine = DescriptorEngine.from_config(cfg.replace(model_path=args.model or ""))
    head = engine.head
    out = engine.compute(load_image(args.image))
    h, w = out.image.shape[:2]
    print(f"model {engine.metadata.get('backbone')} K={head.num_clusters} D={head.feature_dim} "
          f"P={head.output_dim}; image {w}x{h}, map {out.feature_map.shape[2]}x{out.feature_map.shape[1]}")
    r = args.repeats

    print("\n| per keyframe | ms wall / cpu (median) |\n|---|---|")
    for side, frac, reps in ((0, None, 3), (0, 0.35, r), (320, None, 5), (320, 0.35, r), (240, 0.35, r),
                             (160, 0.35, r)):
        label = f"Edge Boxes on {side or 'full'}-px side, minBoxArea {'35 %' if frac else 'default'}"
        print(f"| {label} | {median_ms(lambda: propose_boxes(out.image, side, min_area_fraction=frac), reps, 1)} |")
    cells = filter_quantise_pad(propose_boxes(out.image, 320)[0], w, h, out.stride)
    def fast_one_thread():
        with single_thread_blas():  # how the re-ranker runs it
            region_descriptors(out.feature_map, cells, head)

    print(f"| region descriptors, 50 boxes, fast, 1 BLAS thread (as used) | {median_ms(fast_one_thread, r)} |")
    print("| region descriptors, 50 boxes, fast, default BLAS threads | "
          f"{median_ms(lambda: region_descriptors(out.feature_map, cells, head), r)} |")
    print("| region descriptors, 50 boxes, naive crop + head | "
          f"{median_ms(lambda: region_descriptors_naive(out.feature_map, cells, head), 5, 1)} |")

    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(12000, FEATURE_DIM)).astype(np.float32)
    y_train = 1.0 + (x_train[:, 0] + 0.3 * x_train[:, 20] + 0.3 * rng.normal(size=12000) > 1.2)
    x100 = rng.normal(size=(100, FEATURE_DIM)).astype(np.float32)
    print("\n| decision layer, 100 rows | ms wall / cpu (median) |\n|---|---|")
    pdls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for trees in (50, 100):
            model = train_forest(x_train, y_train, trees=trees, seed=0)
            for fmt in ("npz", "onnx"):
                path = Path(tmp) / f"pdl{trees}.{fmt}"
                to_pdl(model, str(path)).save(path)
                pdl = pdls[(trees, fmt)] = load_pdl(path)
                print(f"| DT-{trees} .{fmt} | {median_ms(lambda: pdl.predict(x100), r)} |")
            print(f"| DT-{trees} scikit-learn predict (n_jobs=1) | {median_ms(lambda: model.predict(x100), r)} |")

    cands, extras = synthetic_candidates(head.output_dim)
    print("\n| re-rank top-100 (PDL DT-50 .npz unless noted) | n | ms wall / cpu (median) | correlation "
          "| features | pdl |")
    print("|---|---|---|---|---|---|")
    for n in (5, 10, 25, 50):
        for label, key, chunk in (("chunks of 25", (50, "npz"), 25), ("one chunk", (50, "npz"), 100),
                                  ("one chunk, DT-100 .onnx", (100, "onnx"), 100)):
            rr = MaqboolReranker(cfg.replace(region_budget=n), head, pdls[key], chunk_size=chunk)
            q, _ = rr.keyframe_extras(out)
            last = {}

            def go():
                last.update(rr.rerank(q, cands, extras, time.perf_counter() + 60).timings_ms)

            ms = median_ms(go, r)
            print(f"| {label} | {n} | {ms} | {last['correlation']:.1f} | {last['features']:.1f} | {last['pdl']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
