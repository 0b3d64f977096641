"""package.xml and CMakeLists.txt: every ROS package the sources or launch files import is a
declared dependency, and `colcon test` has tests to run."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers.imports import imported_top_levels

REPO = Path(__file__).resolve().parents[1]
# Import names that are ROS packages (resolved by rosdep, not pip).
ROS_SUFFIXES = ("_msgs", "_srvs", "_interfaces")
ROS_NAMES = {"rclpy", "launch", "launch_ros", "ament_index_python", "cv_bridge", "rosidl_runtime_py"}


def _manifest(*tags: str) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


def test_every_imported_ros_package_is_a_run_dependency():
    sources = [*(REPO / "maqbool_ros").rglob("*.py"), *(REPO / "launch").glob("*.py"), *(REPO / "scripts").iterdir()]
    ros = {n for n in imported_top_levels(p for p in sources if p.is_file() and p.suffix in ("", ".py"))
           if n.endswith(ROS_SUFFIXES) or n in ROS_NAMES}
    ros.discard("maqbool_ros")
    declared = _manifest("depend", "exec_depend")
    assert ros <= declared, f"imported but not in package.xml: {sorted(ros - declared)}"


def test_colcon_test_runs_the_package_checks_or_the_whole_suite():
    """MAQBOOL_TESTS=quick (default): test_packaging_*.py and the files listed; all: test_*.py."""
    cmake = (REPO / "CMakeLists.txt").read_text()
    block = cmake[cmake.index("if(BUILD_TESTING)"):cmake.index("ament_package()")]
    assert "find_package(ament_cmake_pytest REQUIRED)" in block, \
        "pytest must be registered only when BUILD_TESTING is on (the Makefile's message build turns it off)"
    assert 'set(MAQBOOL_TESTS "quick" CACHE STRING' in cmake
    assert "ament_add_pytest_test(" in block and "test/test_*.py" in block and "test/test_packaging_*.py" in block
    quick = re.search(r"list\(APPEND _maqbool_tests ([^)]*)\)", block).group(1).split()
    assert quick and all((REPO / f).is_file() for f in quick), quick  # a renamed file would drop silently
    assert "ament_cmake_pytest" in _manifest("test_depend")


#: import name -> its rosdep key; the others are pip-only and must be named in package.xml's comment.
ROSDEP = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "scipy": "python3-scipy",
          "threadpoolctl": "python3-threadpoolctl", "sklearn": "python3-sklearn", "tqdm": "python3-tqdm",
          "matplotlib": "python3-matplotlib", "h5py": "python3-h5py"}
PIP_ONLY = {"onnx": "onnx", "onnxruntime": "onnxruntime", "faiss": "faiss-cpu", "torch": "torch",
            "skl2onnx": "skl2onnx", "rosbags": "rosbags", "gtsam": "gtsam", "pymilvus": "pymilvus",
            "milvus_lite": "milvus-lite", "grpc": "pymilvus"}  # grpc comes with pymilvus


def test_every_imported_python_module_is_declared():
    """Regression (issue #24): h5py and threadpoolctl were imported but not in package.xml."""
    import sys

    names = imported_top_levels((REPO / "maqbool_ros").rglob("*.py"))
    third = {n for n in names if n not in sys.stdlib_module_names and n != "maqbool_ros"
             and not n.endswith(ROS_SUFFIXES) and n not in ROS_NAMES}
    unknown = third - set(ROSDEP) - set(PIP_ONLY)
    assert not unknown, f"imported, neither a rosdep key nor a pip-only package here: {sorted(unknown)}"
    declared = _manifest("depend", "exec_depend")
    missing = sorted(ROSDEP[n] for n in third & set(ROSDEP) if ROSDEP[n] not in declared)
    assert not missing, f"imported but not in package.xml: {missing}"
    comment = (REPO / "package.xml").read_text().split("Not in rosdep", 1)[1].split("-->", 1)[0]
    assert all(PIP_ONLY[n] in comment for n in third & set(PIP_ONLY)), comment


def test_ament_cmake_pytest_is_in_the_wheel_set():
    """colcon build with BUILD_TESTING on (its default) needs ament_cmake_pytest."""
    assert "ros-ament-cmake-pytest==" in (REPO / "requirements.txt").read_text()
