"""Node start-up: seconds from launching `maqbool-node` to its first answered parameter request
(GetParameters on its ~/get_parameters service), cold and warm (issue #24: within 3 s after
`make install`; the node never builds a model), and to the node's own "ready" log line (its
services are then being spun). The difference between the two is DDS discovery between the
probe and the node (rmw_fastrtps: up to one ~3 s endpoint-discovery heartbeat when the first
announcement is missed), not node work.

    python -m benchmarks.startup              # 1 cold + 3 warm starts, default configuration
    python -m benchmarks.startup --warm 5

cold: the first start with an empty bytecode cache (-X pycache_prefix in a fresh folder: every
module compiled, as on a fresh clone) and the default model already built (`make install` runs
`maqbool build-defaults`); warm: later starts, bytecode cached. Each start uses a fresh database.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maqbool_ros.core.config import KEYS, NODE_NAME, MaqboolConfig, ros_params_yaml
from maqbool_ros.core.evaluation.machine import machine_line


def ready_after(log_text: str, launched_wall: float) -> float:
    """Seconds from launch to the node's "maqbool_ros ready" log line (its ROS log stamp), nan if absent."""
    match = re.search(r"^\[INFO\] \[(\d+\.\d+)\] \[[^\]]*\]: maqbool_ros ready", log_text, re.M)
    return float(match.group(1)) - launched_wall if match else float("nan")


def start_once(python: str, workdir: Path, pycache: Path, index: int) -> tuple[float, float]:
    """Launch the node, poll its get_parameters service; (seconds to the first answer, seconds
    to the node's ready line)."""
    import rclpy
    from rcl_interfaces.srv import GetParameters

    ns = f"/startup{os.getpid()}_{index}"
    params = workdir / f"p{index}.yaml"
    cfg = MaqboolConfig(database_path=str(workdir / f"db{index}"))
    params.write_text(ros_params_yaml(cfg, node_name=f"{ns}/{NODE_NAME}"))
    node = rclpy.create_node(f"startup_probe_{index}")
    client = node.create_client(GetParameters, f"{ns}/{NODE_NAME}/get_parameters")
    log = open(workdir / f"node{index}.log", "w")
    t0, launched_wall = time.perf_counter(), time.time()
    proc = subprocess.Popen([python, "-X", f"pycache_prefix={pycache}", "-m", "maqbool_ros.ros.node", "--ros-args",
                             "-r", f"__ns:={ns}", "--params-file", str(params)], stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                tail = (workdir / f"node{index}.log").read_text()[-2000:]
                raise RuntimeError(f"node exited {proc.returncode}: {tail}")
            if time.perf_counter() - t0 > 120:
                raise TimeoutError("no parameter answer within 120 s")
            if client.wait_for_service(timeout_sec=0.02):
                future = client.call_async(GetParameters.Request(names=[KEYS["method"]]))
                rclpy.spin_until_future_complete(node, future, timeout_sec=5.0)
                if future.done() and future.result() is not None and future.result().values:
                    answered = time.perf_counter() - t0
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        node.destroy_node()
    return answered, ready_after((workdir / f"node{index}.log").read_text(errors="replace"), launched_wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=3, help="warm starts after the cold one (default 3)")
    args = parser.parse_args()
    import rclpy

    from maqbool_ros.tools.build_defaults import ensure_defaults

    built = ensure_defaults(MaqboolConfig())  # what `make install` leaves; not timed
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory(prefix="maqbool-startup-") as tmp:
            work, pycache = Path(tmp), Path(tmp) / "pycache"
            cold, cold_ready = start_once(sys.executable, work, pycache, 0)
            warm_runs = [start_once(sys.executable, work, pycache, i + 1) for i in range(args.warm)]
    finally:
        rclpy.shutdown()
    print(machine_line())
    print(f"default model: {built[0][1].name} ({'built now' if built[0][2] else 'already built'})")
    warm, ready = [w[0] for w in warm_runs], [w[1] for w in warm_runs]
    print(f"node start to first parameter answer: cold {cold:.2f} s, warm median {statistics.median(warm):.2f} s "
          f"(min {min(warm):.2f}, max {max(warm):.2f}, n={len(warm)})")
    print(f"node start to its ready line: cold {cold_ready:.2f} s, warm median {statistics.median(ready):.2f} s "
          f"(min {min(ready):.2f}, max {max(ready):.2f})")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
