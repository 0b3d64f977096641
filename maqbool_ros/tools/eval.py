"""`maqbool eval`: recall@N, PR curve/AUC, max recall at 100% precision and latencies."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from maqbool_ros.core.config import NODE_NAME, MaqboolConfig
from maqbool_ros.tools.dataset_args import add_dataset_args, open_dataset
from maqbool_ros.tools.options import add_common_options, add_config_options, check_output_path, config_from_args

RECALL_NS = (1, 5, 10, 20)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate loop-closure recall/precision/latency on a dataset or bag",
        description="Run the evaluation protocol on a dataset and report recall@1/5/10/20, the "
                    "best-match precision-recall curve and its AUC, max recall at 100% precision and "
                    "per-stage latency p50/p95/p99. DATASET: a folder with query/, ref/, ground_truth.csv; "
                    "a folder with frames/ and loop_pairs.csv or poses.csv; or a ROS bag (db3, mcap, ROS 1). "
                    "Offline (default) runs the pipeline in this process; --online plays a bag to a running "
                    "maqbool-node; --candidates scores a bag recorded with `maqbool bag record-candidates`. "
                    "See docs/evaluation.md for the protocol and the JSON schema.")
    p.add_argument("--dataset", required=True,
                   help="dataset folder or bag, or synthetic-rgbd / synthetic-mono: the embedded SYNTHETIC room "
                        "loop with exact poses, intrinsics and (rgbd) depth")
    add_config_options(p, "method", "region_source", "region_budget", "top_k", "database_backend", "database_uri",
                       extra_help={"database_uri": "milvus: empty = a temporary milvus-lite file; a given "
                                                   "database must not hold keyframes in database_collection yet."})
    p.add_argument("--verify", action="store_true",
                   help="run geometric verification (verification_enabled) and add the `verified` object "
                        "(precision, recall, false positives, pose errors) to the report; without it "
                        "verification is off and only retrieval is scored")
    add_config_options(p, "verification_features", "verification_top_n")
    add_config_options(p, "sequence_length", "sequence_min_velocity", "sequence_max_velocity", "sequence_reverse",
                       "standardize_window")
    add_common_options(p, model=True, dim=True)
    p.add_argument("--pose-graph", action="store_true",
                   help="with --verify on a dataset with poses: optimise a pose graph (seeded noisy odometry + the "
                        "verified loops, GTSAM, robust kernel) with and without 20%% false loops; adds `pose_graph` "
                        "(ATE/RPE before/after) to the report and pose_graph.png to --plots")
    p.add_argument("--fit-on-refs", action="store_true",
                   help="first adapt the model to the dataset's map images (unsupervised k-means + PCA; "
                        "the map is known, queries are never used)")
    p.add_argument("--json", default=None, help="write the report as JSON here")
    p.add_argument("--csv", default=None, help="write one row per query here")
    p.add_argument("--plots", default=None, help="write recall_at_n.png, pr_curve.png, latency.png into this folder")
    add_dataset_args(p)
    mode = p.add_argument_group("online evaluation")
    mode.add_argument("--online", action="store_true",
                      help="play the bag to a running maqbool-node and score its answers")
    mode.add_argument("--candidates", default=None,
                      help="score LoopClosureCandidate messages recorded in this bag instead of running anything")
    mode.add_argument("--candidates-topic", default=None,
                      help="node output topic (default: the config's candidates_topic)")
    mode.add_argument("--node-image-topic", default=None,
                      help="--online: publish images on this topic instead of the bag's")
    mode.add_argument("--node-name", default=NODE_NAME,
                      help="--online, query/ref bags: node whose insert_keyframes is switched off for the queries")
    mode.add_argument("--rate", type=float, default=0.0,
                      help="--online: playback rate factor; 0 (default) = lock-step, one keyframe per answer")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> MaqboolConfig:
    """Config from --config and the command-line overrides (validated)."""
    return config_from_args(args)


def fit_model_on_refs(dataset, cfg, out_dir: Path, progress: bool = True) -> str:
    """Adapt the model to the map images (refs, or a sequence's frames) with the engine's
    fit code (as `maqbool fit`) and export it; returns the ONNX path."""
    try:
        from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
        from maqbool_ros.core.descriptor.fit import fit_model
    except ImportError as exc:
        raise ValueError(f"--fit-on-refs: model fitting is not available ({exc})") from None
    from maqbool_ros.core.descriptor.default_model import DEFAULT_DIM

    images = dataset.refs if dataset.kind == "query_ref" else dataset.frames
    loaders = [lambda i=i: images[i] for i in range(len(images))]
    size = (cfg.image_width, cfg.image_height)
    dim = cfg.descriptor_dim or DEFAULT_DIM
    model = fit_model(loaders, pca_dim=dim, image_size=size, resize_policy=cfg.resize_policy, progress=progress)
    out = out_dir / f"fitted_{dataset.name}_{dim}.onnx"
    meta = model_metadata(model, fitted_on=f"{dataset.source} ({len(images)} map images)", image_size=size,
                          resize_policy=cfg.resize_policy)
    return str(export_onnx(model, out, meta))


def run(args: argparse.Namespace) -> int:
    import tempfile

    from maqbool_ros.core.evaluation import report as eval_report
    from maqbool_ros.core.evaluation.protocol import evaluate_offline, records_from_candidates, summarize

    for flag, path, folder in (("--json", args.json, False), ("--csv", args.csv, False), ("--plots", args.plots, True)):
        check_output_path(flag, path, folder)  # before the evaluation, not after it
    dataset = open_dataset(args)
    cfg = build_config(args).replace(verification_enabled=bool(args.verify))
    command = command_line(args)
    model_info: dict = {}
    if args.candidates or args.online:
        if args.candidates:
            from maqbool_ros.core.data.bags import CANDIDATE_TYPE, read_messages

            messages = [m for _, ty, _, m in read_messages(args.candidates) if ty == CANDIDATE_TYPE]
        else:
            from maqbool_ros.ros.online_eval import collect_candidates

            topic = args.candidates_topic or "/" + cfg.candidates_topic.lstrip("/")
            messages = collect_candidates(args.dataset, image_topic=args.image_topic,
                                          node_image_topic=args.node_image_topic,
                                          candidates_topic=topic,
                                          rate=args.rate,
                                          num_refs=len(dataset.refs) if dataset.kind == "query_ref" else 0,
                                          node_name=args.node_name, progress=not args.quiet)
        if not messages:
            raise ValueError("no LoopClosureCandidate messages to score")
        records = records_from_candidates(dataset, messages)
        summary, mode = summarize(dataset, records, RECALL_NS, verify=args.verify), "online"
        method = messages[-1].method or cfg.method
        model_info = {"note": "online: the running node's model and parameters were used; "
                              "config below is this command's, not necessarily the node's"}
    else:
        if args.fit_on_refs:
            out_dir = Path(tempfile.mkdtemp(prefix="maqbool-fit-"))
            cfg = cfg.replace(model_path=fit_model_on_refs(dataset, cfg, out_dir, progress=not args.quiet))
        embedded = not cfg.model_path
        cfg, scratch = _milvus_for_eval(cfg)
        try:
            summary, records, pipeline = evaluate_offline(dataset, cfg, progress=not args.quiet,
                                                         verify=args.verify)
            pipeline.close()
        finally:
            if scratch is not None:
                import shutil

                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(cfg.database_uri)  # the in-process milvus-lite
                shutil.rmtree(scratch, ignore_errors=True)
        mode, method = "offline", cfg.method
        meta = getattr(pipeline.engine, "metadata", {}) or {}
        model_info = {"path": str(pipeline.engine.model_path), "embedded_default": embedded,
                      **{k: meta[k] for k in
                      ("backbone", "descriptor_dim", "pca_dim", "fitted_on") if k in meta}}
    report = eval_report.build_report(summary, dataset=dataset, method=method, mode=mode,
                                      config=cfg.to_dict(), command=command, model=model_info)
    if getattr(args, "pose_graph", False):
        from maqbool_ros.tools.pose_graph_eval import add_pose_graph

        add_pose_graph(report, args, dataset, records if mode == "offline" else None)
    print_summary(report)
    if args.json:
        eval_report.write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.csv:
        eval_report.write_csv(dataset, records, args.csv)
        print(f"wrote {args.csv}")
    if args.plots:
        for path in eval_report.write_plots(report, records, args.plots):
            print(f"wrote {path}")
    return 0


def _milvus_for_eval(cfg: MaqboolConfig) -> tuple[MaqboolConfig, Path | None]:
    """milvus backend: a temporary milvus-lite file unless database_uri is given; the
    protocol needs an empty map, so a given collection that holds keyframes is refused."""
    if cfg.database_backend != "milvus":
        return cfg, None
    if not cfg.database_uri:
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix="maqbool-eval-"))
        return cfg.replace(database_uri=str(scratch / "keyframes.db")), scratch
    from pymilvus import MilvusClient

    client = MilvusClient(uri=cfg.database_uri)
    try:
        if client.has_collection(cfg.database_collection):
            n = client.query(cfg.database_collection, filter="", output_fields=["count(*)"])[0]["count(*)"]
            if n:
                raise ValueError(f"database_uri: collection {cfg.database_collection!r} at {cfg.database_uri} "
                                 f"already holds {n} keyframes; the evaluation needs an empty map")
    finally:
        client.close()
    return cfg, None


def command_line(args: argparse.Namespace) -> str:
    """The effective command, rebuilt from the parsed options (also right when called in-process)."""
    parts = ["maqbool", "eval"]
    for key, value in vars(args).items():
        if key in ("func", "command") or key.startswith("_") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, shlex.quote(str(value))]
    return " ".join(parts)


def print_summary(report: dict) -> None:
    print(f"dataset {report['dataset']} ({report['dataset_info']['kind']}), method {report['method']}, "
          f"{report['mode']}: {report['num_queries']} queries, {report['num_queries_with_revisit']} with a revisit")
    print("  " + "  ".join(f"R@{n} {report[f'recall@{n}']:.3f}" for n in RECALL_NS)
          + f"  PR-AUC {report['pr_auc']:.3f}  maxR@P100 {report['max_recall_at_100_precision']:.3f}")
    for stage, row in report["latency_ms"].items():
        print(f"  {stage:>14} ms: p50 {row['p50']:8.1f}  p95 {row['p95']:8.1f}  p99 {row['p99']:8.1f}")
    v = report.get("verified")
    if v:
        fmt = lambda x, spec=".3f": "n/a" if x is None else format(x, spec)  # noqa: E731
        print(f"  verified: R@P100 {fmt(v['recall_at_100_precision'])}  precision {fmt(v['precision'])}  "
              f"recall {fmt(v['recall'])}  FP {v['false_positives']} (wrong pose {v['false_positives_wrong_pose']})"
              f"  TP {v['true_positives']}  rot err median {fmt(v['rotation_error_deg_median'], '.2f')} deg  "
              f"trans err median {fmt(v['translation_error_m_median'], '.3f')} m  "
              f"direction err median {fmt(v['translation_direction_error_deg_median'], '.2f')} deg")
