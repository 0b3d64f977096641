"""Recall and verified loops against sequence length (issue #22), on the shared sets and the
night proxies, with the embedded default model and `maqbool eval`'s protocol.

    python -m benchmarks.sequence_recall                                  # table + figure
    python -m benchmarks.sequence_recall --datasets corridor --lengths 1,10 --no-figure
    python -m benchmarks.sequence_recall --dataset-dir night=/tmp/rtab_night_qr --standardize 0,30

Each dataset's images go through the network once (one engine output per image, shared by
every row). Rows: sequence_length x standardize_window, verification (ORB, defaults) on, so
each row also reports verified precision / recall and false verified loops. The figure
(docs/figures/sequence_length.png) plots R@1 and verified recall against sequence length.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SHARED = REPO.parent / "shared" / "data"
DEFAULT_SETS = ("corridor", "rtabmap_loop", "gardens_point_sample")


def evaluate(data, engine, length: int, window: int, verify: bool) -> dict:
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.evaluation.protocol import evaluate_offline

    cfg = MaqboolConfig(sequence_length=length, standardize_window=window, verification_enabled=verify)
    summary, _, _ = evaluate_offline(data, cfg, engine=engine, progress=False, verify=verify)
    v = summary.get("verified") or {}
    return {"recall@1": summary["recall@1"], "recall@5": summary["recall@5"], "pr_auc": summary["pr_auc"],
            "max_recall_at_100_precision": summary["max_recall_at_100_precision"],
            "verified_recall": v.get("recall"), "verified_precision": v.get("precision"),
            "false_verified": v.get("false_positives"),
            "sequence_ms_p95": summary["latency_ms"].get("sequence", {}).get("p95")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DEFAULT_SETS), help="folders in ../shared/data")
    p.add_argument("--dataset-dir", action="append", default=[], metavar="NAME=DIR",
                   help="an extra dataset folder (e.g. a night proxy written by `maqbool night-proxy`)")
    p.add_argument("--lengths", default="1,3,5,10,20", help="sequence lengths")
    p.add_argument("--standardize", default="0", help="standardize_window values")
    p.add_argument("--no-verify", action="store_true", help="skip geometric verification")
    p.add_argument("--json", default=None, help="write all rows here")
    p.add_argument("--figure", default=str(REPO / "docs" / "figures" / "sequence_length.png"))
    p.add_argument("--no-figure", action="store_true")
    p.add_argument("--replot", default=None, metavar="JSON", help="only draw the figure from rows written by --json")
    p.add_argument("--two-robots", nargs="+", default=None, metavar="NAME=DIR",
                   help="only the two-robot table: a sequence dataset's first half as robot A, second half as "
                        "robot B (one pipeline), R@1 of B's revisits against A's keyframes")
    p.add_argument("--sessions", nargs="+", default=None, metavar="NAME=DIR",
                   help="only the multi-session table: a night-proxy sequence (maqbool night-proxy OUT/sequence) "
                        "streamed as map 'day' (frames before the first loop pair) then map 'night', "
                        "map_filter inter_map, one robot; R@1 of the night frames")
    args = p.parse_args(argv)
    if args.two_robots:
        return two_robots([tuple(x.split("=", 1)) for x in args.two_robots])
    if args.sessions:
        return two_robots([tuple(x.split("=", 1)) for x in args.sessions], sessions=True)
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), Path(args.figure))
        print(f"wrote {args.figure}")
        return 0

    from benchmarks.results_table import CachingEngine
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.evaluation.machine import machine_line

    sets = [(n, SHARED / n) for n in args.datasets.split(",") if n]
    sets += [tuple(item.split("=", 1)) for item in args.dataset_dir]
    lengths = [int(x) for x in args.lengths.split(",")]
    windows = [int(x) for x in args.standardize.split(",")]
    engine = CachingEngine(DescriptorEngine.from_config(MaqboolConfig()))
    print(machine_line("numpy", "faiss", "onnxruntime"))
    print(f"{'dataset':<24} {'ds':>3} {'std':>4} {'R@1':>6} {'R@5':>6} {'PR-AUC':>7} {'maxR@P1':>8} "
          f"{'ver.R':>6} {'ver.P':>6} {'falseV':>6}")
    rows = []
    for name, folder in sets:
        data = load_dataset(folder)
        for window in windows:
            for length in lengths:
                r = {"dataset": name, "sequence_length": length, "standardize_window": window,
                     **evaluate(data, engine, length, window, not args.no_verify)}
                rows.append(r)
                cell = lambda x: "   -  " if x is None else f"{x:6.3f}"  # noqa: E731
                print(f"{name:<24} {length:>3} {window:>4} {r['recall@1']:6.3f} {r['recall@5']:6.3f} "
                      f"{r['pr_auc']:7.3f} {r['max_recall_at_100_precision']:8.3f} {cell(r['verified_recall'])} "
                      f"{cell(r['verified_precision'])} {str(r['false_verified']):>6}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.no_figure:
        plot(rows, Path(args.figure))
        print(f"wrote {args.figure}")
    return 0


def two_robots(sets: list[tuple[str, str]], sessions: bool = False) -> int:
    """R@1 of the second half's revisits of the first half, single-frame / sequences x
    standardisation: two robots (A, B), or with sessions one robot in two maps (day, night:
    the night starts at the first frame with a loop pair) and map_filter inter_map."""
    from benchmarks.results_table import CachingEngine
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    engine = CachingEngine(DescriptorEngine.from_config(MaqboolConfig()))
    for name, folder in sets:
        data = load_dataset(folder)
        half = next(i for i, p in enumerate(data.positives) if len(p)) if sessions else len(data.frames) // 2
        for length, window in ((1, 0), (1, 30), (10, 0), (10, 30)):
            cfg = MaqboolConfig(sequence_length=length, standardize_window=window, verification_enabled=False,
                                exclude_recent_seconds=0.0, map_filter="inter_map" if sessions else "all")
            pipe, hits, revisits = LoopClosurePipeline(cfg, engine=engine), 0, 0
            for i in range(len(data.frames)):
                second = i >= half
                kf = pipe.describe(data.frames[i], i, "B" if second and not sessions else "A", float(i))
                kf.map_id = ("night" if second else "day") if sessions else ""
                res = pipe.query(kf)
                truth = [int(x) for x in data.positives[i] if x < half]
                if second and truth:
                    revisits += 1
                    hits += bool(len(res)) and int(res.keyframe_ids[0]) in truth and (
                        sessions or res.robot_ids[0] == "A")
            print(f"{name:<20} {'sessions' if sessions else 'two robots'} sequence_length {length:>2} "
                  f"standardize_window {window:>2}: second part R@1 {hits}/{revisits} = "
                  f"{hits / max(revisits, 1):.3f}", flush=True)
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    names = sorted({r["dataset"] for r in rows})
    colours = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for (name, window) in sorted({(r["dataset"], r["standardize_window"]) for r in rows}):
        sel = [r for r in rows if r["dataset"] == name and r["standardize_window"] == window]
        style = dict(color=colours[name], marker="o", linestyle="--" if window else "-",
                     label=name + (f" (std {window})" if window else ""))
        x = [r["sequence_length"] for r in sel]
        axes[0].plot(x, [r["recall@1"] for r in sel], **style)
        axes[1].plot(x, [r["verified_recall"] or 0.0 for r in sel], **style)
    axes[0].set(xlabel="sequence_length", ylabel="recall@1", title="Retrieval R@1", ylim=(0, 1.02))
    axes[1].set(xlabel="sequence_length", ylabel="verified recall (ORB)", title="Verified loops", ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("maqbool_ros sequence matching, embedded default model (night rows: photometric proxy)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
