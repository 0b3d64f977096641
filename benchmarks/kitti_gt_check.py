"""Is the KITTI relative-pose disagreement the ground truth's or the estimator's?

On kitti_snippets/seq1 (monocular, poses.txt from KITTI's GPS/INS), four estimators are run on
every pair (i + k, i) for k in --gaps: the library's ORB at 640 px (the default), ORB at full size
with 2000 features, SIFT at full size (verification/verify.py with its covariance), and plain
OpenCV (SIFT at full size, ratio 0.8, findEssentialMat RANSAC at --cv-threshold px, recoverPose).
Printed:

1. per pair outside the default's 95 % bound: every estimator's rotation / direction error
   against the ground truth and the rotation spread among the estimators (agreement test);
2. loop consistency: R(i+6,i+3) R(i+3,i) vs R(i+6,i) of each estimator (the ground truth's is
   exact), against the same pairs' errors vs the ground truth;
3. per-frame offsets: rotation errors e(q, c) = log(R_gt R_est^T) fitted as a_c - a_q (one
   3-vector per frame, what an error in the ground truth's per-frame orientations would give);
   offsets fitted on one estimator, applied to the others (cross-validation across features);
4. inlier Sampson residuals (px and weighted) of the default at its estimate, at the exact ground
   truth, and at the ground-truth rotation with the direction re-optimised; where the added cost
   at the ground truth lies (worst 10 % of points, near vs far by flow, densest image cell).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python -m benchmarks.kitti_gt_check [--dataset DIR]
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from maqbool_ros.core.data.posed import load_posed
from maqbool_ros.core.evaluation.relative_poses import CHI2_95, nees
from maqbool_ros.core.verification import geometry as geo
from maqbool_ros.core.verification.features import LocalFeatureExtractor
from maqbool_ros.core.verification.params import VerificationParams
from maqbool_ros.core.verification.verify import verify

GROSS_DEG = 1.0  # a rotation error above this is a failed estimate (wrong minimum), not noise
LATE = 13  # poses.txt rotates at a constant rate over frames 0..12 (section 5): pairs from here on avoid it
DEFAULT_DATASET = "/work/shared/data/kitti_snippets/seq1"
ESTIMATORS = {"orb640": {}, "orb_full2k": {"max_image_side": 0, "max_features": 2000},
              "sift_full": {"features": "sift", "max_image_side": 0}}


def rot_log(R: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.ascontiguousarray(R, np.float64))[0].ravel()


def deg(x) -> float:
    return float(np.degrees(np.linalg.norm(x)))


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def opencv_sift(frames, pairs, K: np.ndarray, threshold: float) -> dict:
    """Plain OpenCV: SIFT at full size, ratio 0.8, findEssentialMat (RANSAC) + recoverPose."""
    sift = cv2.SIFT_create()
    feats = {i: sift.detectAndCompute(np.asarray(frames[i]), None) for i in sorted({f for p in pairs for f in p})}
    bf = cv2.BFMatcher(cv2.NORM_L2)
    out = {}
    for q, c in pairs:
        (kq, dq), (kc, dc) = feats[q], feats[c]
        m = [a for a, b in bf.knnMatch(dc, dq, k=2) if a.distance < 0.8 * b.distance]
        xc = np.float64([kc[a.queryIdx].pt for a in m])
        xq = np.float64([kq[a.trainIdx].pt for a in m])
        E, mask = cv2.findEssentialMat(xc, xq, K, cv2.RANSAC, 0.9999, threshold)
        if E is None or E.shape[0] < 3:
            continue
        _, R, t, _ = cv2.recoverPose(E[:3], xc, xq, K, mask=mask.copy())
        out[(q, c)] = {"R": R, "t": t.ravel() / np.linalg.norm(t), "cov": None}
    return out


def run_library(dataset, pairs, overrides: dict) -> dict:
    p = VerificationParams(**overrides)
    ex = LocalFeatureExtractor(p)
    feats = {i: ex.extract(dataset.frames[i]) for i in sorted({f for pr in pairs for f in pr})}
    out = {}
    for q, c in pairs:
        v = verify(feats[q], feats[c], dataset.camera, params=p)
        if v.verified:  # rotation-only poses (t unknown) count for the rotation, as in `maqbool poses`
            out[(q, c)] = {"R": v.R, "t": v.t if v.translation_known else None, "cov": v.covariance, "v": v,
                           "fq": feats[q], "fc": feats[c], "k": v.variance_factor}
    return out


def errors(est: dict, T_gt: np.ndarray) -> dict:
    known = est["t"] is not None
    e = {"e_rot": rot_log(T_gt[:3, :3] @ est["R"].T), "dir": angle_deg(est["t"], T_gt[:3, 3]) if known else np.nan}
    if est["cov"] is not None:
        n = nees(geo.make_T(est["R"], est["t"] if known else np.zeros(3)), est["cov"], T_gt,
                 "rotation_unit_translation", known)
        e.update(nees_r=n["pose"], nees_d=n["direction"])
    return e


def fit_offsets(errs: dict, n_frames: int) -> np.ndarray:
    """Per-frame a_i (3,) with e(q, c) ~ a_c - a_q, least squares, gauge: minimum norm."""
    keys = sorted(errs)
    A = np.zeros((3 * len(keys), 3 * n_frames))
    b = np.zeros(3 * len(keys))
    for r, (q, c) in enumerate(keys):
        A[3 * r:3 * r + 3, 3 * c:3 * c + 3] = np.eye(3)
        A[3 * r:3 * r + 3, 3 * q:3 * q + 3] = -np.eye(3)
        b[3 * r:3 * r + 3] = errs[(q, c)]
    return np.linalg.lstsq(A, b, rcond=None)[0].reshape(n_frames, 3)


def residual_table(dataset, est: dict, T_gt: np.ndarray) -> dict:
    """Sampson residuals of the default's inliers at its pose, at the exact ground truth and at the
    ground-truth rotation with the direction re-optimised (2 parameters, Gauss-Newton)."""
    v, cam = est["v"], dataset.camera
    xq = cam.undistort_pixels(est["fq"].keypoints[v.inliers[:, 0]])
    xc = cam.undistort_pixels(est["fc"].keypoints[v.inliers[:, 1]])
    sq = est["fq"].keypoint_sigmas(v.inliers[:, 0])
    sc = est["fc"].keypoint_sigmas(v.inliers[:, 1])
    K = cam.K
    R_gt, t_gt = T_gt[:3, :3], T_gt[:3, 3] / np.linalg.norm(T_gt[:3, 3])
    t_fit = t_gt.copy()
    for _ in range(10):  # direction only, rotation held at the ground truth's
        B = np.linalg.svd(t_fit.reshape(1, 3))[2][1:].T

        def f(d, t=t_fit, B=B):
            return geo.sampson_residuals(R_gt, (t + B @ d) / np.linalg.norm(t + B @ d), xc, xq, K, sc, sq)
        r0 = f(np.zeros(2))
        J = np.stack([(f(h) - f(-h)) / 2e-6 for h in np.eye(2) * 1e-6], axis=1)
        d = -np.linalg.lstsq(J, r0, rcond=None)[0]
        t_fit = (t_fit + B @ d) / np.linalg.norm(t_fit + B @ d)
    out = {}
    for name, (R, t) in {"est": (v.R, v.t), "gt": (R_gt, t_gt), "gtR_fit_t": (R_gt, t_fit)}.items():
        out[name + "_px"] = geo.sampson_residuals(R, t, xc, xq, K)
        out[name + "_w"] = geo.sampson_residuals(R, t, xc, xq, K, sc, sq)
    out["flow"] = np.linalg.norm(xq - xc, axis=1)
    out["xy"] = xq
    out["t_fit_vs_est_deg"] = angle_deg(t_fit, v.t)
    return out


def where(res: dict, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Share of the added cost (gt - est, weighted) from the worst 10 % of points; the share of
    points whose residual grows; rms px at gt of the far (small flow) and near halves."""
    d = res["gt_w"] ** 2 - res["est_w"] ** 2
    tot = d.sum()
    top = np.sort(d)[::-1][: max(1, len(d) // 10)].sum() / tot if tot > 0 else float("nan")
    far = res["flow"] <= np.median(res["flow"])

    def rms(x):
        return float(np.sqrt(np.mean(x ** 2)))
    # densest cell of an 8 x 3 grid: its share of the added cost over its share of the points
    w, h = size
    cell = (np.clip(res["xy"][:, 0] * 8 // w, 0, 7) * 3 + np.clip(res["xy"][:, 1] * 3 // h, 0, 2)).astype(int)
    shares = [(d[cell == k].sum() / tot) / max(np.mean(cell == k), 1e-9) for k in range(24) if np.sum(cell == k) >= 5]
    return top, float(np.mean(d > 0)), rms(res["gt_px"][far]) - rms(res["est_px"][far]), \
        rms(res["gt_px"][~far]) - rms(res["est_px"][~far]), float(max(shares)) if shares else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=DEFAULT_DATASET, help="KITTI-layout folder with poses.txt")
    ap.add_argument("--gaps", default="1,3,6", help="frame gaps k of the pairs (i + k, i); 3 and 6 for loops")
    ap.add_argument("--cv-threshold", type=float, default=0.75, help="plain OpenCV RANSAC threshold, px")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = load_posed(args.dataset)
    if ds is None:
        raise SystemExit(f"{args.dataset}: not a posed dataset")
    n = len(ds.frames)
    gaps = [int(g) for g in args.gaps.split(",")]
    pairs = [(i + k, i) for k in gaps for i in range(n - k)]
    res = {name: run_library(ds, pairs, o) for name, o in ESTIMATORS.items()}
    res["cv_sift"] = opencv_sift(ds.frames, pairs, ds.camera.K, args.cv_threshold)
    names = list(res)
    gt = {pr: ds.relative_pose(*pr) for pr in pairs}
    err = {m: {pr: errors(e, gt[pr]) for pr, e in res[m].items()} for m in names}
    print(f"{args.dataset}: {n} frames, pairs {len(pairs)} (gaps {gaps}); estimators {names}")

    print("\n== summary per estimator, gap 3 (rotation / direction error vs GT; NEES coverage) ==")
    for m in names:
        e3 = [e for pr, e in err[m].items() if pr[0] - pr[1] == 3]
        ed = [e for e in e3 if np.isfinite(e["dir"])]
        cov = [np.mean([e["nees_r"] <= CHI2_95[3] for e in e3]), np.mean([e["nees_d"] <= CHI2_95[2] for e in ed])] \
            if "nees_r" in e3[0] else [float("nan")] * 2
        rmed, dmed = np.median([deg(e["e_rot"]) for e in e3]), np.median([e["dir"] for e in ed])
        print(f"{m:11s} verified {len(e3):2d} (direction {len(ed):2d}): rot median {rmed:.3f} deg, dir median "
              f"{dmed:.2f} deg; rot NEES in 95 % {cov[0]:.3f}, dir {cov[1]:.3f}")

    base = err["orb640"]
    out = [pr for pr in pairs if pr[0] - pr[1] == 3 and pr in base
           and (base[pr]["nees_r"] > CHI2_95[3] or base[pr]["nees_d"] > CHI2_95[2])]  # nan > x is False
    print("\n== 1. gap-3 pairs outside orb640's 95 % bound: rotation error vs GT (deg) per estimator, spread "
          "among estimators (rms of e_m - mean), |mean e|; direction error (deg) ==")
    print("pair    " + " ".join(f"{m:>11s}" for m in names) + "  spread  |mean|  "
          + " ".join(f"d_{m:>9s}" for m in names))
    for pr in out:
        es = [err[m][pr]["e_rot"] for m in names if pr in err[m]]
        mean = np.mean(es, axis=0)
        spread = np.degrees(np.sqrt(np.mean([np.sum((e - mean) ** 2) for e in es])))
        print(f"{pr[0]:2d}-{pr[1]:2d}  " + " ".join(f"{deg(err[m][pr]['e_rot']) if pr in err[m] else np.nan:11.3f}"
                                                    for m in names)
              + f"  {spread:6.3f}  {deg(mean):6.3f}  " + " ".join(
                  f"{err[m][pr]['dir'] if pr in err[m] else np.nan:11.2f}" for m in names))

    if 3 in gaps and 6 in gaps:
        print("\n== 2. loop consistency (i+6,i+3)(i+3,i) vs (i+6,i): median / 90th pct, deg ==")
        for m in names:
            comp, e6 = [], []
            for i in range(n - 6):
                a, b, c = (i + 3, i), (i + 6, i + 3), (i + 6, i)
                if all(k in res[m] for k in (a, b, c)):
                    comp.append(deg(rot_log(res[m][b]["R"] @ res[m][a]["R"] @ res[m][c]["R"].T)))
                    e6.append(deg(err[m][c]["e_rot"]))
            print(f"{m:11s} triples {len(comp):2d}: composition error {np.median(comp):.3f} / "
                  f"{np.percentile(comp, 90):.3f}; error of (i+6,i) vs GT {np.median(e6):.3f} / "
                  f"{np.percentile(e6, 90):.3f}")

    print("\n== 3. per-frame rotation offsets a_i (e(q,c) ~ a_c - a_q), fitted on a row's pairs with error < "
          f"{GROSS_DEG} deg, subtracted from a column's: median |e| (deg) before / after ==")
    good = {m: {pr: e["e_rot"] for pr, e in err[m].items() if deg(e["e_rot"]) < GROSS_DEG} for m in names}
    offs = {m: fit_offsets(good[m], n) for m in names}

    def med(m, a):
        return np.median([deg(e - (a[pr[1]] - a[pr[0]])) for pr, e in good[m].items()])
    zero = np.zeros((n, 3))
    print("fit on \\ test " + " ".join(f"{m:>11s}" for m in names))
    print(f"{'(none)':13s} " + " ".join(f"{med(m, zero):11.3f}" for m in names))
    for f in names:
        print(f"{f:13s} " + " ".join(f"{med(m, offs[f]):11.3f}" for m in names))
    print("pairs used: " + ", ".join(f"{m} {len(good[m])}" for m in names))
    a = offs["cv_sift"]
    print("cv_sift offset of frame i relative to frame i-3, |a_i - a_(i-3)| deg, i = 3..: "
          + " ".join(f"{deg(a[i] - a[i - 3]):.2f}" for i in range(3, n)))

    print("\n== 4. orb640 inliers of the outside pairs: rms Sampson px at estimate / exact GT / GT rotation + fitted "
          "direction; weighted cost sum r^2 (k = variance factor); where the added GT cost lies ==")
    print("pair    inl  k     px_est px_gt px_gtR  cost_est cost_gt cost_gtR  top10%  worse  dfar  dnear  cell  "
          "t_fit-est")
    for pr in out:
        r = residual_table(ds, res["orb640"][pr], gt[pr])
        top, worse, dfar, dnear, cell = where(r, ds.frames[pr[0]].shape[1::-1])
        c = {k: float(np.sum(r[k + "_w"] ** 2)) for k in ("est", "gt", "gtR_fit_t")}
        p = {k: float(np.sqrt(np.mean(r[k + "_px"] ** 2))) for k in ("est", "gt", "gtR_fit_t")}
        print(f"{pr[0]:2d}-{pr[1]:2d} {len(r['flow']):4d} {res['orb640'][pr]['k']:4.2f}  {p['est']:6.3f} "
              f"{p['gt']:6.3f} "
              f"{p['gtR_fit_t']:6.3f}  {c['est']:8.1f} {c['gt']:7.1f} {c['gtR_fit_t']:8.1f}  {top:6.2f}  {worse:5.2f} "
              f"{dfar:5.3f} {dnear:6.3f} {cell:5.2f}  {r['t_fit_vs_est_deg']:6.2f}")
    print("\n== 5. the ground truth's own rotation per frame i -> i+1 (deg, rotation vector x y z), i = 0..15 ==")
    for i in range(min(16, n - 1)):
        print(f"{i:2d}: " + " ".join(f"{x:7.3f}" for x in np.degrees(rot_log(ds.relative_pose(i + 1, i)[:3, :3]))))
    g3 = [pr for pr in base if pr[0] - pr[1] == 3]
    late = [pr for pr in g3 if pr[1] >= LATE]
    ref = [pr for pr in g3 if pr in res["sift_full"]]

    def inside(prs, refs) -> float:
        return float(np.mean([errors(res["orb640"][pr], refs[pr])["nees_r"] <= CHI2_95[3] for pr in prs]))

    as_ref = {pr: geo.make_T(res["sift_full"][pr]["R"], np.zeros(3)) for pr in ref}
    print(f"orb640 gap-3 rotation NEES coverage vs GT: all {inside(g3, gt):.3f} (n={len(g3)}), pairs from frame "
          f"{LATE} on {inside(late, gt):.3f} (n={len(late)}); vs sift_full's rotation instead of GT "
          f"{inside(ref, as_ref):.3f} (n={len(ref)})")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
