"""MAQBOOL vs NetVLAD recall@1/5/10 with cross-dataset PDL training.

    python -m benchmarks.maqbool_recall --eval ../shared/data/corridor \
        --train ../shared/data/gardens_point_sample ../shared/data/rtabmap_loop

Every image is described once per model (cached under --cache); the decision layer is
trained on --train (never on --eval) at n = --train-budget, then NetVLAD's top-K of
every --eval query is re-ranked at each region budget. With a model whose whitened
dim P exceeds 512 both D = 512 (first 512 whitened dims, re-normalised, as the paper)
and D = P are evaluated; alpha is the paper's value for D (1.15 / 0.31).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.data.datasets import load_dataset  # noqa: E402
from maqbool_ros.core.descriptor.netvlad_head import l2_normalize  # noqa: E402
from maqbool_ros.core.rerank.maqbool import training  # noqa: E402
from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl  # noqa: E402
from maqbool_ros.core.rerank.maqbool.pdl_fit import numpy_forest, train_forest  # noqa: E402
from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker, paper_alpha  # noqa: E402

KEYS = ("regions", "areas", "pad_region", "pad_area")


def describe_cached(engine, reranker, images, cache: Path, desc: str) -> tuple[np.ndarray, training.DescribedImages]:
    """(whitened (N, P), DescribedImages with D = P) for an image list, cached as npz."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # read each array once (z[k] re-reads the file)
        q = [{k: arrays[k][i] for k in KEYS} for i in range(len(arrays["whitened"]))]
        return arrays["whitened"], training.DescribedImages(arrays["whitened"], q, arrays["db_regions"],
                                                           arrays["db_areas"])
    from tqdm import tqdm

    whitened, queries, times = [], [], []
    for i in tqdm(range(len(images)), desc=desc, unit="img"):
        out = engine.compute(images[i])
        q, _ = reranker.keyframe_extras(out)
        whitened.append(out.whitened.astype(np.float32))
        queries.append(q)
        times.append(sum(reranker.last_extras_timings_ms.values()))
    print(f"{desc}: proposals + region descriptors median {np.median(times):.1f} ms")
    w = np.stack(whitened)
    stacked = {k: np.stack([q[k] for q in queries]) for k in KEYS}
    db_regions = stacked["regions"][:, :10].astype(np.float16)
    db_areas = stacked["areas"][:, :10].astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, whitened=w, db_regions=db_regions, db_areas=db_areas, **stacked)
    return w, training.DescribedImages(w, queries, db_regions, db_areas)


def cache_tag(model: str, cfg: MaqboolConfig) -> str:
    """Cache key of a model file (or the embedded default) and input size."""
    name = str(Path(model).resolve()) if model else "default"
    return hashlib.sha1(f"{name}|{cfg.image_width}x{cfg.image_height}".encode()).hexdigest()[:10]


def at_dim(whitened: np.ndarray, described: training.DescribedImages, dim: int) -> training.DescribedImages:
    return training.DescribedImages(l2_normalize(whitened[:, :dim], axis=1), described.query_extras,
                                    described.db_regions, described.db_areas)


def recall(pairs, orders, ns=(1, 5, 10, 100)) -> list[float]:
    hits = {n: [] for n in ns}
    for p, order in zip(pairs, orders):
        if p.has_positive:
            for n in ns:
                hits[n].append(bool(p.positive[order[:n]].any()))
    return [100.0 * float(np.mean(hits[n])) if hits[n] else float("nan") for n in ns]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", nargs="+", required=True)
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--model", default="", help="ONNX model (default: embedded default)")
    ap.add_argument("--cache", default="/tmp/maqbool_recall_cache")
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 25, 50])
    ap.add_argument("--train-budget", type=int, default=50)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--exclude-recent", type=int, default=20)
    args = ap.parse_args()
    for e in args.eval:
        if any(Path(e).resolve() == Path(t).resolve() for t in args.train):
            raise SystemExit(f"{e} is both a training and an evaluation set")

    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    cfg = MaqboolConfig(method="maqbool")
    engine = DescriptorEngine.from_config(cfg.replace(model_path=args.model or ""))
    reranker = MaqboolReranker(cfg, engine.head, UntrainedPdl())
    model_file = args.model or "default"
    tag = cache_tag(args.model, cfg)

    def load(path):
        ds = load_dataset(path)
        q_imgs, r_imgs = training.load_images(ds)
        rw, refs = describe_cached(engine, reranker, r_imgs, Path(args.cache) / f"{ds.name}_{tag}_ref.npz",
                                   f"{ds.name} refs")
        if q_imgs is r_imgs:
            return ds, (rw, refs), (rw, refs)
        qw, qs = describe_cached(engine, reranker, q_imgs, Path(args.cache) / f"{ds.name}_{tag}_query.npz",
                                 f"{ds.name} queries")
        return ds, (qw, qs), (rw, refs)

    train_sets = [load(p) for p in args.train]
    eval_sets = [load(p) for p in args.eval]
    p_dim = engine.head.output_dim
    dims = sorted({min(512, p_dim), p_dim})
    print(f"\nmodel {model_file} ({engine.metadata.get('backbone')}, P={p_dim}); PDL DT-{args.trees} trained on "
          f"{[d.name for d, _, _ in train_sets]} at n={args.train_budget}\n")
    print("| eval set | D | method | n | R@1 | R@5 | R@10 | R@100 |")
    print("|---|---|---|---|---|---|---|---|")
    for dim in dims:
        alpha = paper_alpha(dim)
        xs, ys = [], []
        for ds, (qw, qs), (rw, rs) in train_sets:
            q, r = at_dim(qw, qs, dim), at_dim(rw, rs, dim)
            pairs = training.candidate_lists(ds, q, r, args.top_k, args.exclude_recent)
            x, y = training.training_set(reranker, q, r, pairs, args.train_budget)
            xs.append(x)
            ys.append(y)
        forest = numpy_forest(train_forest(np.concatenate(xs), np.concatenate(ys), args.trees, seed=0))
        for ds, (qw, qs), (rw, rs) in eval_sets:
            q, r = at_dim(qw, qs, dim), at_dim(rw, rs, dim)
            pairs = training.candidate_lists(ds, q, r, args.top_k, args.exclude_recent)
            base = recall(pairs, [np.arange(len(p.candidates)) for p in pairs])
            print(f"| {ds.name} | {dim} | netvlad | - | " + " | ".join(f"{v:.1f}" for v in base) + " |")
            for n in args.budgets:
                orders = []
                for p in pairs:
                    prob = np.clip(forest.predict(training.pair_features(reranker, q, r, p, n)), 1e-6, None)
                    orders.append(np.argsort(np.abs(p.distances - alpha * np.log(prob)), kind="stable"))
                print(f"| {ds.name} | {dim} | maqbool | {n} | "
                      + " | ".join(f"{v:.1f}" for v in recall(pairs, orders)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
