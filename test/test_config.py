"""One schema: dataclass defaults == config/*.yaml == dump-config output == ROS parameters."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from maqbool_ros.core.config import FIELDS, MaqboolConfig, check_value, plain_yaml, ros_params_yaml
from maqbool_ros.tools.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_config_files_equal_dump_config_output(tmp_path):
    assert cli_main(["dump-config", "--out-dir", str(tmp_path)]) == 0
    for name in ("maqbool.yaml", "maqbool_ros_params.yaml"):
        assert (REPO / "config" / name).read_text() == (tmp_path / name).read_text(), \
            f"config/{name} is stale: run `maqbool dump-config`"


def test_config_files_hold_the_dataclass_defaults():
    defaults = MaqboolConfig().to_dict()
    plain = yaml.safe_load((REPO / "config" / "maqbool.yaml").read_text())
    ros = yaml.safe_load((REPO / "config" / "maqbool_ros_params.yaml").read_text())
    assert plain == defaults
    assert ros == {"/**": {"ros__parameters": defaults}}  # any node name, any namespace
    assert MaqboolConfig.from_yaml(REPO / "config" / "maqbool_ros_params.yaml") == MaqboolConfig()


def test_every_field_has_help_and_a_valid_default():
    for name, f in FIELDS.items():
        assert f.metadata["help"], name
        check_value(name, f.default)


@pytest.mark.parametrize("name,value,needle", [
    ("region_budget", 4, "region_budget"), ("region_budget", 51, "outside"),
    ("method", "orb", "method"), ("top_k", 2.5, "expected int"), ("alpha", math.nan, "alpha"),
    ("fp16", 1, "expected bool"),
])
def test_invalid_values_name_the_field(name, value, needle):
    with pytest.raises(ValueError, match=needle):
        MaqboolConfig().replace(**{name: value})


def test_unknown_yaml_key_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("region_budgt: 10\n")
    with pytest.raises(ValueError, match="region_budgt"):
        MaqboolConfig.from_yaml(path)


def test_yaml_round_trip_of_changed_values(tmp_path):
    cfg = MaqboolConfig().replace(region_budget=7, method="netvlad", alpha=0.5)
    (tmp_path / "a.yaml").write_text(plain_yaml(cfg))
    (tmp_path / "b.yaml").write_text(ros_params_yaml(cfg))
    assert MaqboolConfig.from_yaml(tmp_path / "a.yaml") == cfg
    assert MaqboolConfig.from_yaml(tmp_path / "b.yaml") == cfg


def test_ros_params_file_may_hold_use_sim_time(tmp_path):
    """A launch or params file sets use_sim_time next to the schema fields: the CLI tools
    that read the same file (--config) must not reject it as an unknown field."""
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    top_k: 9\n")
    assert MaqboolConfig.from_yaml(path) == MaqboolConfig(top_k=9)


def test_node_declares_exactly_the_schema():
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from rcl_interfaces.msg import ParameterType
    from rclpy.node import Node

    from maqbool_ros.ros.params import declare_parameters

    rclpy.init()
    try:
        node = Node("schema_check")
        cfg = declare_parameters(node)
        assert cfg == MaqboolConfig()
        declared = {n: node.get_parameter(n).value for n in FIELDS}
        assert declared == MaqboolConfig().to_dict()
        desc = node.describe_parameter("region_budget")
        assert (desc.integer_range[0].from_value, desc.integer_range[0].to_value) == (5, 50)
        assert desc.type == ParameterType.PARAMETER_INTEGER
        assert node.describe_parameter("model_path").read_only
        node.destroy_node()
    finally:
        rclpy.shutdown()
