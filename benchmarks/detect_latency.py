"""Latency of the ~/detect service (ORB-SLAM3-style synchronous use) on the real node.

Builds a map from the first half of a real sequence (../shared/data/rtabmap_loop frames, or the
embedded synthetic sequence) through the `keyframes` topic (maqbool_ros/Keyframe), then calls
~/detect (query only) for each frame of the second half and prints p50/p95/max of the call's
round trip seen by the caller, of the node's own `latency_ms`, and how many answers held a
verified candidate.

    python -m benchmarks.detect_latency [--frames 84] [--dataset DIR] [--method netvlad]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the node test driver lives in test/helpers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=84)
    parser.add_argument("--method", default="netvlad", choices=["netvlad", "maqbool", "landmarks"])
    parser.add_argument("--dataset", type=Path, default=None, help="a folder of images (default: rtabmap_loop frames)")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy

    from benchmarks.node_latency import _frames
    from helpers.node_proc import Driver, NodeProcess
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.evaluation.machine import machine_line
    from maqbool_ros.srv import Detect

    frames = _frames(args.dataset, args.frames)
    half = len(frames) // 2
    print(f"machine: {machine_line('onnxruntime', 'faiss', 'cv2')}")
    print(f"{half} map keyframes via the topic, {len(frames) - half} ~/detect calls (query only), "
          f"{frames[0].shape[1]}x{frames[0].shape[0]}, method={args.method}, exclude_recent_keyframes 5, "
          "exclude_recent_seconds 0, nominal 60-degree pinhole, node defaults otherwise (verification on); "
          f"load average {os.getloadavg()[0]:.1f}")
    rclpy.init()
    rows: dict[str, list[float]] = {"call round trip": [], "node latency_ms": []}
    verified = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # frames are published back to back (stamps seconds apart): no time window; a nominal
            # 60-degree pinhole (rtabmap_loop ships no calibration) so verified pairs get a pose
            fx = (frames[0].shape[1] / 2) / np.tan(np.radians(30.0))
            cfg = MaqboolConfig(method=args.method, exclude_recent_keyframes=5, exclude_recent_seconds=0.0,
                                camera_fx=float(fx))
            node = NodeProcess(cfg, Path(tmp), "detect_bench")
            driver = Driver(node)
            try:
                driver.wait_for_node()
                for i in range(half):
                    driver.publish_and_wait(driver.keyframe_msg(i, frames[i]))
                for i in range(half, len(frames)):
                    request = Detect.Request(keyframe=driver.keyframe_msg(i, frames[i]))
                    t0 = time.perf_counter()
                    res = driver.call(Detect, "detect", request)
                    rows["call round trip"].append((time.perf_counter() - t0) * 1e3)
                    if not res.success:
                        raise RuntimeError(res.message)
                    rows["node latency_ms"].append(res.result.latency_ms)
                    verified += any(c.verified for c in res.result.candidates)
            finally:
                driver.close()
                node.stop()
    finally:
        rclpy.shutdown()
    print(f"{'stage':<18} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for stage, values in rows.items():
        v = np.asarray(values[3:])  # the first calls warm the caches
        print(f"{stage:<18} {np.percentile(v, 50):8.1f} {np.percentile(v, 95):8.1f} {v.max():8.1f}")
    print(f"answers with a verified candidate: {verified}/{len(frames) - half}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
