"""ROS parameters generated from the one config schema (maqbool_ros.core.config)."""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from maqbool_ros.core.config import FIELDS, MaqboolConfig, check_value

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def descriptor_for(name: str, fields: dict | None = None) -> ParameterDescriptor:
    """A ParameterDescriptor with the schema's help, type, range and read-only flag. fields: another
    schema with the same metadata (the RTAB-Map bridge's BRIDGE_FIELDS); default the node's."""
    f = (fields or FIELDS)[name]
    meta = f.metadata
    typ = type(f.default)
    desc = ParameterDescriptor(name=name, type=_TYPES[typ], read_only=bool(meta["read_only"]))
    text = meta["help"]
    if meta["choices"] is not None:
        text += f" One of: {', '.join(str(c) for c in meta['choices'])}."
        desc.additional_constraints = f"one of {list(meta['choices'])}"
    desc.description = text
    if meta["range"] is not None:
        lo, hi, step = meta["range"]
        if typ is int:
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))]
        elif typ is float:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=float(step))]
    return desc


def declare_parameters(node: Node, defaults: MaqboolConfig | None = None) -> MaqboolConfig:
    """Declare every schema field on the node (overrides from --params-file / -p apply)
    and return the resulting validated config."""
    defaults = defaults or MaqboolConfig()
    for name in FIELDS:
        node.declare_parameter(name, getattr(defaults, name), descriptor_for(name))
    values = {name: node.get_parameter(name).value for name in FIELDS}
    return MaqboolConfig.from_dict(values)


def validate_change(name: str, value) -> str | None:
    """Reason why name=value is not allowed, or None when it is."""
    if name not in FIELDS:
        return None  # not ours (e.g. use_sim_time)
    try:
        check_value(name, value)
    except ValueError as exc:
        return str(exc)
    return None


def image_qos(cfg: MaqboolConfig, best_effort: bool = False) -> QoSProfile:
    """QoS of the image subscription (image_qos_reliability / image_qos_depth); auto starts
    reliable, and best_effort=True is its fallback once a best-effort publisher appeared."""
    reliable = cfg.image_qos_reliability == "reliable" or (cfg.image_qos_reliability == "auto" and not best_effort)
    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.image_qos_depth, reliability=reliability)


def default_robot_id(node: Node, configured: str) -> str:
    """The robot id of a node: the configured one, else its namespace ("/a/b" -> "a_b"), else robot0.
    The loop-closure node and the RTAB-Map bridge share this rule, so their ids agree."""
    return configured or node.get_namespace().strip("/").replace("/", "_") or "robot0"
