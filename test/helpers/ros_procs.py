"""Run small rclpy scripts in child processes (real inter-process ROS traffic)."""
from __future__ import annotations

import os
import subprocess
import sys


def ros_env() -> dict[str, str]:
    """The test's isolated ROS environment for a child process of the same interpreter."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn_python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=ros_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
