"""Evaluation report files: JSON (schema in docs/evaluation.md), per-query CSV, PNG plots.

The JSON records how the numbers were made next to the numbers: command line, full
config, git commit, package version, machine and library versions.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.evaluation.machine import machine_info

SCHEMA = "maqbool-eval/1"


def git_commit(repo: str | Path | None = None) -> str:
    """HEAD commit of the source tree (suffix "-dirty" with local changes), or "unknown"."""
    repo = Path(repo or Path(__file__).resolve().parents[2])
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_report(summary: dict[str, Any], *, dataset: Any, method: str, mode: str, config: dict[str, Any],
                 command: str, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document: headline metrics at the top level, provenance beside them."""
    from maqbool_ros import __version__

    report: dict[str, Any] = {"schema": SCHEMA, "method": method, "mode": mode, "dataset": dataset.name}
    report.update(summary)
    report.update({
        "dataset_info": {"name": dataset.name, "path": dataset.source, "kind": dataset.kind,
                         "num_refs": len(dataset.refs) if dataset.kind == "query_ref" else 0,
                         "num_frames": len(dataset.frames) if dataset.kind == "sequence" else 0},
        "model": model or {},
        "config": config,
        "command": command,
        "git_commit": git_commit(),
        "version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    })
    return report


def write_json(report: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_csv(dataset: Any, records: Sequence[Any], path: str | Path, top: int = 5) -> None:
    """One row per query: its positives, top candidates, confidence, correctness, timings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stages = sorted({s for r in records for s in r.timings_ms if "." not in s})
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query_index", "positives", f"top{top}", "confidence", "correct_at_1",
                    "first_positive_rank", "reranking_complete", "best_verified", "best_verified_inliers"]
                   + [f"{s}_ms" for s in stages])
        for r in records:
            pos = set(int(p) for p in dataset.positives[r.query_index])
            rank = next((i + 1 for i, c in enumerate(r.ranked) if int(c) in pos), "")
            w.writerow([r.query_index, " ".join(map(str, sorted(pos))), " ".join(map(str, r.ranked[:top])),
                        f"{r.confidence:.6g}", int(bool(len(r.ranked)) and int(r.ranked[0]) in pos), rank,
                        int(r.complete)] + _verified_cells(r)
                       + [f"{r.timings_ms.get(s, float('nan')):.3f}" for s in stages])


def _verified_cells(r: Any) -> list:
    hits = np.flatnonzero(np.asarray(getattr(r, "verified", ()), dtype=bool))
    return [int(r.ranked[hits[0]]), int(r.num_inliers[hits[0]])] if len(hits) else ["", ""]


def write_plots(report: dict[str, Any], records: Sequence[Any], out_dir: str | Path) -> list[Path]:
    """recall_at_n.png, pr_curve.png, verified_pr_curve.png (with --verify) and latency.png
    (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{report['dataset']} · {report['method']}"
    written = []

    fig, ax = plt.subplots(figsize=(5, 3.5))
    curve = report["recall_curve"]
    ax.plot(curve["n"], curve["recall"], marker=".")
    ax.set(xscale="log", xlabel="N", ylabel="recall@N", ylim=(0, 1.02), title=title)
    ax.grid(True, alpha=0.3)
    written.append(_save(fig, out / "recall_at_n.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    pr = report["pr_curve"]
    if pr["recall"]:
        ax.step([0.0] + pr["recall"], [pr["precision"][0]] + pr["precision"], where="post")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
           title=f"{title} · AUC {report['pr_auc']:.3f}")
    ax.grid(True, alpha=0.3)
    written.append(_save(fig, out / "pr_curve.png"))

    if report.get("verified"):
        written.append(_verified_pr_plot(report, title, out / "verified_pr_curve.png"))

    stages = [s for s in report["latency_ms"]]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(3.2 * max(1, len(stages)), 3), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        values = [r.timings_ms[stage] for r in records if stage in r.timings_ms]
        ax.hist(values, bins=30)
        ax.axvline(report["latency_ms"][stage]["p50"], color="k", ls="--", lw=1)
        ax.set(title=f"{stage} (p50 {report['latency_ms'][stage]['p50']:.1f} ms)", xlabel="ms")
    fig.suptitle(title)
    written.append(_save(fig, out / "latency.png"))
    return written


def _verified_pr_plot(report: dict[str, Any], title: str, path: Path) -> Path:
    """Verified loops accepted from the most inliers down, beside the unverified best-match curve."""
    import matplotlib.pyplot as plt

    v = report["verified"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for pr, label in ((report["pr_curve"], "best match (unverified score)"),
                      (v["pr_curve"], "best verified (inlier count)")):
        if pr["recall"]:
            ax.step([0.0] + pr["recall"], [pr["precision"][0]] + pr["precision"], where="post", label=label)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
           title=f"{title} · verified R@P100 {v['recall_at_100_precision']:.3f}, FP {v['false_positives']}")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
