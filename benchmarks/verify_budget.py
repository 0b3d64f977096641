"""`benchmarks/verify.py --budget`: budgeted ALIKED + LightGlue against ORB on rtabmap_loop and on
night-proxy copies of it (issue #22). Per configuration: keypoints per keyframe, extraction ms per
keyframe, matching + estimation ms per pair, LightGlue layers run, and the decision on true pairs
(verified, median inliers) and on different-place pairs (false accepts), at the feature type's
default min_inliers and, for the record, at 20 / 30 / 50 / 60 inliers. Uncalibrated (fundamental matrix), as
`maqbool eval --verify` runs these sets. One thread; every frame extracted once, timed once.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from helpers.loop_pairs import loop_pairs
from maqbool_ros.core.images.io import list_images, read_image
from maqbool_ros.core.verification import LocalFeatureExtractor, VerificationParams, verify


def _pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _dataset_pairs(root: Path, step: int, n_false: int) -> tuple[int, list, list]:
    """(first night frame or 0, true pairs, different-place pairs); with a night proxy only pairs
    from a night frame to a day frame count (the cross-condition case)."""
    manifest = root.parent / "night_proxy.json"
    start = int(json.loads(manifest.read_text()).get("from_frame", 0)) if manifest.is_file() else 0
    true_pairs, false_pairs = loop_pairs(root, n_false=4 * n_false if start else n_false)
    if start:
        true_pairs = [(i, j) for i, j in true_pairs if j < start <= i]
        false_pairs = [(i, j) for i, j in false_pairs if j < start <= i]
    return start, true_pairs[::max(1, step)], false_pairs[:n_false]


def _parse_aliked(text: str) -> dict:
    side, kp, th = text.split(":")
    return {"aliked_max_side": int(side), "max_features": int(kp), "aliked_threshold": float(th)}


def _run(params: VerificationParams, images: dict, true_pairs: list, false_pairs: list) -> dict:
    from maqbool_ros.core.verification import learned

    ex = LocalFeatureExtractor(params)
    ex.extract(next(iter(images.values())))  # warm-up (first call allocates)
    feats, ext_ms = {}, []
    for i, im in images.items():
        t0 = time.perf_counter()
        feats[i] = ex.extract(im)
        ext_ms.append((time.perf_counter() - t0) * 1e3)
    out = {"kp": float(np.mean([len(f) for f in feats.values()])), "extract": ext_ms, "pair": [], "match": [],
           "layers": [], "true_inl": [], "false_inl": [], "true_ok": 0, "false_ok": 0, "false_accepts": []}
    for pairs, key in ((true_pairs, "true"), (false_pairs, "false")):
        for i, j in pairs:
            v = verify(feats[i], feats[j], None, params=params)
            out[f"{key}_ok"] += bool(v.verified)
            if key == "false" and v.verified:
                out["false_accepts"].append(f"{i}-{j} {v.num_inliers}/{v.num_matches}")
            out[f"{key}_inl"].append(v.num_inliers)
            out["pair"].append(v.timings_ms["total_ms"])
            out["match"].append(v.timings_ms["match_ms"])
            if params.features == "aliked":
                out["layers"].append(learned.matcher(params.device).model.layers_run)
    return out


def _line(label: str, p: VerificationParams, r: dict, n_true: int, n_false: int) -> str:
    ext, pair = np.median(r["extract"]), np.median(r["pair"])
    ti, fi = np.asarray(r["true_inl"]), np.asarray(r["false_inl"])
    alt = "  ".join(f"@{m}: {int((ti >= m).sum())}/{int((fi >= m).sum())}" for m in (20, 30, 50, 60))
    layers = f", LightGlue layers {np.mean(r['layers']):.1f}/9" if r["layers"] else ""
    return (f"  {label:34} {r['kp']:6.0f} kp | extract {ext:6.1f} / {_pct(r['extract'], 95):6.1f} ms | pair "
            f"{pair:6.1f} / {_pct(r['pair'], 95):6.1f} ms (match {np.median(r['match']):5.1f}{layers}) | "
            f"extract + 1 pair {ext + pair:6.1f} ms | verified true {r['true_ok']}/{n_true} (median inliers "
            f"{np.median(ti) if len(ti) else 0:.0f}), false {r['false_ok']}/{n_false} at min_inliers "
            f"{p.min_inliers}; true/false {alt}; different places: max inliers {fi.max() if len(fi) else 0}"
            + (f", accepted {', '.join(r['false_accepts'])}" if r["false_accepts"] else ""))


def interleaved_timing(args, root: Path, loadavg, n: int = 16) -> None:
    """Fair A/B timing under a shared machine's changing load: each frame is extracted by every
    ALIKED config in turn and each pair matched with every LightGlue setting in turn (median ms)."""
    from maqbool_ros.core.verification import match_features

    _, true_pairs, _ = _dataset_pairs(root, 1, 0)
    pairs = true_pairs[:: max(1, len(true_pairs) // n)][:n]
    files = list_images(root / "frames")
    frames = sorted({k for pair in pairs for k in pair})
    images = {k: read_image(files[k]) for k in frames}
    exs = {a: LocalFeatureExtractor(VerificationParams(features="aliked", device="cpu", **_parse_aliked(a)))
           for a in args.aliked}
    ext = {a: [] for a in exs}
    feats = {a: {} for a in exs}
    for k, im in images.items():
        for a, ex in exs.items():
            t0 = time.perf_counter()
            feats[a][k] = ex.extract(im)
            ext[a].append((time.perf_counter() - t0) * 1e3)
    print(f"interleaved timing on {root.parent.name if root.name == 'sequence' else root.name}: {len(frames)} "
          f"frames, {len(pairs)} true pairs; load {loadavg()}")
    for a in exs:
        lgs = {lg: [] for lg in args.lightglue}
        for i, j in pairs:
            for lg in lgs:
                d, w = (float(x) for x in lg.split(":"))
                t0 = time.perf_counter()
                m = match_features(feats[a][i], feats[a][j], device="cpu", depth_confidence=d, width_confidence=w)
                lgs[lg].append(((time.perf_counter() - t0) * 1e3, len(m)))
        cells = "  ".join(f"lg {lg}: match {np.median([t for t, _ in v]):6.1f} ms, {np.median([c for _, c in v]):4.0f} "
                          f"matches" for lg, v in lgs.items())
        print(f"  aliked {a:12} extract {np.median(ext[a]):6.1f} ms | {cells}", flush=True)
    print(f"  load at end {loadavg()}")


def budget_report(args, loadavg) -> None:
    roots = []
    if args.data is not None and (args.data / "rtabmap_loop").is_dir():
        roots.append(("rtabmap_loop (day)", args.data / "rtabmap_loop"))
    roots += [(f"{r.parent.name} night proxy", r) for r in args.night]
    if not roots:
        print("--budget needs --data (with rtabmap_loop/) or --night")
        return
    if args.interleaved:
        for _, root in roots:
            interleaved_timing(args, root, loadavg)
        return
    configs = [("orb (default)", {"features": "orb"})]
    for a in args.aliked:
        for lg in args.lightglue:
            d, w = (float(x) for x in lg.split(":"))
            extra = {"lightglue_depth_confidence": d, "lightglue_width_confidence": w}
            configs.append((f"aliked {a} lg {lg}", {"features": "aliked", "device": "cpu", **_parse_aliked(a),
                                                     **extra}))
    print("budgeted ALIKED + LightGlue vs ORB: median / p95 per keyframe and per pair (fundamental, no K); "
          "aliked SIDE:KP:TH, lg DEPTH:WIDTH confidences")
    for label, root in roots:
        start, true_pairs, false_pairs = _dataset_pairs(root, args.pair_step, args.false_pairs)
        used = sorted({k for pair in true_pairs + false_pairs for k in pair})
        files = list_images(root / "frames")
        images = {k: read_image(files[k]) for k in used}
        h, w = next(iter(images.values())).shape[:2]
        print(f"{label}: {w}x{h}, {len(true_pairs)} true pairs" + (f" (night frame >= {start} vs day frame)"
              if start else "") + f", {len(false_pairs)} different-place pairs, {len(used)} frames; "
              f"load {loadavg()}")
        for name, kw in configs:
            p = VerificationParams(**kw)
            print(_line(name, p, _run(p, images, true_pairs, false_pairs), len(true_pairs), len(false_pairs)),
                  flush=True)
