"""A virtual environment holding only the runtime wing's distributions (requirements-runtime.txt
and the ROS 2 client wheels of requirements.txt, with their dependencies), made in seconds and
offline: each distribution's installed files (its RECORD) are linked from this interpreter's
environment, so none of torch, scikit-learn, ... is there to import by accident."""
from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The ROS 2 client wheels the node imports (requirements.txt's runtime block).
ROS_RUNTIME = ("ros-rclpy", "ros-builtin-interfaces", "ros-std-msgs", "ros-std-srvs", "ros-sensor-msgs",
               "ros-geometry-msgs", "ros-nav-msgs", "ros-visualization-msgs", "ros-rcl-interfaces",
               "ros-rosgraph-msgs", "ros-diagnostic-msgs")
OFFLINE_ONLY = ("torch", "scikit-learn", "skl2onnx", "matplotlib", "rosbags", "h5py", "gtsam", "tqdm")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements() -> list[str]:
    lines = (REPO / "requirements-runtime.txt").read_text().splitlines()
    return [re.split(r"[<>=!~;\s]", line.split("#")[0].strip(), maxsplit=1)[0] for line in lines
            if line.split("#")[0].strip()]


def closure(roots) -> dict[str, md.Distribution]:
    """The installed distributions ``roots`` need (extras: rclpy's fastrtps only)."""
    from packaging.requirements import Requirement

    dists = {_norm(d.metadata["Name"]): d for d in md.distributions()}
    seen: dict[str, md.Distribution] = {}
    stack = [_norm(r) for r in roots]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        if name not in dists:
            raise LookupError(f"{name} is not installed in {sys.prefix}")
        seen[name] = dists[name]
        for text in seen[name].requires or []:
            req = Requirement(text)
            extra = "fastrtps" if name == "ros-rclpy" else ""
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                stack.append(_norm(req.name))
    return seen


def _link(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink() or not src.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


def make_runtime_venv(root: Path) -> Path:
    """The venv's python: a bare venv of the base interpreter plus the runtime closure's files
    and the generated message code (built into this environment by `make msg`)."""
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(root)],
                   check=True, capture_output=True)
    here = Path(sys.prefix)
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(subprocess.run([str(root / "bin" / "python"), "-c", code], check=True, capture_output=True,
                                  text=True).stdout.strip())
    src_site = Path(md.distribution("numpy").locate_file(""))
    for dist in closure([*runtime_requirements(), *ROS_RUNTIME]).values():
        for f in dist.files or []:
            src = Path(dist.locate_file(f)).resolve() if not Path(dist.locate_file(f)).is_symlink() \
                else Path(dist.locate_file(f))
            rel = os.path.relpath(os.path.normpath(src_site / f), here)
            if not rel.startswith(".."):
                _link(src, root / rel)
    generated = src_site / "maqbool_ros"  # the message code: msg/, srv/, typesupport libraries
    for item in generated.iterdir() if generated.is_dir() else ():
        if item.name in ("msg", "srv") or item.suffix in (".so", ".c"):
            _link(item, purelib / "maqbool_ros" / item.name)
    for lib in (here / "lib").glob("libmaqbool_ros*"):
        _link(lib, root / "lib" / lib.name)
    for share in ("maqbool_ros", "ament_index"):
        for item in (here / "share" / share).rglob("*") if (here / "share" / share).is_dir() else ():
            if item.is_file() and (share == "maqbool_ros" or "maqbool_ros" in item.name):
                _link(item, root / item.relative_to(here))
    return root / "bin" / "python"
