"""The generated params file reaches the node wherever it runs: a namespaced node (the
multi-robot and launch-file case) must take its values from `maqbool dump-config`'s YAML."""
from __future__ import annotations

import subprocess
import time

import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rcl_interfaces.msg import ParameterType  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from helpers.node_proc import node_command  # noqa: E402
from maqbool_ros.core.config import MaqboolConfig, ros_params_yaml  # noqa: E402


def test_params_yaml_applies_to_any_node_name_and_namespace():
    data = yaml.safe_load(ros_params_yaml(MaqboolConfig()))
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"]


def _get_parameters(node, service: str, names: list[str], timeout: float = 60.0) -> list:
    """Ask until every name is declared (the service can answer before the node declared them)."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    client = node.create_client(GetParameters, service)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if client.wait_for_service(timeout_sec=0.5):
            future = client.call_async(GetParameters.Request(names=names))
            executor.spin_until_future_complete(future, timeout_sec=10.0)
            values = future.result().values if future.result() else []
            if values and all(v.type != ParameterType.PARAMETER_NOT_SET for v in values):
                return values
        time.sleep(0.1)
    raise AssertionError(f"no parameters from {service} within {timeout}s")


def test_namespaced_node_takes_values_from_the_params_file(tmp_path):
    cfg = MaqboolConfig().replace(top_k=37, robot_id="from_yaml")
    params = tmp_path / "params.yaml"
    params.write_text(ros_params_yaml(cfg))
    log = open(tmp_path / "node.log", "w+")
    proc = subprocess.Popen([*node_command(), "--ros-args", "-r", "__ns:=/robot7", "--params-file", str(params)],
                            stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        probe = rclpy.create_node("params_probe", context=context)
        top_k, robot_id = _get_parameters(probe, "/robot7/maqbool_loop_closure/get_parameters",
                                          ["top_k", "robot_id"])
        assert (top_k.integer_value, robot_id.string_value) == (37, "from_yaml"), \
            (tmp_path / "node.log").read_text()[-2000:]
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
