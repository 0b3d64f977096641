"""The runtime wing runs alone: a venv with only the runtime requirements (no torch, scikit-learn,
skl2onnx, matplotlib, rosbags, h5py) runs the node on prepared artifacts (the default model,
built here by the offline wing) over the demo sequence, and answers as the in-process pipeline does."""
from __future__ import annotations

import os
import subprocess

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from helpers.node_proc import Driver, NodeProcess  # noqa: E402
from helpers.runtime_venv import OFFLINE_ONLY, REPO, make_runtime_venv  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("ros_context")


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory):
    try:
        python = make_runtime_venv(tmp_path_factory.mktemp("runtime-venv") / "venv")
    except (LookupError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make the runtime-only venv from this environment's installed wheels: {exc}")
    probe = subprocess.run([str(python), "-c", "import importlib.util as u, sys; "
                            f"print([m for m in {OFFLINE_ONLY!r} if u.find_spec(m.replace('-', '_'))])"],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    # scikit-learn imports as sklearn: check that name too
    absent = subprocess.run([str(python), "-c", "import sklearn"], capture_output=True)
    assert probe.returncode == 0 and probe.stdout.strip() == "[]" and absent.returncode != 0, probe.stderr
    return python


def test_the_node_runs_the_demo_sequence_with_only_the_runtime_installed(runtime_python, tmp_path):
    from maqbool_ros.core.data.demo_sequence import demo_sequence
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    # the exclusion window in keyframes only: the node stamps keyframes on arrival, the offline run by index
    cfg = MaqboolConfig(image_width=320, image_height=240, database_path=str(tmp_path / "db"), top_k=5,
                        exclude_recent_seconds=0.0, robot_id="r")
    frames = demo_sequence()
    images = [frames.frames[i] for i in range(len(frames.frames))]  # the whole demo sequence
    # the offline answer; building it also prepares the default model in the cache, as `make install` does
    pipeline = LoopClosurePipeline(cfg.replace(database_path=str(tmp_path / "db-offline")))
    expected = []
    for i, rgb in enumerate(images):
        res = pipeline.process(rgb, keyframe_id=i, robot_id="r", stamp=float(i))
        expected.append([int(k) for k in res.keyframe_ids] if res is not None else [])
    pipeline.close()

    env = dict(os.environ, PYTHONPATH=str(REPO))
    node = NodeProcess(cfg, tmp_path, command=[str(runtime_python), "-m", "maqbool_ros.ros.node"], env=env)
    driver = Driver(node)
    try:
        driver.wait_for_node(timeout=120)
        online = []
        for i, rgb in enumerate(images):
            out = driver.publish_and_wait(driver.keyframe_msg(i, rgb), timeout=60)
            online.append([int(c.keyframe_id) for c in out.candidates])
        assert online == expected
        assert any(expected), "the demo's first frames hold revisits: some keyframe must have candidates"
        assert node.stop() == 0
    finally:
        driver.close()
        node.stop()
    log = node.log_text()
    assert "Traceback" not in log and "torch" not in log, log[-2000:]
