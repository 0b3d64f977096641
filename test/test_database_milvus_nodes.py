"""Two real maqbool-node processes (two robots) sharing one milvus-lite server: the second
robot's keyframes get the first robot's keyframes of the same places as inter-robot loop
closure candidates."""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("pymilvus", reason="pymilvus is not installed (requirements-python.txt pins it)")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (requirements-python.txt pins it)")

from helpers.milvus_server import MilvusLiteServer  # noqa: E402
from helpers.node_proc import IMAGE_INPUT, Driver, NodeProcess  # noqa: E402
from helpers.tiny_models import IMAGE_SIZE, blocky_image, tiny_model  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402

PLACES = 6


pytestmark = pytest.mark.usefixtures("ros_context")  # rclpy.init/shutdown per module (conftest)


def test_two_nodes_share_one_milvus_map(tmp_path):
    import torch

    torch.manual_seed(0)  # the tiny model's random weights: the same model every run
    model = tiny_model(tmp_path / "tiny.onnx", 64)
    with MilvusLiteServer(tmp_path / "milvus") as server:
        base = MaqboolConfig(**IMAGE_INPUT, method="netvlad", model_path=str(model), device="cpu",
                             image_width=IMAGE_SIZE[0],
                             image_height=IMAGE_SIZE[1], resize_policy="exact", database_backend="milvus",
                             database_uri=server.uri, robot_filter="inter_robot", exclude_recent_keyframes=0,
                             exclude_recent_seconds=0.0, stats_period_s=0.5)
        nodes, drivers = [], []
        try:
            for robot in ("robot_a", "robot_b"):
                nodes.append(NodeProcess(base.replace(robot_id=robot, database_map_id=robot), tmp_path, robot))
                drivers.append(Driver(nodes[-1]))
            for d in drivers:
                d.wait_for_node()
            a, b = drivers
            for i in range(PLACES):  # robot a maps the places; nothing of another robot yet
                cand = a.publish_and_wait(a.image_msg(blocky_image(i), frame_id=str(i)))
                assert cand.robot_id == "robot_a" and len(cand.candidates) == 0
            for i in range(PLACES):  # robot b revisits them: inter-robot candidates from robot a
                cand = b.publish_and_wait(b.image_msg(blocky_image(i, noise=8.0), frame_id=str(100 + i)))
                assert cand.robot_id == "robot_b"
                assert {c.robot_id for c in cand.candidates} == {"robot_a"}
                assert cand.candidates[0].keyframe_id == i
            outbox = b.latest_stats()["database_outbox"]  # the server was up: nothing waits, nothing failed
            assert outbox["buffered"] == 0 and outbox["failed_attempts"] == 0 and outbox["search_failures"] == 0
        finally:
            for d in drivers:
                d.close()
            codes = [n.stop() for n in nodes]
        assert codes == [0, 0], [n.log_text()[-2000:] for n in nodes]
