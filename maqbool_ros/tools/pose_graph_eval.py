"""`maqbool eval --pose-graph`: the pose-graph part of the report (core/evaluation/pose_graph.py),
kept out of eval.py so that the evaluation tool stays small."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_pose_graph(report: dict[str, Any], args: argparse.Namespace, dataset: Any, records: list | None) -> None:
    """Add report["pose_graph"], print it, and write pose_graph.png into --plots when given."""
    from maqbool_ros.core.evaluation.pose_graph import plot_trajectories, pose_graph_report

    if not args.verify or records is None:
        raise ValueError("--pose-graph needs --verify and an offline run (the loops come from verification)")
    pg, traj = pose_graph_report(dataset, records)
    report["pose_graph"] = pg
    print(f"  pose graph: {pg['num_loops']} loops (+{pg['num_false_loops']} false): ATE before "
          f"{pg['ate_before_m']:.3f} m, after {pg['ate_after_m']:.3f} m, after with false loops "
          f"{pg['ate_after_with_false_loops_m']:.3f} m; RPE {pg['rpe_before_m']:.3f} -> {pg['rpe_after_m']:.3f} m")
    if args.plots:
        path = Path(args.plots) / "pose_graph.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_trajectories(traj, str(path))
        print(f"wrote {path}")
