"""package.xml and CMakeLists.txt: every ROS package the sources or launch files import is a
declared dependency, and `colcon test` has tests to run."""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Import names that are ROS packages (resolved by rosdep, not pip).
ROS_SUFFIXES = ("_msgs", "_srvs", "_interfaces")
ROS_NAMES = {"rclpy", "launch", "launch_ros", "ament_index_python", "cv_bridge", "rosidl_runtime_py"}


def _imported_top_levels(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _manifest(*tags: str) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


def test_every_imported_ros_package_is_a_run_dependency():
    sources = [*(REPO / "maqbool_ros").rglob("*.py"), *(REPO / "launch").glob("*.py"), *(REPO / "scripts").iterdir()]
    ros = {n for n in _imported_top_levels(p for p in sources if p.is_file() and p.suffix in ("", ".py"))
           if n.endswith(ROS_SUFFIXES) or n in ROS_NAMES}
    ros.discard("maqbool_ros")
    declared = _manifest("depend", "exec_depend")
    assert ros <= declared, f"imported but not in package.xml: {sorted(ros - declared)}"


def test_colcon_test_runs_the_pytest_suite():
    cmake = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"if\(BUILD_TESTING\)(.*?)endif\(\)", cmake, re.S)
    assert block and "find_package(ament_cmake_pytest REQUIRED)" in block.group(1), \
        "pytest must be registered only when BUILD_TESTING is on (the Makefile's message build turns it off)"
    assert "ament_add_pytest_test(" in block.group(1) and "test/test_*.py" in block.group(1)
    assert "ament_cmake_pytest" in _manifest("test_depend")
