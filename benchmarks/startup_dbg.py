"""Node start-up: seconds from launching `maqbool-node` to its first answered parameter request
(GetParameters on its ~/get_parameters service), cold and warm (issue #24: within 3 s after
`make install`; the node never builds a model).

    python -m benchmarks.startup              # 1 cold + 3 warm starts, default configuration
    python -m benchmarks.startup --warm 5

cold: the first start with an empty bytecode cache (-X pycache_prefix in a fresh folder: every
module compiled, as on a fresh clone) and the default model already built (`make install` runs
`maqbool build-defaults`); warm: later starts, bytecode cached. Each start uses a fresh database.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maqbool_ros.core.config import NODE_NAME, MaqboolConfig, ros_params_yaml
from maqbool_ros.core.evaluation.machine import machine_line


def start_once(python: str, workdir: Path, pycache: Path, index: int) -> float:
    """Launch the node, poll its get_parameters service, return seconds to the first answer."""
    import rclpy
    from rcl_interfaces.srv import GetParameters

    ns = f"/startup{os.getpid()}_{index}"
    params = workdir / f"p{index}.yaml"
    cfg = MaqboolConfig(database_path=str(workdir / f"db{index}"))
    params.write_text(ros_params_yaml(cfg, node_name=f"{ns}/{NODE_NAME}"))
    node = rclpy.create_node(f"startup_probe_{index}")
    client = node.create_client(GetParameters, f"{ns}/{NODE_NAME}/get_parameters")
    log = open(workdir / f"node{index}.log", "w")
    t0 = time.perf_counter()
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
                print("service seen", round(time.perf_counter() - t0, 2), flush=True)
                future = client.call_async(GetParameters.Request(names=["method"]))
                rclpy.spin_until_future_complete(node, future, timeout_sec=5.0)
                if future.done() and future.result() is not None and future.result().values:
                    print("answered", round(time.perf_counter() - t0, 2), flush=True)
                    return time.perf_counter() - t0
                print("no answer", round(time.perf_counter() - t0, 2), future.done(), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        node.destroy_node()


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
            cold = start_once(sys.executable, work, pycache, 0)
            warm = [start_once(sys.executable, work, pycache, i + 1) for i in range(args.warm)]
    finally:
        rclpy.shutdown()
    print(machine_line())
    print(f"default model: {built[0][1].name} ({'built now' if built[0][2] else 'already built'})")
    print(f"node start to first parameter answer: cold {cold:.2f} s, warm median {statistics.median(warm):.2f} s "
          f"(min {min(warm):.2f}, max {max(warm):.2f}, n={len(warm)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
