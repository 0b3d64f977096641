"""ROS parameters generated from the one config schema (maqbool_ros.core.config)."""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from maqbool_ros.core.config import FIELD_OF, FIELDS, KEYS, MaqboolConfig, check_value, renamed
from maqbool_ros.ros.startup import StartupError

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def descriptor_for(name: str, fields: dict | None = None) -> ParameterDescriptor:
    """A ParameterDescriptor with the schema's help, type, range and read-only flag. name: a
    parameter (``section.short``) of the node, or of another schema with the same metadata
    given as fields (the RTAB-Map bridge's flat BRIDGE_FIELDS)."""
    f = fields[name] if fields is not None else FIELDS[FIELD_OF[name]]
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


def refuse_renamed(node: Node) -> None:
    """StartupError (one line, exit 2) when a params file or -p set a flat pre-sections name:
    rclpy would otherwise drop the override silently and start with the default."""
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps them here; no public getter
    old = sorted(name for name in overrides if name in FIELDS)
    if old:
        more = ", ".join(f"{name} -> {KEYS[name]}" for name in old[1:])
        raise StartupError(renamed(old[0]) + (f"; also renamed: {more}" if more else ""))


def declare_parameters(node: Node, defaults: MaqboolConfig | None = None) -> MaqboolConfig:
    """Declare every schema field on the node as ``section.short`` (overrides from
    --params-file / -p apply) and return the resulting validated config."""
    refuse_renamed(node)
    defaults = defaults or MaqboolConfig()
    for name, key in KEYS.items():
        node.declare_parameter(key, getattr(defaults, name), descriptor_for(key))
    return MaqboolConfig.from_dict({key: node.get_parameter(key).value for key in FIELD_OF})


def validate_change(name: str, value) -> str | None:
    """Reason why parameter name (``section.short``) = value is not allowed, or None when it is."""
    if name not in FIELD_OF:
        return None  # not ours (e.g. use_sim_time)
    try:
        check_value(name, value)
    except ValueError as exc:
        return str(exc)
    return None


def image_qos(cfg: MaqboolConfig, best_effort: bool = False) -> QoSProfile:
    """QoS of the image subscription (input.image_qos_reliability / image_qos_depth); auto starts
    reliable, and best_effort=True is its fallback once a best-effort publisher appeared."""
    sec = cfg.section("input")
    reliable = sec.image_qos_reliability == "reliable" or (sec.image_qos_reliability == "auto" and not best_effort)
    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=sec.image_qos_depth, reliability=reliability)


def default_robot_id(node: Node, configured: str) -> str:
    """The robot id of a node: the configured one, else its namespace ("/a/b" -> "a_b"), else robot0.
    The loop-closure node and the RTAB-Map bridge share this rule, so their ids agree."""
    return configured or node.get_namespace().strip("/").replace("/", "_") or "robot0"
