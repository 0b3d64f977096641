"""The generated params file reaches the node wherever it runs: a namespaced node (the
multi-robot and launch-file case) must take its values from `maqbool dump-config`'s YAML."""
from __future__ import annotations

import subprocess
import time

import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rcl_interfaces.msg import (
    ListParametersResult,  # noqa: E402
    ParameterType,  # noqa: E402
)
from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from helpers.node_proc import node_command  # noqa: E402
from maqbool_ros.core.config import FIELD_OF, ROS_NODE_PARAMETERS, MaqboolConfig, ros_params_yaml  # noqa: E402


def test_params_yaml_applies_to_any_node_name_and_namespace():
    data = yaml.safe_load(ros_params_yaml(MaqboolConfig()))
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"]


def _ask(node, srv_type, service: str, request, ready, timeout: float = 60.0):
    """Call service until ready(response) (the service can answer before the node declared its
    parameters); AssertionError on timeout."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    client = node.create_client(srv_type, service)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if client.wait_for_service(timeout_sec=0.5):
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=10.0)
            if future.result() is not None and ready(future.result()):
                return future.result()
        time.sleep(0.1)
    raise AssertionError(f"no answer from {service} within {timeout}s")


def _get_parameters(node, service: str, names: list[str]) -> list:
    """The values of names, once every one is declared."""
    return _ask(node, GetParameters, service, GetParameters.Request(names=names),
                lambda r: r.values and all(v.type != ParameterType.PARAMETER_NOT_SET for v in r.values)).values


def _list_parameters(node, service: str, prefixes: list[str], depth: int) -> ListParametersResult:
    """What `ros2 param list` asks (prefixes [], depth 0: all), once the schema is declared."""
    request = ListParameters.Request(prefixes=prefixes, depth=depth)
    return _ask(node, ListParameters, service, request, lambda r: "markers.labels" in r.result.names
                or prefixes == ["verification"] and r.result.names).result


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
                                          ["database.top_k", "input.robot_id"])
        assert (top_k.integer_value, robot_id.string_value) == (37, "from_yaml"), \
            (tmp_path / "node.log").read_text()[-2000:]
        # `ros2 param list`: the schema's section.short names, nothing flat
        listed = _list_parameters(probe, "/robot7/maqbool_loop_closure/list_parameters", [], 0)
        assert set(listed.names) - ROS_NODE_PARAMETERS == set(FIELD_OF)
        assert "verification.max_features" in listed.names and "verification_max_features" not in listed.names
        # `ros2 param list --param-prefixes verification`: one section
        section = _list_parameters(probe, "/robot7/maqbool_loop_closure/list_parameters", ["verification"], 1)
        assert set(section.names) == {k for k in FIELD_OF if k.startswith("verification.")}
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def test_node_refuses_an_old_flat_parameter_name_at_start(tmp_path):
    """`-p top_k:=37` (the pre-sections name) would be dropped silently by rclpy: the node exits
    2 at start with one line naming the new parameter instead."""
    proc = subprocess.run([*node_command(), "--ros-args", "-r", "__ns:=/robot8", "-p", "top_k:=37"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "parameter 'top_k' was renamed to 'database.top_k' (" in proc.stderr
    assert "Traceback" not in proc.stderr
