"""The ORB-SLAM3 client's message side (docs/orbslam3/maqbool_keyframe.hpp) compiles against the
C++ types generated for maqbool_ros and builds correct Keyframe / Detect / RemoveKeyframes
messages (its C++ test program runs). The rclcpp part (maqbool_detect_client.hpp) cannot be built
here: the PyPI ROS wheels ship no rclcpp; only its service names are checked against the node."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "docs" / "orbslam3"


def _include_dirs() -> list[Path]:
    """<prefix>/include/<package> roots (rosidl installs each package's headers under its own)."""
    root = Path(sys.prefix) / "include"
    if not (root / "maqbool_ros" / "maqbool_ros" / "srv" / "detect.hpp").exists():
        pytest.skip(f"no generated C++ headers of maqbool_ros under {root} (the message build installs them)")
    return [p for p in root.iterdir() if p.is_dir()]


def test_message_helpers_compile_and_pass_their_checks(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "test_maqbool_keyframe"
    cmd = [cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{CLIENT}",
           *(f"-I{d}" for d in _include_dirs()), str(CLIENT / "test_maqbool_keyframe.cpp"), "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "ALL OK" in run.stdout, run.stdout + run.stderr


def test_client_uses_the_node_services_and_keyframe_topic():
    client = (CLIENT / "maqbool_detect_client.hpp").read_text()
    services = (REPO / "maqbool_ros" / "ros" / "services.py").read_text()
    for name in ("detect", "remove_keyframes"):
        assert f'"~/{name}"' in services and f'"/{name}"' in client, name
    from maqbool_ros.core.config import NODE_NAME, MaqboolConfig

    assert f'maqbool_node = "{NODE_NAME}"' in client
    assert re.search(rf'keyframe_topic = "{MaqboolConfig().keyframe_topic}"', client)
