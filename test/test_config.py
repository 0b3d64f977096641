"""One schema: dataclass defaults == config/*.yaml == dump-config output == ROS parameters."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from maqbool_ros.core.config import (
    FIELD_OF,
    FIELDS,
    KEYS,
    ROS_NODE_PARAMETERS,
    SECTIONS,
    MaqboolConfig,
    check_value,
    plain_yaml,
    ros_params_yaml,
)
from maqbool_ros.tools.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_config_files_equal_dump_config_output(tmp_path):
    assert cli_main(["dump-config", "--out-dir", str(tmp_path)]) == 0
    for name in ("maqbool.yaml", "maqbool_ros_params.yaml"):
        assert (REPO / "config" / name).read_text() == (tmp_path / name).read_text(), \
            f"config/{name} is stale: run `maqbool dump-config`"


def test_config_files_hold_the_dataclass_defaults():
    defaults = MaqboolConfig().to_nested()
    plain = yaml.safe_load((REPO / "config" / "maqbool.yaml").read_text())
    ros = yaml.safe_load((REPO / "config" / "maqbool_ros_params.yaml").read_text())
    assert plain == defaults and list(plain) == list(SECTIONS)  # nested by section, in SECTIONS order
    assert ros == {"/**": {"ros__parameters": defaults}}  # any node name, any namespace
    assert MaqboolConfig.from_yaml(REPO / "config" / "maqbool_ros_params.yaml") == MaqboolConfig()


def test_every_field_has_help_and_a_valid_default():
    for name, f in FIELDS.items():
        assert f.metadata["help"], name
        check_value(name, f.default)


def test_every_field_has_one_section_key():
    """section.short for every field; short is the attribute less its section_ prefix unless the
    field names its key; no two fields share a key; the old flat names are the attribute names."""
    assert len(FIELD_OF) == len(FIELDS)
    for name, f in FIELDS.items():
        section, short = KEYS[name].split(".")
        assert section == f.metadata["section"] in SECTIONS, name
        assert short == (f.metadata["key"] or name.removeprefix(section + "_")), name
    assert KEYS["verification_max_features"] == "verification.max_features"
    assert KEYS["sequence_length"] == "sequence.length" and KEYS["database_path"] == "database.path"
    assert KEYS["camera_fx"] == "camera.fx" and KEYS["model_path"] == "descriptor.model_path"


def test_section_view_is_read_only_by_short_name():
    cfg = MaqboolConfig(verification_top_n=5)
    view = cfg.section("verification")
    assert view.top_n == view["top_n"] == 5 and "top_n" in view
    assert set(view) == {KEYS[n].split(".")[1] for n in FIELDS if KEYS[n].startswith("verification.")}
    with pytest.raises(AttributeError, match="read-only"):
        view.top_n = 3
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = view.nope
    with pytest.raises(KeyError, match="no config section"):
        cfg.section("verify")


@pytest.mark.parametrize("name,value,needle", [
    ("region_budget", 4, "maqbool.region_budget"), ("region_budget", 51, "outside"),
    ("method", "orb", "rerank.method"), ("top_k", 2.5, "expected int"), ("alpha", math.nan, "maqbool.alpha"),
    ("fp16", 1, "expected bool"),
])
def test_invalid_values_name_the_field(name, value, needle):
    with pytest.raises(ValueError, match=needle):
        MaqboolConfig().replace(**{name: value})


def test_unknown_yaml_key_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("maqbool:\n  region_budgt: 10\n")
    with pytest.raises(ValueError, match="maqbool.region_budgt"):
        MaqboolConfig.from_yaml(path)


@pytest.mark.parametrize("text", ["verification_max_features: 500\n",
                                  "/**:\n  ros__parameters:\n    verification_max_features: 500\n"])
def test_old_flat_yaml_key_names_its_new_key(tmp_path, text):
    path = tmp_path / "old.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="'verification_max_features' was renamed to 'verification.max_features'"):
        MaqboolConfig.from_yaml(path)


def test_params_file_may_use_dotted_keys(tmp_path):
    """ROS reads `verification.max_features: 500` and the nested layout alike; so does from_yaml."""
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters:\n    verification.max_features: 500\n    database:\n      top_k: 9\n")
    assert MaqboolConfig.from_yaml(path) == MaqboolConfig(verification_max_features=500, top_k=9)


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
    path.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    database:\n      top_k: 9\n")
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
        names = set(node.list_parameters([], 0).names) - ROS_NODE_PARAMETERS
        assert names == set(FIELD_OF)  # section.short, nothing else
        declared = {k: node.get_parameter(k).value for k in FIELD_OF}
        assert declared == MaqboolConfig().to_params()
        desc = node.describe_parameter("maqbool.region_budget")
        assert (desc.integer_range[0].from_value, desc.integer_range[0].to_value) == (5, 50)
        assert desc.type == ParameterType.PARAMETER_INTEGER
        assert node.describe_parameter("descriptor.model_path").read_only
        node.destroy_node()
    finally:
        rclpy.shutdown()


def test_node_refuses_an_old_flat_parameter_name():
    """An override under the old name would be dropped silently by rclpy (the node would run
    with the default): the node refuses to start, naming the new name."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from maqbool_ros.ros.params import declare_parameters
    from maqbool_ros.ros.startup import StartupError

    rclpy.init()
    try:
        node = Node("schema_old_names", parameter_overrides=[
            Parameter("verification_max_features", value=500), Parameter("top_k", value=9)])
        with pytest.raises(StartupError, match=r"'top_k' was renamed to 'database.top_k' .*"
                                               r"also renamed: verification_max_features -> verification.max_features"):
            declare_parameters(node)
        node.destroy_node()
    finally:
        rclpy.shutdown()


def test_docs_node_md_tables_are_the_schema_mapping():
    """docs/node.md lists every section and the old flat name -> parameter mapping: both from KEYS."""
    import re

    text = (REPO / "docs" / "node.md").read_text()
    renamed = dict(re.findall(r"^\| `(\w+)` \| `(\w+\.\w+)` \|$", text, flags=re.M))
    assert renamed == KEYS
    sections = re.findall(r"^\| `(\w+)` \| [^|]+ \| (\d+) \|$", text, flags=re.M)
    assert [s for s, _ in sections] == list(SECTIONS)
    assert sum(int(n) for _, n in sections) == len(FIELDS)
