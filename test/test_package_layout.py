"""Package hygiene: core never imports rclpy; CLI entry points answer; one version number."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import maqbool_ros

REPO = Path(__file__).resolve().parents[1]
ROS_MODULES = ("rclpy", "rosidl_runtime_py", "sensor_msgs", "std_msgs", "builtin_interfaces",
               "diagnostic_msgs", "cv_bridge", "maqbool_ros.msg", "maqbool_ros.ros")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_sources_do_not_import_ros():
    offenders = []
    for path in sorted((REPO / "maqbool_ros" / "core").rglob("*.py")):
        for name in _imports(path):
            if any(name == m or name.startswith(m + ".") for m in ROS_MODULES):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_importing_every_core_module_loads_no_rclpy():
    code = ("import importlib, pkgutil, sys, maqbool_ros.core as c\n"
            "for m in pkgutil.walk_packages(c.__path__, 'maqbool_ros.core.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py')]\n"
            "print('ROS' if bad else 'CLEAN', bad[:3])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.startswith("CLEAN"), out.stdout + out.stderr


def _cli() -> list[str]:
    """The `maqbool` console script (pip/venv route), else the executable a colcon install
    space provides (`ros2 run maqbool_ros maqbool`)."""
    exe = Path(sys.executable).parent / "maqbool"
    if exe.exists():
        return [str(exe)]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        exe = Path(prefix) / "lib" / "maqbool_ros" / "maqbool"
        if exe.exists():
            return [str(exe)]
    raise AssertionError("no maqbool executable next to the interpreter or on AMENT_PREFIX_PATH")


def test_cli_help_and_version():
    exe = _cli()
    help_out = subprocess.run([*exe, "--help"], capture_output=True, text=True, timeout=120)
    assert help_out.returncode == 0 and "dump-config" in help_out.stdout
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"maqbool_ros {maqbool_ros.__version__}"


def test_one_version_number():
    import xml.etree.ElementTree as ET

    assert ET.parse(REPO / "package.xml").getroot().findtext("version") == maqbool_ros.__version__
    assert "version = attr: maqbool_ros.__version__" in (REPO / "setup.cfg").read_text()


def _launch_files() -> list[Path]:
    files = sorted((REPO / "launch").glob("*.launch.py"))
    assert {p.name for p in files} >= {"maqbool.launch.py", "orbslam3.launch.py", "rtabmap.launch.py"}
    return files


def test_launch_files_parse_and_use_schema_parameters():
    """Without launch_ros (not on PyPI) the files are parsed, and every parameter name
    they set (node parameters, or a preset handed to the shared launch description) is
    checked against the config schema."""
    from maqbool_ros.core.config import FIELD_OF, ROS_NODE_PARAMETERS

    for path in _launch_files():
        tree = ast.parse(path.read_text(), str(path))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            for kw in call.keywords:
                if kw.arg not in ("parameters", "preset"):
                    continue
                for d in (n for n in ast.walk(kw.value) if isinstance(n, ast.Dict)):
                    for key in d.keys:
                        assert isinstance(key, ast.Constant) and key.value in set(FIELD_OF) | ROS_NODE_PARAMETERS, \
                            f"{path.name}: unknown parameter {ast.dump(key)}"
    assert 'EXECUTABLE = "loop_closure_node"' in (REPO / "launch" / "maqbool_launch.py").read_text()


def test_launch_files_run_when_launch_ros_is_available():
    import importlib.util

    if importlib.util.find_spec("launch_ros") is None:
        import pytest

        pytest.skip("launch_ros is not installable from PyPI; a ROS 2 install runs this test")
    import runpy

    for path in _launch_files():
        description = runpy.run_path(str(path))["generate_launch_description"]()
        assert description.entities
