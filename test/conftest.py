"""Shared test set-up: an isolated ROS environment per run and the real-data fixtures."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# ROS isolation must be in place before anything imports rclpy: a per-run domain (an explicit
# ROS_DOMAIN_ID wins; else one derived from the pid, in 1..101, the range valid for Fast DDS
# on Linux), discovery on this host only, and a writable ROS_HOME (CI may have no HOME).
# Two concurrent runs may still share a domain: every node test also runs in its own namespace
# (/t<pid>_<n>, test/helpers/node_proc.py), so their topics and services never meet.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="maqbool-ros-home-"))
os.environ.setdefault("ROS_LOG_DIR", os.path.join(os.environ["ROS_HOME"], "log"))
# Keep the 2-core CI machine from being oversubscribed by numeric libraries.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Models built on first use (the embedded default) go to a per-run cache, not ~/.cache.
os.environ.setdefault("MAQBOOL_CACHE_DIR", tempfile.mkdtemp(prefix="maqbool-cache-"))
# Tests are the offline wing: a pipeline built in-process builds a missing default on first use;
# a node process never does (helpers/node_proc.py builds what its config needs before starting it).
from maqbool_ros.tools.build_defaults import install_builder  # noqa: E402

install_builder()

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MAQBOOL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (the project's ../shared/data is not checked out beside the repo)")
    return path


@pytest.fixture(scope="session")
def corridor_dir() -> Path:
    """../shared/data/corridor (111 query + 111 ref images, ground_truth.csv)."""
    return _dataset("corridor")


@pytest.fixture(scope="session")
def gardens_dir() -> Path:
    """../shared/data/gardens_point_sample (10 day queries, 10 night refs)."""
    return _dataset("gardens_point_sample")


@pytest.fixture(scope="session")
def rtabmap_loop_dir() -> Path:
    """../shared/data/rtabmap_loop (84 frames of one run with a loop)."""
    return _dataset("rtabmap_loop")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """../shared/data with the posed sets rgbd_frames/icl and kitti_snippets/seq1."""
    _dataset("rgbd_frames/icl")
    _dataset("kitti_snippets/seq1")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_leftover_nodes():
    """A node process a failing test did not stop is killed after the test."""
    yield
    import sys

    helpers = sys.modules.get("helpers.node_proc")
    if helpers is not None:
        helpers.stop_leftovers()


@pytest.fixture(scope="module")
def ros_context():
    """rclpy initialised for one test module (modules opt in with pytest.mark.usefixtures)."""
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()
