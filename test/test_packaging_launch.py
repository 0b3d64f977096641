"""Launch files: the arguments each one declares (with their defaults) are exactly those of the
table in docs/launch.md, every `name:=` the docs use is declared, all take namespace and
use_sim_time, and one shared description (launch/maqbool_launch.py) builds the node and, for
rtabmap.launch.py, the RTAB-Map bridge with matching topics. launch/launch_ros are not on PyPI:
the files are parsed, and the shared description runs against small stand-ins for the launch API."""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

from maqbool_ros.core.config import FIELD_OF, ROS_NODE_PARAMETERS
from maqbool_ros.core.integration.bridge_config import BRIDGE_FIELDS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
FILES = ["maqbool.launch.py", "orbslam3.launch.py", "rtabmap.launch.py"]
COMMON = LAUNCH / "maqbool_launch.py"
ARG_USE = re.compile(r"\b([a-z_]+):=")


def _launch_files() -> list[Path]:
    files = sorted(LAUNCH.glob("*.launch.py"))
    assert {p.name for p in files} >= {"maqbool.launch.py", "orbslam3.launch.py", "rtabmap.launch.py"}
    return files


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
    params = common.node_parameters(values, preset={"database.exclude_recent_keyframes": 20})
    assert params[1] == {"database.exclude_recent_keyframes": 20, "rerank.method": "maqbool", "input.robot_id": "7",
                         "use_sim_time": True}
    assert set(params[1]) <= set(FIELD_OF) | ROS_NODE_PARAMETERS
    assert set(common.OVERRIDES.values()) <= set(FIELD_OF)  # section.short parameter names of the schema
    # each argument is its parameter's short name (the launch commands stay as they were)
    assert all(param.split(".")[1] in (arg, arg.removeprefix("markers_"), arg.removeprefix("input_"))
               for arg, param in common.OVERRIDES.items())
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


def _run(monkeypatch, share: Path, name: str) -> list:
    """The entities generate_launch_description() returns, against the stand-in launch API."""
    import runpy

    _fake_launch_api(monkeypatch, share)
    return runpy.run_path(str(LAUNCH / name))["generate_launch_description"]()


def _declared(entities) -> dict[str, str]:
    return {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}


def _doc_table() -> dict[str, dict[str, str]]:
    """docs/launch.md's argument table: launch file -> {argument: default} (`—` = not declared)."""
    lines = [ln for ln in (REPO / "docs" / "launch.md").read_text().splitlines() if ln.startswith("| `")]
    files = {name: {} for name in FILES}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        arg, defaults = cells[0].strip("`"), cells[1:4]
        for name, cell in zip(FILES, defaults):
            if cell != "—":
                files[name][arg] = "" if cell == '`""`' else cell.strip("`")
    return files


@pytest.mark.parametrize("name", FILES)
def test_declared_arguments_and_defaults_match_the_docs_table(monkeypatch, tmp_path, name):
    declared = _declared(_run(monkeypatch, tmp_path, name))
    assert declared == _doc_table()[name], f"{name}: docs/launch.md and the file disagree"
    used = _documented(LAUNCH / name)
    assert used <= set(declared), f"{name}: used as name:= in the docs, not declared: {used - set(declared)}"
    assert {"params_file", "namespace", "use_sim_time", "method", "input_type", "keyframe_topic"} <= set(declared)


@pytest.mark.parametrize("name,input_type,pose_source,robot", [
    ("maqbool.launch.py", None, None, None),
    ("orbslam3.launch.py", "keyframe", None, "orbslam3"),
    ("rtabmap.launch.py", "keyframe", "rtabmap_graph", None),
])
def test_launch_file_builds_the_node(monkeypatch, tmp_path, name, input_type, pose_source, robot):
    entities = _run(monkeypatch, tmp_path, name)
    context = dict(_declared(entities), namespace="robot1", use_sim_time="true")
    nodes = [e for e in entities if type(e).__name__ == "OpaqueFunction"][0].kwargs["function"](context)
    node = nodes[0]
    assert node.kwargs["executable"] == "loop_closure_node" and node.kwargs["namespace"] == "robot1"
    params_file, overrides = node.kwargs["parameters"]
    assert params_file == str(tmp_path / "maqbool_ros" / "config" / "maqbool_ros_params.yaml")
    assert overrides["use_sim_time"] is True
    assert overrides.get("input.type") == input_type and overrides.get("markers.pose_source") == pose_source
    assert overrides.get("input.robot_id") == robot
    assert set(overrides) <= set(FIELD_OF) | ROS_NODE_PARAMETERS
    assert len(nodes) == (2 if name == "rtabmap.launch.py" else 1)


def test_rtabmap_launch_gives_node_and_bridge_the_same_topics_and_namespace(monkeypatch, tmp_path):
    entities = _run(monkeypatch, tmp_path, "rtabmap.launch.py")
    context = dict(_declared(entities), namespace="robot1", keyframe_topic="kf", candidates_topic="cands",
                   robot_id="r7", map_data_topic="/rtabmap/mapData", seed_from_map="True")
    start = [e for e in entities if type(e).__name__ == "OpaqueFunction"][0].kwargs["function"]
    node, bridge = start(context)

    def node_of(values):
        return start(values)[0]
    assert bridge.kwargs["executable"] == "rtabmap_bridge" and bridge.kwargs["namespace"] == "robot1"
    (params,) = bridge.kwargs["parameters"]
    assert set(params) <= set(BRIDGE_FIELDS) | ROS_NODE_PARAMETERS
    overrides = node.kwargs["parameters"][1]
    for shared, param in (("keyframe_topic", "input.keyframe_topic"), ("candidates_topic", "output.candidates_topic"),
                          ("robot_id", "input.robot_id")):
        assert params[shared] == overrides[param] == context[shared]
    assert params["map_data_topic"] == overrides["markers.pose_topic"] == "/rtabmap/mapData"  # same graph
    assert params["seed_from_map"] is True and params["link_pose_types"] == "metric"
    defaults = _common().bridge_parameters({})[0]  # the launch defaults are the bridge's own
    for name in _common().BRIDGE_ARGUMENTS:
        assert defaults[name] == BRIDGE_FIELDS[name].default, name
    for name, value in params.items():  # every value has the bridge parameter's type
        assert name in ROS_NODE_PARAMETERS or type(value) is type(BRIDGE_FIELDS[name].default), name
    other = node_of(dict(context, pose_source="odometry"))  # another pose source keeps its own topic default
    assert "markers.pose_topic" not in other.kwargs["parameters"][1]
    with pytest.raises(ValueError, match="seed_from_map"):
        common = _common()
        common.bridge_parameters(dict(context, seed_from_map="yes"))
