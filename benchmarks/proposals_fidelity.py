"""How faithful are the fast Edge Boxes settings? Box recall against the full-size run.

    python -m benchmarks.proposals_fidelity [--images DIR] [--count 20]

Reference: Edge Boxes on the full 640x480 image with its default minBoxArea (1000 px),
then the spec's filter / quantise / pad to 50 cells. For each fast setting we report, over
the reference's real (non-padding) cells, the mean best IoU with the fast setting's cells,
the fraction recovered at IoU >= 0.7, the number of real boxes, and CPU time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from maqbool_ros.core.rerank.regions.edge_boxes import filter_quantise_pad, padding_box, propose_boxes  # noqa: E402

W, H, S = 640, 480, 16
SETTINGS = ((0, None), (0, 0.35), (320, None), (320, 0.35), (240, 0.35), (160, 0.35))


def cells_for(img, side, frac):
    t = time.process_time()
    boxes, _ = propose_boxes(img, side, min_area_fraction=frac)
    cpu = time.process_time() - t
    cells = filter_quantise_pad(boxes, W, H, S)
    real = cells[(cells != padding_box(W, H, S)).any(axis=1)]
    return real, cpu


def iou(a, b):
    ax1, ay1, bx1, by1 = a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(a[:, 0:1], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(a[:, 1:2], b[:, 1]), 0, None)
    inter = iw * ih
    return inter / (a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter)


def main() -> int:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared/data/rtabmap_loop/frames")
    ap.add_argument("--count", type=int, default=20)
    args = ap.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = paths[:: max(1, len(paths) // args.count)][: args.count]
    imgs = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (W, H), interpolation=cv2.INTER_AREA)
            for p in paths]
    refs = [cells_for(img, *SETTINGS[0])[0] for img in imgs]
    print(f"{len(imgs)} images from {args.images}; reference = full size, default minBoxArea\n")
    print("| proposal side | minBoxArea | real boxes (mean) | mean best IoU vs ref "
          "| ref boxes found (IoU >= 0.7) | CPU ms (median) |")
    print("|---|---|---|---|---|---|")
    for side, frac in SETTINGS:
        best, found, counts, cpus = [], [], [], []
        for img, ref in zip(imgs, refs):
            real, cpu = cells_for(img, side, frac)
            counts.append(len(real))
            cpus.append(cpu * 1e3)
            if len(ref) and len(real):
                m = iou(ref.astype(float), real.astype(float)).max(axis=1)
                best.append(m.mean())
                found.append((m >= 0.7).mean())
        print(f"| {side or 'full'} | {'35 %' if frac else 'default'} | {np.mean(counts):.1f} | {np.mean(best):.3f} | "
              f"{100 * np.mean(found):.0f} % | {np.median(cpus):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
