"""`maqbool demo`: the whole system on a sequence, printing candidates and recall.

Without --dataset it runs on the embedded SYNTHETIC sequence (maqbool_ros.core.data.demo_sequence,
built from matplotlib's sample images: no download). The run loop takes a *runner*: the
real ROS node fed through a bag (``--runner node``, the default), or the in-process pipeline.
"""
from __future__ import annotations

import argparse
import time

from maqbool_ros.tools.dataset_args import add_dataset_args
from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args

DEMO_IMAGE_SIZE = (320, 240)  # the synthetic frames' own size: no upscaling, fast on a CPU


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
                 help="run the full pipeline on the embedded demo sequence (or --dataset) and print candidates and "
                      "recall",
        description="Run loop closure end to end and print each keyframe's best candidates and the "
                    "recall. With no --dataset it uses the embedded default sequence: SYNTHETIC frames "
                    "of a camera flying over a map composed from matplotlib's sample images, out, "
                    "back another way, and over the first street again with viewpoint and lighting "
                    "changes (known ground truth; no download). --dataset takes any dataset "
                    "`maqbool eval` takes, e.g. ../shared/data/corridor.")
    p.add_argument("--dataset", default=None, help="dataset folder or bag (default: the embedded synthetic sequence)")
    add_common_options(p, model=True, dim=True)
    add_config_options(p, "method", "sequence_length", "standardize_window")
    p.add_argument("--runner", choices=("node", "pipeline"), default="node",
                   help="node (default): the real ROS 2 node, fed over ROS topics from a temporary bag "
                        "(all in this process); pipeline: the same pipeline called directly, no ROS")
    p.add_argument("--show", type=int, default=3, help="candidates printed per keyframe (default 3)")
    add_dataset_args(p)
    p.set_defaults(func=run)


def demo_config(args: argparse.Namespace, synthetic: bool):
    """The config from --config and options, with the synthetic frames' own size when no config is given."""
    fixed = {}
    if synthetic and not args.config:
        fixed = {"image_width": DEMO_IMAGE_SIZE[0], "image_height": DEMO_IMAGE_SIZE[1]}
    return config_from_args(args, **fixed)


def print_result(dataset, index: int, keyframe_ids, scores, show: int) -> None:
    """One line per keyframe: its best candidates (with scores when known), marked against
    the ground truth: ok = a true revisit, -- = wrong place."""
    kind = dataset.kind
    names = dataset.queries.names if kind == "query_ref" else dataset.frames.names
    pos = set(int(p) for p in dataset.positives[index])
    if not len(keyframe_ids):
        if pos:  # silent otherwise: early frames have nothing outside the exclusion window
            print(f"  {names[index]:>18}: no candidate   (missed revisit {sorted(pos)})")
        return
    cells = []
    for rank, kf in enumerate(list(keyframe_ids)[:show]):
        mark = "ok" if int(kf) in pos else "--"
        score = f" ({float(scores[rank]):.3f})" if scores is not None else ""
        cells.append(f"{int(kf):4d}{score} {mark}")
    truth = f"  truth {sorted(pos)}" if pos else "  (no revisit)"
    print(f"  {names[index]:>18}: " + " | ".join(cells) + truth)


def run(args: argparse.Namespace) -> int:
    from maqbool_ros.core.evaluation import protocol as evaluation
    from maqbool_ros.tools.dataset_args import open_dataset
    from maqbool_ros.tools.eval import print_summary

    synthetic = args.dataset is None
    if synthetic:
        from maqbool_ros.core.data.demo_sequence import demo_sequence

        dataset = demo_sequence()
        print(f"maqbool demo: embedded SYNTHETIC sequence '{dataset.name}' ({len(dataset.frames)} frames, "
              f"{sum(1 for p in dataset.positives if len(p))} true revisits) rendered from matplotlib's "
              "sample images. A functional check, not a benchmark (see docs/results.md for real data).")
    else:
        dataset = open_dataset(args)
        print(f"maqbool demo: dataset {dataset.name} ({dataset.kind}) from {dataset.source}")
    cfg = demo_config(args, synthetic)
    print(f"method {cfg.method}, model {cfg.model_path or '(embedded default)'}, runner {args.runner}")
    t0 = time.perf_counter()
    if args.runner == "node":
        from maqbool_ros.ros.demo_runner import run_through_node

        messages = run_through_node(dataset, cfg, progress=not args.quiet)  # bars on stderr while the node works
        records = evaluation.records_from_candidates(dataset, messages)
        for r in records:
            print_result(dataset, r.query_index, r.ranked, r.scores, args.show)
        summary = evaluation.summarize(dataset, records)
    else:
        def show(index, result):
            ids = [] if result is None else list(result.keyframe_ids)  # ref / frame indices
            print_result(dataset, index, ids, None if result is None else list(result.scores), args.show)

        summary, records, _ = evaluation.evaluate_offline(dataset, cfg, progress=False, on_result=show)
    elapsed = time.perf_counter() - t0
    report = {"dataset": dataset.name, "dataset_info": {"kind": dataset.kind}, "method": cfg.method,
              "mode": args.runner, **summary}
    print_summary(report)
    print(f"done in {elapsed:.1f} s" + ("  [synthetic data]" if synthetic else ""))
    return 0
