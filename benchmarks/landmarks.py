"""ConvNet-landmark latency on CPU: region mining (+ pooling, words) and matching vs top-K.

Run: python -m benchmarks.landmarks [--repeats 10] [--candidates 100] [--words 1000]
         [--cases mobilenetv2] [--sizes-m 50,100,200]

A second table gives the matching cost alone vs the number of candidates K and the region
budget M (it grows with K * M^2 and does not depend on the image size).
     python -m benchmarks.landmarks --study ../shared/data/corridor [--vocab vocab.npz]

--study: accuracy of landmark variants (pooling support, M, vocabulary) on a query/ref
dataset, re-ranking the NetVLAD top-100 of every query, from one engine pass per image.

Synthetic but realistically sparse maps (smoothed noise, ReLU) at stride 16 for the default
backbone (MobileNetV2 features.13/12: 96 channels) and VGG16 (conv5_3/conv5_2: 512
channels): 640x480 input (30x40 cells), 960x540 input as the default config feeds it
(keep_aspect into 640x480: 640x360, 23x40 cells) and natively (resize_policy native:
34x60 cells), plus the paper's 224x224 VGG16 (14x14). Mining is per query keyframe
(keyframe_extras); matching is one query against K candidates stored as the database
stores them (float16, padded to M): its cost grows with K * M * m * D and does not depend
on the image size. Prints medians after a warm-up, wall / CPU (process time, all threads)
in ms: on a shared machine the wall time mostly measures the queue, so the load average
is printed too.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # the project's CI budget: 2 cores

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

CASES = (  # name, guidance channels, feature channels, map H, W
    ("mobilenetv2 640x480", 96, 96, 30, 40),
    ("mobilenetv2 960x540 -> 640x360 (default keep_aspect)", 96, 96, 23, 40),
    ("mobilenetv2 960x540 native", 96, 96, 34, 60),
    ("vgg16 640x480", 512, 512, 30, 40),
    ("vgg16 960x540 native", 512, 512, 34, 60),
    ("vgg16 224x224 (paper)", 512, 512, 14, 14),
)


def synthetic_output(seed: int, c: int, d2: int, h: int, w: int):
    from maqbool_ros.core.types import EngineOutput

    rng = np.random.default_rng(seed)
    fmap = ndimage.gaussian_filter(rng.standard_normal((c, h, w)), sigma=(0, 1.2, 1.2)).astype(np.float32)
    fmap -= 0.5 * fmap.std()  # about a quarter of the cells active after ReLU, in blobs
    feats = rng.standard_normal((d2, h, w)).astype(np.float32)
    return EngineOutput(np.zeros(8, np.float32), np.zeros(8, np.float32), fmap, feats,
                        np.zeros((h * 16, w * 16, 3), np.uint8), 16)


def median_ms(fn, repeats: int, warmup: int = 3) -> str:
    """'wall / cpu' medians in ms."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return f"{statistics.median(wall):.1f} / {statistics.median(cpu):.1f}"


def machine() -> str:
    from maqbool_ros.core.evaluation.machine import machine_line

    return machine_line("numpy", "scipy", "faiss")


