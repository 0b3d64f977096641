"""The one false verified loop on corridor at default thresholds (query 61 -> ref 64; ground truth
refs 59-63): draws query 61 beside refs 59, 61, 63, 64, 65 with the fundamental-matrix inliers
(green verified, red rejected) and prints, for refs 55-68, the verification result and a
whole-image similarity (correlation after an affine ECC alignment) as evidence of what ref 64 shows.
The figure is written outside the repository (the data must not be committed).

    PYTHONPATH=$PWD python -m benchmarks.corridor_case --data ../shared/data --out /tmp/corridor_q61.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, verify

QUERY, SHOWN, SCAN = 61, (59, 61, 63, 64, 65), range(55, 69)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding corridor/")
    ap.add_argument("--out", type=Path, default=Path("/tmp/corridor_q61.png"))
    args = ap.parse_args()
    root = args.data / "corridor"
    gt = {int(a): [int(x) for x in b.split()] for a, b in
          (line.split(",") for line in (root / "ground_truth.csv").read_text().splitlines()[1:] if line)}
    ex = LocalFeatureExtractor(VerificationParams())
    q = cv2.imread(str(root / "query" / f"{QUERY:07d}.jpg"))
    fq = ex.extract(q[:, :, ::-1])
    g = cv2.cvtColor(q, cv2.COLOR_BGR2GRAY).astype(np.float32)
    tiles, s = [], 3
    print(f"query {QUERY}, ground-truth refs {gt[QUERY]}")
    for r in SCAN:
        img = cv2.imread(str(root / "ref" / f"{r:07d}.jpg"))
        fr = ex.extract(img[:, :, ::-1])
        v = verify(fq, fr, None)
        h = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        try:
            cc, _ = cv2.findTransformECC(g, h, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE,
                                         (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6), None, 5)
        except cv2.error:
            cc = float("nan")
        label = "GT positive" if r in gt[QUERY] else "not in GT"
        print(f"ref {r}: {v.num_inliers:2d}/{v.num_matches:2d} inliers, verified {v.verified!s:5s}, "
              f"ECC-affine correlation {cc:.3f}  ({label})")
        if r in SHOWN:
            pair = np.hstack([cv2.resize(q, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST),
                              cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)])
            for i, j in v.inliers:
                a = tuple(int(x) for x in fq.keypoints[i] * s)
                b = tuple(int(x) for x in fr.keypoints[j] * s + [q.shape[1] * s, 0])
                cv2.line(pair, a, b, (0, 255, 0) if v.verified else (0, 0, 255), 1)
            cv2.putText(pair, f"query {QUERY} | ref {r}: {v.num_inliers}/{v.num_matches} inliers ({label})",
                        (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 2)
            tiles.append(pair)
    cv2.imwrite(str(args.out), np.vstack(tiles))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
