"""`maqbool train-pdl`: train MAQBOOL's probabilistic decision layer from labelled pairs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args

TREE_COUNTS = (50, 100)  # the paper's DT-50 / DT-100


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-pdl", help="train MAQBOOL's decision layer (bagged trees) from a dataset",
        description="Describe every image of one or more datasets with the descriptor model, take "
                    "each query's NetVLAD top-K candidates, build MAQBOOL's 112-D pair features "
                    "(eqs 1-10, docs/method-reference.md M5) labelled 1 + isPos, fit a bagged regression forest "
                    "(RandomForestRegressor, TreeBagger defaults) and save it without pickle: "
                    ".npz (numpy tree format) or .onnx (onnxruntime). Datasets: query/ + ref/ + "
                    "ground_truth.csv, or a sequence (frames/ + loop_pairs.csv), or a whole corpus (--corpus). "
                    "Train on data other than what you evaluate on; use the node's config (--config: model, "
                    "descriptor dim, image size, region source) so the layer fits the node's model.")
    p.add_argument("--dataset", nargs="+", default=[], help="dataset folder(s) to train on (ground-truth labels)")
    p.add_argument("--corpus", metavar="DIR", default=None,
                   help="a corpus built by `maqbool build-corpus`: trains on every dataset its corpus.json lists "
                        "and records each source's name, licence and origin in the layer's metadata")
    p.add_argument("--bag", nargs="+", default=[], metavar="RUN",
                   help="recorded run(s) (ROS bag): labels from geometric verification of each frame's top "
                        "--verify-top candidates (verified loop = positive, rejection = negative); the bag's "
                        "ground truth, if any, is ignored")
    p.add_argument("--verify-top", type=int, default=10,
                   help="with --bag: candidates per frame checked by verification (default %(default)s)")
    p.add_argument("--out", required=True, help="output file, .npz or .onnx")
    add_common_options(p, model=True, dim=True)
    add_config_options(p, "top_k", "region_budget", "region_source", "exclude_recent_keyframes", "maqbool_mode",
                       aliases={"exclude_recent_keyframes": ("--exclude-recent",)},
                       extra_help={"exclude_recent_keyframes": "Here: sequence datasets' frames this close to "
                                                           "the query are not candidates."})
    p.add_argument("--trees", type=int, default=TREE_COUNTS[0], choices=TREE_COUNTS,
                   help="trees in the forest (DT-50 / DT-100; default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the forest")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.maqbool.pdl_fit import to_pdl
    from maqbool_ros.core.rerank.maqbool.training import train_pdl

    out = Path(args.out)
    if out.suffix.lower() not in (".npz", ".onnx"):
        raise ValueError(f"--out: {out} must end in .npz or .onnx")
    if bool(args.dataset or args.corpus) == bool(args.bag):
        raise ValueError("train-pdl: give either --dataset and/or --corpus (ground truth) or --bag "
                         "(verification labels)")
    if args.bag and args.verify_top < 1:
        raise ValueError(f"--verify-top: must be >= 1, got {args.verify_top}")
    cfg = config_from_args(args, method="maqbool")
    if args.bag:
        from maqbool_ros.core.rerank.maqbool.bag_labels import bag_sequence
        from maqbool_ros.core.verification.params import VerificationParams

        datasets = [bag_sequence(path) for path in args.bag]
        labels = {"verify_top": args.verify_top, "verification": VerificationParams.from_config(cfg)}
    else:
        datasets = [load_dataset(path) for path in args.dataset]  # all checked before the long part
        labels = {}
        if args.corpus:
            from maqbool_ros.core.data.corpus import corpus_datasets

            extra, corpus_sources = corpus_datasets(args.corpus)
            datasets += extra
    engine = DescriptorEngine.from_config(cfg, progress=not args.quiet)
    model, meta = train_pdl(engine, datasets, cfg, trees=args.trees, seed=args.seed, progress=not args.quiet,
                            **labels)
    if args.corpus:
        meta["corpus"] = {"path": str(Path(args.corpus).resolve()), "sources": corpus_sources}
    out.parent.mkdir(parents=True, exist_ok=True)
    to_pdl(model, str(out), meta).save(out)
    print(f"wrote {out}: {json.dumps(meta)}")
    return 0