def study(path: str, vocab_path: str | None, top_k: int, sizes: list[int]) -> None:
    """Recall@1/5/10 and best-match PR-AUC of landmark variants on a query/ref dataset."""
    from tqdm import tqdm

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_query_ref_folder
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.evaluation.metrics import best_match_pr_curve, recall_at_n
    from maqbool_ros.core.rerank.landmarks import LandmarkReranker, Vocabulary
    from maqbool_ros.core.types import Candidates

    data = load_query_ref_folder(path)
    engine = DescriptorEngine(None, device="cpu")
    refs = [engine.compute(data.refs[i]) for i in tqdm(range(len(data.refs)), desc="refs")]
    queries = [engine.compute(data.queries[i]) for i in tqdm(range(len(data.queries)), desc="queries")]
    ref_desc = np.stack([o.descriptor for o in refs])
    variants = [(f"{support}, M={m}, no vocab" + (" (default)" if (support, m) == ("rect", 200) else ""),
                 dict(support=support), m, None) for m in sizes for support in ("rect", "component")]
    if vocab_path:
        vocab = Vocabulary.load(vocab_path)
        variants += [(f"{support}, M=200, vocab {Path(vocab_path).name}", dict(support=support), 200, vocab)
                     for support in ("rect", "component")]
    print(f"dataset {path}: {len(queries)} queries, {len(refs)} refs, NetVLAD top-{top_k} re-ranked; "
          f"model {engine.metadata['backbone']} {engine.metadata.get('feature_map', '')}")
    print("| variant | R@1 | R@5 | R@10 | PR-AUC |")
    print("|---|---|---|---|---|")
    dists = [np.sum((ref_desc - q.descriptor) ** 2, axis=1) for q in queries]
    orders = [np.argsort(d, kind="stable")[:top_k] for d in dists]
    ranked = [o.tolist() for o in orders]
    best = [o[0] for o in orders]
    conf = [1.0 - d[o[0]] / 4.0 for d, o in zip(dists, orders)]
    r = recall_at_n(ranked, data.positives, (1, 5, 10))
    auc = best_match_pr_curve(best, conf, data.positives).auc
    print(f"| netvlad (no re-ranking) | {r[1]:.3f} | {r[5]:.3f} | {r[10]:.3f} | {auc:.3f} |")
    for name, kwargs, m, vocab in variants:
        rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=m), vocabulary=vocab, **kwargs)
        db = [rr.keyframe_extras(o)[1] for o in refs]
        ranked, best, conf = [], [], []
        for q, d, o in zip(queries, dists, orders):
            extras = {key: np.stack([db[i][key] for i in o]) for key in db[0]}
            cands = Candidates(o, o, ["map"] * len(o), np.zeros(len(o)), d[o].astype(np.float32))
            res = rr.rerank(rr.keyframe_extras(q)[0], cands, extras, time.perf_counter() + 600)
            ranked.append(o[res.order].tolist())
            best.append(o[res.order[0]])
            conf.append(float(res.scores[res.order[0]]))
        r = recall_at_n(ranked, data.positives, (1, 5, 10))
        auc = best_match_pr_curve(best, conf, data.positives).auc
        print(f"| {name} | {r[1]:.3f} | {r[5]:.3f} | {r[10]:.3f} | {auc:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--words", type=int, default=1000, help="vocabulary size for word assignment")
    parser.add_argument("--cases", default="", help="only cases whose name contains this (e.g. mobilenetv2)")
    parser.add_argument("--sizes-m", default="50,100,200", help="region budgets M for the latency table")
    parser.add_argument("--study", default=None,
                        help="query/ref dataset folder: accuracy of variants instead of latency")
    parser.add_argument("--vocab", default=None, help="--study: also evaluate with this vocabulary")
    parser.add_argument("--sizes", default="50,100,200,400", help="--study: region budgets M to compare")
    args = parser.parse_args()
    if args.study:
        study(args.study, args.vocab, args.candidates, [int(m) for m in args.sizes.split(",")])
        return

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.rerank.landmarks import LandmarkReranker, Vocabulary, mine_regions
    from maqbool_ros.core.types import Candidates

    k = args.candidates
    print(f"machine: {machine()}")
    print(f"load average at start: {open('/proc/loadavg').read().split()[0]}")
    print(f"top-K candidates: {k}; vocabulary: {args.words} random words; median of {args.repeats} after 3 warm-up "
          "runs; ms wall / cpu")
    print()
    print(f"| case | map HxW | M | regions | label+select | extras (mine+pool+words) | match K={k} |")
    print("|---|---|---|---|---|---|---|")
    for name, c, d2, h, w in (case for case in CASES if args.cases in case[0]):
        rng = np.random.default_rng(0)
        vocab = Vocabulary(rng.standard_normal((args.words, d2)).astype(np.float32),
                           rng.uniform(0, 3, args.words), 1000)
        outs = [synthetic_output(s, c, d2, h, w) for s in range(8)]
        for m in (int(v) for v in args.sizes_m.split(",")):
            rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=m), vocabulary=vocab)
            query, _ = rr.keyframe_extras(outs[0])
            dbs = [rr.keyframe_extras(o)[1] for o in outs[1:]]
            extras = {key: np.stack([dbs[i % len(dbs)][key] for i in range(k)]) for key in dbs[0]}
            cands = Candidates(np.arange(k), np.arange(k), ["r"] * k, np.zeros(k),
                               np.sort(rng.uniform(0, 2, k)).astype(np.float32))
            guidance = np.maximum(outs[0].feature_map, 0)
            t_select = median_ms(lambda: mine_regions(guidance, m, keep_ties=False), args.repeats)
            t_extras = median_ms(lambda: rr.keyframe_extras(outs[0]), args.repeats)
            t_match = median_ms(lambda: rr.rerank(query, cands, extras, time.perf_counter() + 60), args.repeats)
            print(f"| {name} | {h}x{w} | {m} | {len(query['vectors'])} | {t_select} | {t_extras} | {t_match} |",
                  flush=True)
    scaling_table(args.repeats)
    print(f"load average at end: {open('/proc/loadavg').read().split()[0]}")


def scaling_table(repeats: int, dim: int = 96) -> None:
    """rerank() cost vs candidates K and region budget M (m = M query regions, D = 96):
    random unit vectors stored as the database stores them; the work is K * M * m * D."""
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.rerank.landmarks import LandmarkReranker
    from maqbool_ros.core.types import Candidates

    sizes_k, sizes_m = (25, 50, 100, 200), (50, 100, 200, 400)
    print(f"\nmatching only (rerank), D = {dim}, m = M, ms wall / cpu; rows: top-K candidates, columns: M")
    print("| K | " + " | ".join(f"M={m}" for m in sizes_m) + " |")
    print("|---|" + "---|" * len(sizes_m))
    rng = np.random.default_rng(0)
    for k in sizes_k:
        row = []
        for m in sizes_m:
            vec = rng.standard_normal((k + 1, m, dim)).astype(np.float32)
            vec /= np.linalg.norm(vec, axis=2, keepdims=True)
            rr = LandmarkReranker(MaqboolConfig(method="landmarks", landmarks_max_regions=m))
            query = {"vectors": vec[0], "weights": np.ones(m, np.float32)}
            extras = {"lm_vectors": vec[1:].astype(np.float16), "lm_weights": np.ones((k, m), np.float32),
                      "lm_count": np.full((k, 1), m, np.int32)}
            cands = Candidates(np.arange(k), np.arange(k), ["r"] * k, np.zeros(k),
                               np.sort(rng.uniform(0, 2, k)).astype(np.float32))
            row.append(median_ms(lambda: rr.rerank(query, cands, extras, time.perf_counter() + 60), repeats))
        print(f"| {k} | " + " | ".join(row) + " |", flush=True)

if __name__ == "__main__":
    main()
