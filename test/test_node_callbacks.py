"""Service, timer and parameter callbacks turn errors into failed responses and counted,
logged errors: the node never dies of them (issue #11 defect 3). In-process node, real ROS calls."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from helpers.node_proc import unique_namespace  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig  # noqa: E402
from maqbool_ros.core.database import KeyframeDatabase  # noqa: E402
from maqbool_ros.ros.node import LoopClosureNode  # noqa: E402


class BrokenPipeline:
    """Just enough pipeline for the node (a real, empty in-memory database the stats read);
    every database operation through the pipeline fails."""

    def __init__(self):
        self.database = KeyframeDatabase(8)
        self.config = MaqboolConfig()

    def reset_database(self):
        raise OSError("disk on fire")

    def save_database(self):
        raise OSError("read-only file system")

    def update_config(self, **changes):
        raise RuntimeError("engine gone")

    def describe(self, *args, **kwargs):
        raise RuntimeError("engine gone")

    def close(self):
        pass


@pytest.fixture()
def running_node():
    rclpy.init()
    ns = unique_namespace()
    from rclpy.parameter import Parameter

    node = LoopClosureNode(pipeline=BrokenPipeline(), namespace=ns,
                           parameter_overrides=[Parameter("diagnostics.stats_period_s", value=0.2)])
    client_node = rclpy.create_node("callbacks_client", namespace=ns)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    executor.add_node(client_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield node, client_node, spinner
    node.stop()
    executor.shutdown()
    spinner.join(timeout=10)
    client_node.destroy_node()
    node.destroy_node()
    rclpy.shutdown()


def _call(client_node, name: str, srv_type=Trigger, request=None):
    client = client_node.create_client(srv_type, f"maqbool_loop_closure/{name}")
    assert client.wait_for_service(timeout_sec=30)
    future = client.call_async(request if request is not None else srv_type.Request())
    end = time.monotonic() + 30
    while not future.done() and time.monotonic() < end:
        time.sleep(0.02)
    assert future.done(), f"no answer from {name}"
    return future.result()


def test_failing_services_answer_with_an_error_and_the_node_lives_on(running_node):
    node, client_node, spinner = running_node
    reset = _call(client_node, "reset_database")
    assert not reset.success and "disk on fire" in reset.message
    saved = _call(client_node, "save_database")
    assert not saved.success and "read-only" in saved.message
    assert spinner.is_alive()
    assert node.stats()["counts"]["callback_errors"] == 2
    assert _call(client_node, "reset_database").success is False  # still serving


def test_failing_parameter_change_and_stats_timer_are_counted(running_node):
    from rclpy.parameter import Parameter

    node, _, spinner = running_node
    result = node.set_parameters([Parameter("maqbool.region_budget", value=10)])[0]
    assert not result.successful and "engine gone" in result.reason
    node.pipeline.database = None  # len(None) fails inside the stats timer
    end = time.monotonic() + 30
    while node.counts["callback_errors"] < 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert node.counts["callback_errors"] >= 2 and spinner.is_alive()


def test_failing_detect_and_remove_answer_with_an_error(running_node):
    """~/detect and ~/remove_keyframes: a request error names the field (not counted as the
    node's error); a pipeline failure is counted; the node serves on."""
    from sensor_msgs.msg import Image

    from maqbool_ros.msg import Keyframe
    from maqbool_ros.srv import Detect, RemoveKeyframes

    node, client_node, spinner = running_node
    empty = _call(client_node, "detect", Detect, Detect.Request())
    assert not empty.success and "keyframe.image / keyframe.compressed_image" in empty.message
    image = Image(height=32, width=32, encoding="mono8", step=32, data=bytes(range(256)) * 4)  # valid, not blank
    failed = _call(client_node, "detect", Detect, Detect.Request(keyframe=Keyframe(image=image)))
    assert not failed.success and "engine gone" in failed.message
    bad_robot = _call(client_node, "remove_keyframes", RemoveKeyframes,
                      RemoveKeyframes.Request(keyframe_ids=[1], robot_id="\x01"))
    assert not bad_robot.success and "robot_id" in bad_robot.message
    ok = _call(client_node, "remove_keyframes", RemoveKeyframes, RemoveKeyframes.Request(keyframe_ids=[1, 2]))
    assert ok.success and ok.removed == 0  # unknown ids are not an error
    assert node.stats()["counts"]["callback_errors"] == 1 and spinner.is_alive()


def test_counter_ids_continue_after_the_robots_stored_ones():
    """input_type image, keyframe_id_source counter: a reloaded map's ids are not handed out
    again (they would be refused as duplicates); another robot's ids do not matter."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import Header

    pipeline = BrokenPipeline()
    for kf, robot in ((3, "rover"), (7, "rover"), (50, "other")):
        pipeline.database.add(kf, robot, 0.0, np.ones(8))
    rclpy.init()
    try:
        node = LoopClosureNode(pipeline=pipeline, namespace=unique_namespace(), parameter_overrides=[
            Parameter("input.type", value="image"), Parameter("input.robot_id", value="rover")])
        try:
            assert [node.inputs._ids.next_id(Header(frame_id="12")) for _ in range(2)] == [8, 9]
        finally:
            node.stop()
            node.destroy_node()
    finally:
        rclpy.shutdown()
