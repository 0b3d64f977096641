"""End-to-end latency of the real node: publish a keyframe -> receive its LoopClosureCandidate.

Feeds a real image sequence (../shared/data/rtabmap_loop, 512x384, resized by the node's
keep_aspect policy to fit 640x480) one keyframe at a time through `maqbool-node` in its
own process, with the default backbone and MAQBOOL, for each region budget, and prints
p50/p95/max of the latency seen by the publisher and of the node's own stage timings.

    python -m benchmarks.node_latency [--budgets 5 50] [--frames 84] [--dataset DIR]
                                      [--verification on|off] [--top-n 3] [--hfov-deg 60]

Verification (on by default, like the node) uses a nominal pinhole of --hfov-deg horizontal field
of view (rtabmap_loop ships no calibration), so verified pairs get a monocular pose; the
local-feature extraction is in `descriptor`, matching + estimation in `verify`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the node test driver lives in test/helpers


def _frames(dataset: Path | None, count: int) -> list[np.ndarray]:
    from maqbool_ros.core.images.io import list_images, read_image

    root = dataset or REPO.parent / "shared" / "data" / "rtabmap_loop" / "frames"
    if root.is_dir():
        return [read_image(p) for p in list_images(root)[:count]]
    print(f"(no {root}: using the embedded synthetic demo sequence)")
    from maqbool_ros.core.data.demo_sequence import demo_sequence

    frames = demo_sequence().frames
    return [frames[i] for i in range(min(count, len(frames)))]


def run(budget: int, frames: list[np.ndarray], method: str, workdir: Path, args) -> dict[str, np.ndarray]:
    from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess
    from maqbool_ros.core.config import MaqboolConfig

    w = frames[0].shape[1]
    fx = (w / 2) / np.tan(np.radians(args.hfov_deg) / 2)
    cfg = MaqboolConfig(**IMAGE_INPUT, method=method, region_budget=budget, exclude_recent_keyframes=5,
                        exclude_recent_seconds=0.0, verification_enabled=args.verification == "on",
                        verification_top_n=args.top_n, camera_fx=float(fx))
    node = NodeProcess(cfg, workdir, name=f"bench_{method}_{budget}")
    driver = Driver(node)
    out: dict[str, list[float]] = {"publish_to_candidate": [], "node_total": [], "descriptor": [],
                                   "search": [], "rerank(incl. proposals)": [], "verify": [], "verified": []}
    try:
        driver.wait_for_node()
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            msg = driver.publish_and_wait(driver.image_msg(frame, frame_id=str(i)))
            out["publish_to_candidate"].append((time.perf_counter() - t0) * 1e3)
            out["node_total"].append(msg.latency_ms)
            out["descriptor"].append(msg.descriptor_ms)
            out["search"].append(msg.search_ms)
            out["rerank(incl. proposals)"].append(msg.rerank_ms)
            out["verify"].append(msg.verify_ms)
            out["verified"].append(sum(c.verified for c in msg.candidates))
    finally:
        driver.close()
        node.stop()
    return {k: np.asarray(v[3:]) for k, v in out.items()}  # first frames warm the caches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--frames", type=int, default=84)
    parser.add_argument("--method", default="maqbool", choices=["netvlad", "maqbool", "landmarks"])
    parser.add_argument("--dataset", type=Path, default=None, help="a folder of images (default: rtabmap_loop frames)")
    parser.add_argument("--verification", choices=["on", "off"], default="on")
    parser.add_argument("--top-n", type=int, default=3, help="verification_top_n")
    parser.add_argument("--hfov-deg", type=float, default=60.0, help="nominal horizontal field of view for camera_fx")
    parser.add_argument("--json", type=Path, default=None, help="also write p50/p95/max per budget and stage here")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy

    frames = _frames(args.dataset, args.frames)
    from maqbool_ros.core.evaluation.machine import machine_line

    print(f"machine: {machine_line('onnxruntime', 'faiss', 'cv2')}")
    print(f"{len(frames)} keyframes of {frames[0].shape[1]}x{frames[0].shape[0]}, method={args.method}, "
          "default backbone, input fit inside 640x480, one keyframe in flight at a time; "
          f"verification {args.verification} (top_n {args.top_n}, nominal hfov {args.hfov_deg} deg); "
          f"load average {os.getloadavg()[0]:.1f}")
    report: dict = {"frames": len(frames), "method": args.method, "verification": args.verification,
                    "top_n": args.top_n}
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{'budget':>6} {'stage':<26} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for budget in args.budgets:
                stats = run(budget, frames, args.method, Path(tmp), args)
                verified = stats.pop("verified")
                report[str(budget)] = {stage: {q: float(np.percentile(v, p)) for q, p in (("p50", 50), ("p95", 95),
                                                                                        ("max", 100))}
                                       for stage, v in stats.items()}
                report[str(budget)]["verified_keyframes"] = [int((verified > 0).sum()), len(verified)]
                for stage, values in stats.items():
                    print(f"{budget:>6} {stage:<26} {np.percentile(values, 50):8.1f} "
                          f"{np.percentile(values, 95):8.1f} {values.max():8.1f}")
                print(f"{budget:>6} keyframes with a verified candidate: {int((verified > 0).sum())}/{len(verified)}")
    finally:
        rclpy.shutdown()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
