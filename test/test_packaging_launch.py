"""Launch files: every argument they (or the README) document is declared, all take
use_sim_time, and one shared description (launch/maqbool_launch.py) builds the node.
launch/launch_ros are not on PyPI: the files are parsed, and the shared description runs
against small stand-ins for the launch API."""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

from maqbool_ros.core.config import FIELDS, ROS_NODE_PARAMETERS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
COMMON = LAUNCH / "maqbool_launch.py"
ARG_USE = re.compile(r"\b([a-z_]+):=")


def _launch_files() -> list[Path]:
    files = sorted(LAUNCH.glob("*.launch.py"))
    assert {p.name for p in files} >= {"maqbool.launch.py", "orbslam3.launch.py", "rtabmap.launch.py"}
    return files


def _declared(path: Path) -> set[str]:
    """Names given to DeclareLaunchArgument in the file, plus the shared ARGUMENTS table
    when the file loads maqbool_launch.py."""
    names = set()
    sources = [path] + ([COMMON] if COMMON.exists() and COMMON.name in path.read_text() else [])
    for src in sources:
        for node in ast.walk(ast.parse(src.read_text(), str(src))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) \
                    == "DeclareLaunchArgument" and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "ARGUMENTS":
                names.update(k.value for k in node.value.keys)
    return names


def _documented(path: Path) -> set[str]:
    """`name:=` in the file's docstring, and after `ros2 launch maqbool_ros <file>` (up to the
    end of that command) in the README and docs."""
    names = set(ARG_USE.findall(ast.get_docstring(ast.parse(path.read_text())) or ""))
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            _, found, command = line.partition(f"maqbool_ros {path.name}")
            if found:
                names.update(ARG_USE.findall(re.split(r"[`|#]", command)[0]))
    return names


@pytest.mark.parametrize("name", ["maqbool.launch.py", "orbslam3.launch.py", "rtabmap.launch.py"])
def test_every_documented_launch_argument_is_declared(name):
    path = LAUNCH / name
    declared = _declared(path)
    assert _documented(path) <= declared, f"{name}: documented but not declared: {_documented(path) - declared}"
    assert {"params_file", "namespace", "use_sim_time", "method", "image_topic"} <= declared, name


def test_launch_files_share_one_description():
    """No copies: only maqbool_launch.py builds a Node; each launch file delegates to it."""
    for path in _launch_files():
        tree = ast.parse(path.read_text())
        calls = {getattr(n.func, "id", getattr(n.func, "attr", "")) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert "Node" not in calls and "launch_description" in calls, path.name


def _common():
    spec = importlib.util.spec_from_file_location("maqbool_launch_under_test", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_node_parameters_pass_only_schema_fields_and_use_sim_time():
    common = _common()
    values = {name: default for name, (default, _) in common.ARGUMENTS.items()} | {"params_file": "/p.yaml"}
    assert common.node_parameters(values) == ["/p.yaml", {"use_sim_time": False}]
    values |= {"method": "maqbool", "robot_id": "7", "use_sim_time": "True"}
    params = common.node_parameters(values, preset={"exclude_recent_keyframes": 20})
    assert params[1] == {"exclude_recent_keyframes": 20, "method": "maqbool", "robot_id": "7", "use_sim_time": True}
    assert set(params[1]) <= set(FIELDS) | ROS_NODE_PARAMETERS
    assert set(common.OVERRIDES) <= set(FIELDS)
    with pytest.raises(ValueError, match="use_sim_time"):
        common.node_parameters(values | {"use_sim_time": "yes"})


class _Recorder:
    """Stands in for a launch action or substitution: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _fake_launch_api(monkeypatch, share: Path) -> None:
    class LaunchConfiguration(_Recorder):
        def perform(self, context):
            return context[self.args[0]]

    mods = {"launch": types.ModuleType("launch"), "launch.actions": types.ModuleType("launch.actions"),
            "launch.substitutions": types.ModuleType("launch.substitutions"),
            "launch_ros": types.ModuleType("launch_ros"), "launch_ros.actions": types.ModuleType("launch_ros.actions"),
            "ament_index_python": types.ModuleType("ament_index_python"),
            "ament_index_python.packages": types.ModuleType("ament_index_python.packages")}
    mods["launch"].LaunchDescription = lambda entities: list(entities)
    mods["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (_Recorder,), {})
    mods["launch.actions"].OpaqueFunction = type("OpaqueFunction", (_Recorder,), {})
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch_ros.actions"].Node = type("Node", (_Recorder,), {})
    mods["ament_index_python.packages"].get_package_share_directory = lambda pkg: str(share / pkg)
    for name, module in mods.items():
        monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize("name,topic,transport", [
    ("maqbool.launch.py", None, None),
    ("orbslam3.launch.py", "orbslam3/keyframe_image", "raw"),
    ("rtabmap.launch.py", "rtabmap/keyframe_image/compressed", "compressed"),
])
def test_launch_file_builds_the_node(monkeypatch, tmp_path, name, topic, transport):
    import runpy

    _fake_launch_api(monkeypatch, tmp_path)
    entities = runpy.run_path(str(LAUNCH / name))["generate_launch_description"]()
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    context = dict(declared, namespace="robot1", use_sim_time="true")
    (node,) = [e for e in entities if type(e).__name__ == "OpaqueFunction"][0].kwargs["function"](context)
    assert node.kwargs["executable"] == "loop_closure_node" and node.kwargs["namespace"] == "robot1"
    params_file, overrides = node.kwargs["parameters"]
    assert params_file == str(tmp_path / "maqbool_ros" / "config" / "maqbool_ros_params.yaml")
    assert overrides["use_sim_time"] is True
    assert overrides.get("image_topic") == topic and overrides.get("image_transport") == transport
    assert set(overrides) <= set(FIELDS) | ROS_NODE_PARAMETERS
