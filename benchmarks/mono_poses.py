"""Monocular poses on the synthetic RGB-D room loop (core/data/rgbd_sequence.py, without depth):
each of the 35 revisiting frames verified against its most co-visible earlier frame, the pose
compared with the exact ground truth. Prints per pair the model chosen (verification/twoview.py),
inliers, parallax, rotation and translation-direction errors, the rotation error's Mahalanobis
distance under the reported covariance (chi-square, 3 dof: 7.81 at 95 %), and a summary.

    PYTHONPATH=$PWD python -m benchmarks.mono_poses
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from maqbool_ros.core.data import rgbd_sequence as rs
from maqbool_ros.core.evaluation.verified import pose_errors, pose_within_tolerance
from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, verify

CHI2_3DOF_95 = 7.81


def main() -> None:
    seq = rs.synthetic_mono_sequence()
    ex = LocalFeatureExtractor(VerificationParams())
    feats = [dataclasses.replace(ex.extract(f), depths=None) for f in seq.frames]
    overlap = rs.covisibility(seq.poses)
    both = np.minimum(overlap, overlap.T)
    rows = []
    print(" q ->  c  model                 inliers    parallax  rot err  dir err  rot sd  Mahalanobis")
    for q in range(len(seq.frames)):
        pos = seq.positives[q]
        if not len(pos):
            continue
        c = int(pos[np.argmax(both[q, pos])])
        T_gt = seq.relative_pose(q, c)
        v = verify(feats[q], feats[c], seq.camera)
        if not v.verified:
            print(f"{q:2d} -> {c:2d}  not verified ({v.num_inliers}/{v.num_matches})")
            continue
        e = pose_errors(v.T, T_gt, v.pose_type)
        d = cv2.Rodrigues(T_gt[:3, :3] @ v.R.T)[0].ravel()  # R_true = exp([d]x) R_est
        S = v.covariance[3:, 3:]
        maha = float(d @ np.linalg.solve(S, d))
        ok = pose_within_tolerance(e)
        rows.append((v.translation_known, ok, e, maha))
        print(f"{q:2d} -> {c:2d}  {v.model:20s} {v.num_inliers:4d}/{v.num_matches:4d} {v.parallax_deg:8.2f} "
              f"{e['rotation_deg']:8.2f} {e['translation_direction_deg']:8.2f} "
              f"{np.degrees(np.sqrt(np.trace(S))):7.2f} {maha:10.1f}{'' if ok else '  outside tolerance'}")
    full = [r for r in rows if r[0]]
    rot_only = [r for r in rows if not r[0]]
    print(f"verified {len(rows)}; outside tolerance {sum(not r[1] for r in rows)}; "
          f"full pose {len(full)}, rotation only (t unknown) {len(rot_only)}")
    print(f"median rotation error {np.median([r[2]['rotation_deg'] for r in rows]):.2f} deg; median direction "
          f"error {np.nanmedian([r[2]['translation_direction_deg'] for r in rows]):.2f} deg (full poses)")
    for name, rs_ in (("full pose", full), ("rotation only", rot_only)):
        print(f"rotation Mahalanobis <= {CHI2_3DOF_95} (95 %): {sum(r[3] <= CHI2_3DOF_95 for r in rs_)}/{len(rs_)} "
              f"{name}")


if __name__ == "__main__":
    main()
