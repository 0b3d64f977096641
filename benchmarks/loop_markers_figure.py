"""The README's RViz-like figure: loop edges found on the real rtabmap_loop sequence, drawn the
way ~/loop_markers draws them (verified thick green, unverified thin orange) over a trajectory.

    python -m benchmarks.loop_markers_figure --data ../shared/data/rtabmap_loop \
        --out docs/figures/rtabmap_loop_markers.png

The candidates are real: each of the 84 frames goes through the loop-closure pipeline in order
(the node's defaults: the embedded NetVLAD model, the FAISS database, ORB verification with no
camera calibration, the last exclude_recent_keyframes frames excluded) and its top candidate is
kept, plus every verified one. The POSITIONS ARE A STAND-IN: the sample ships no poses. Its
loop_pairs.csv shows one lap every PERIOD = 40 frames (frame j revisits frames j-40 +- 2), so frame
i is drawn at angle 2 pi i / 40 on a circle whose radius grows by 0.12 per lap (the laps side by
side). Edges are then looked up by stamp exactly as the node does (core.integration.loop_graph).
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import cv2
import numpy as np

from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.integration.loop_graph import LoopGraph, Trajectory  # noqa: E402
from maqbool_ros.core.pipeline import LoopClosurePipeline  # noqa: E402

PERIOD = 40  # frames per lap, from loop_pairs.csv


def stand_in_position(i: int) -> tuple[float, float, float]:
    angle = 2 * np.pi * i / PERIOD
    radius = 1.0 + 0.12 * (i // PERIOD)
    return radius * np.cos(angle), radius * np.sin(angle), 0.0


def truth(root: Path) -> dict[int, set[int]]:
    pairs = {}
    for line in (root / "loop_pairs.csv").read_text().splitlines()[1:]:
        i, js = line.split(",")
        pairs[int(i)] = {int(j) for j in js.split()}
    return pairs


def run(root: Path) -> tuple[LoopGraph, dict, int]:
    frames = sorted((root / "frames").glob("*.jpg"))
    cfg = MaqboolConfig()  # the node's defaults
    pipe = LoopClosurePipeline(cfg)
    traj = Trajectory(tolerance_s=0.01)
    graph = LoopGraph(traj, max_edges=10_000, unverified_per_keyframe=1)
    counts = {"queries": 0, "top1_true": 0, "verified": 0, "verified_true": 0}
    gt = truth(root)
    try:
        for i, path in enumerate(frames):
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            traj.add(float(i), stand_in_position(i))
            result = pipe.query(pipe.describe(rgb, i, "rtabmap", float(i)))
            if result is None or not len(result):
                continue
            ids = [int(k) for k in result.keyframe_ids]
            verified = [bool(v) for v in result.checks.verified]
            keep = [0] + [k for k in range(1, len(ids)) if verified[k]]  # top-1 and every verified
            graph.add_result(("rtabmap", i), float(i), [(("rtabmap", ids[k]), float(ids[k]), verified[k],
                                                         float(result.scores[k])) for k in keep])
            if i in gt:
                counts["queries"] += 1
                counts["top1_true"] += ids[0] in gt[i]
            for k in keep:
                if verified[k]:
                    counts["verified"] += 1
                    counts["verified_true"] += ids[k] in gt.get(i, set())
    finally:
        pipe.close()
    return graph, counts, len(frames)


def plot(graph: LoopGraph, counts: dict, n: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = np.array([stand_in_position(i)[:2] for i in range(n)])
    fig, ax = plt.subplots(figsize=(5.2, 5.2), dpi=96)
    fig.patch.set_facecolor("#303030")
    ax.set_facecolor("#303030")
    ax.plot(xy[:, 0], xy[:, 1], color="#1964ff", lw=1.2, zorder=1, label="trajectory (stand-in layout)")
    ax.scatter(xy[:, 0], xy[:, 1], s=7, color="#999999", zorder=2)
    segments, _ = graph.segments()
    for verified, colour, width, label in ((False, "#ff8c00", 0.8, "unverified top-1"),
                                           (True, "#19e619", 2.4, "verified")):
        first = True
        for edge, a, b in segments:
            if edge.verified == verified:
                ax.plot([a[0], b[0]], [a[1], b[1]], color=colour, lw=width, alpha=0.9 if verified else 0.45,
                        zorder=3 if verified else 2, label=label if first else None)
                first = False
    for i in (0, PERIOD, n - 1):
        ax.annotate(str(i), xy[i], color="white", fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(loc="center", fontsize=7, facecolor="#404040", labelcolor="white", edgecolor="#606060")
    ax.set_title(f"rtabmap_loop, {n} real frames: loop edges as ~/loop_markers draws them\n"
                 f"verified {counts['verified_true']}/{counts['verified']} correct; top-1 correct on "
                 f"{counts['top1_true']}/{counts['queries']} revisits. Positions: stand-in circle, "
                 f"{PERIOD} frames a lap", color="white", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor())
    from PIL import Image  # matplotlib's own dependency; a 64-colour palette keeps the file small

    Image.open(buf).convert("RGB").quantize(64).save(out, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "rtabmap_loop")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/rtabmap_loop_markers.png"))
    args = parser.parse_args()
    if not (args.data / "loop_pairs.csv").exists():
        print(f"no rtabmap_loop data at {args.data}", file=sys.stderr)
        return 2
    graph, counts, n = run(args.data)
    plot(graph, counts, n, args.out)
    print(f"{n} frames, {len(graph)} edges; verified {counts['verified_true']}/{counts['verified']} correct; "
          f"top-1 correct on {counts['top1_true']}/{counts['queries']} revisiting frames -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
