"""`maqbool train-pdl`: train MAQBOOL's probabilistic decision layer from labelled pairs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-pdl", help="train MAQBOOL's decision layer (bagged trees) from a dataset",
        description="Describe every image of one or more datasets with the descriptor model, take "
                    "each query's NetVLAD top-K candidates, build MAQBOOL's 112-D pair features "
                    "(eqs 1-10, docs/method-reference.md M5) labelled 1 + isPos, fit a bagged regression forest "
                    "(RandomForestRegressor, TreeBagger defaults) and save it without pickle: "
                    ".npz (numpy tree format) or .onnx (onnxruntime). Datasets: query/ + ref/ + "
                    "ground_truth.csv, or a sequence (frames/ + loop_pairs.csv). Train on data "
                    "other than what you evaluate on; use the same model (and descriptor dim) "
                    "as the node.")
    p.add_argument("--dataset", required=True, nargs="+", help="dataset folder(s) to train on")
    p.add_argument("--model", default="", help="descriptor ONNX model (default: the embedded default model)")
    p.add_argument("--out", required=True, help="output file, .npz or .onnx")
    p.add_argument("--trees", type=int, default=50, choices=(50, 100), help="trees in the forest (DT-50 / DT-100)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the forest")
    p.add_argument("--top-k", type=int, default=100, help="candidates per query (K)")
    p.add_argument("--region-budget", type=int, default=50, help="query regions n used for the features (5..50)")
    p.add_argument("--exclude-recent", type=int, default=20,
                   help="sequence datasets: frames closer than this to the query are not candidates")
    p.add_argument("--config", default=None, help="YAML config (image size, resize policy, region_source)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.rerank.maqbool import training
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl, to_pdl, train_forest
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

    out = Path(args.out)
    if out.suffix.lower() not in (".npz", ".onnx"):
        raise ValueError(f"--out: {out} must end in .npz or .onnx")
    cfg = MaqboolConfig.from_yaml(args.config) if args.config else MaqboolConfig()
    cfg = cfg.replace(region_budget=args.region_budget, method="maqbool")
    engine = make_engine(cfg, args.model)
    reranker = MaqboolReranker(cfg, engine.head, UntrainedPdl())
    xs, ys, names = [], [], []
    for path in args.dataset:
        ds = load_dataset(path)
        q_imgs, r_imgs = training.load_images(ds)
        refs = training.describe_images(engine, reranker, r_imgs, desc=f"{ds.name} refs")
        queries = refs if q_imgs is r_imgs else training.describe_images(engine, reranker, q_imgs,
                                                                         desc=f"{ds.name} queries")
        pairs = training.candidate_lists(ds, queries, refs, args.top_k, args.exclude_recent)
        x, y = training.training_set(reranker, queries, refs, pairs, args.region_budget)
        xs.append(x)
        ys.append(y)
        names.append(ds.name)
        print(f"{ds.name}: {len(pairs)} queries, {len(y)} pairs, {int((y > 1.5).sum())} positive")
    x, y = np.concatenate(xs), np.concatenate(ys)
    model = train_forest(x, y, trees=args.trees, seed=args.seed)
    meta = {"descriptor_dim": int(engine.head.descriptor_dim), "region_dim": int(engine.head.output_dim),
            "backbone": str(engine.metadata.get("backbone", "")), "trees": args.trees, "seed": args.seed,
            "trained_on": names, "pairs": int(len(y)), "positives": int((y > 1.5).sum()),
            "top_k": args.top_k, "region_budget": args.region_budget,
            "region_source": cfg.region_source, "oob_r2": float(getattr(model, "oob_score_", float("nan")))}
    out.parent.mkdir(parents=True, exist_ok=True)
    to_pdl(model, str(out), meta).save(out)
    print(f"wrote {out}: {json.dumps(meta)}")
    return 0


def make_engine(cfg, model_path: str):
    """The descriptor engine for a config (the embedded default model when no path is given)."""
    from maqbool_ros.core.descriptor.default_model import default_model_path
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    path = model_path or cfg.model_path or default_model_path()
    return DescriptorEngine(path, device=cfg.device, fp16=cfg.fp16,
                            image_size=(cfg.image_width, cfg.image_height), resize_policy=cfg.resize_policy)
