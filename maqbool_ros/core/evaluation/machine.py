"""What machine a figure was measured on: CPU model, cores, Python and library versions.

Shared by evaluation reports and the benchmark scripts so every figure names its machine
the same way.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """module -> __version__ ("absent" when it does not import)."""
    versions = {}
    for mod in modules:
        try:
            versions[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception:  # noqa: BLE001 - a missing library is reported, not fatal
            versions[mod] = "absent"
    return versions


def machine_info(modules: tuple[str, ...] = ("numpy", "onnxruntime", "faiss", "cv2", "torch")) -> dict[str, Any]:
    """CPU model, core count and the versions of the libraries that set the figures."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "libraries": library_versions(modules)}


def machine_line(*modules: str) -> str:
    """One printable line: CPU, cores, thread setting, Python and the given libraries."""
    libs = ", ".join(f"{m} {v}" for m, v in library_versions(modules).items())
    return (f"CPU {cpu_name()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
            f"Python {platform.python_version()}" + (f", {libs}" if libs else ""))
