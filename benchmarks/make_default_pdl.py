"""Regenerate the shipped default decision layer, maqbool_ros/core/maqbool/data/default_pdl.onnx.

    python benchmarks/make_default_pdl.py [--data ../shared/data] [--cache /tmp/maqbool_recall_cache]

Trains DT-50 (seed 0, n = 50, K = 100) with the embedded default model on every labelled
set in ../shared/data (corridor, gardens_point_sample, rtabmap_loop): the only labelled
images available here (no TokyoTM). Recall figures in docs/maqbool.md never use this
file: they use PDLs trained on the *other* datasets (benchmarks/maqbool_recall.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from maqbool_recall import cache_tag, describe_cached  # noqa: E402

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.datasets import load_dataset  # noqa: E402
from maqbool_ros.core.maqbool import training  # noqa: E402
from maqbool_ros.core.maqbool.default_pdl import DATA_DIR, DEFAULT_PDL_NAME  # noqa: E402
from maqbool_ros.core.maqbool.pdl import UntrainedPdl, to_pdl, train_forest  # noqa: E402
from maqbool_ros.core.maqbool.reranker import MaqboolReranker  # noqa: E402

DATASETS = ("corridor", "gardens_point_sample", "rtabmap_loop")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    ap.add_argument("--cache", default="/tmp/maqbool_recall_cache")
    ap.add_argument("--out", type=Path, default=DATA_DIR / DEFAULT_PDL_NAME)
    args = ap.parse_args()
    from maqbool_ros.tools.train_pdl import make_engine

    cfg = MaqboolConfig(method="maqbool")
    engine = make_engine(cfg, "")
    reranker = MaqboolReranker(cfg, engine.head, UntrainedPdl())
    tag = cache_tag("", cfg)
    xs, ys = [], []
    for name in DATASETS:
        ds = load_dataset(args.data / name)
        q_imgs, r_imgs = training.load_images(ds)
        _, refs = describe_cached(engine, reranker, r_imgs, Path(args.cache) / f"{ds.name}_{tag}_ref.npz", name)
        queries = refs if q_imgs is r_imgs else describe_cached(
            engine, reranker, q_imgs, Path(args.cache) / f"{ds.name}_{tag}_query.npz", name)[1]
        pairs = training.candidate_lists(ds, queries, refs, 100, 20)
        x, y = training.training_set(reranker, queries, refs, pairs, 50)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    model = train_forest(x, y, trees=50, seed=0)
    meta = {"descriptor_dim": int(engine.head.descriptor_dim), "region_dim": int(engine.head.output_dim),
            "backbone": str(engine.metadata.get("backbone", "")), "trees": 50, "seed": 0,
            "trained_on": list(DATASETS), "pairs": int(len(y)), "positives": int((y > 1.5).sum()),
            "top_k": 100, "region_budget": 50, "region_source": "edge_boxes",
            "model": "embedded default", "oob_r2": float(model.oob_score_)}
    to_pdl(model, str(args.out), meta).save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
