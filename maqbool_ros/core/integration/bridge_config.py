"""Options of the RTAB-Map bridge (`maqbool-rtabmap-bridge`): its ROS parameters and --help,
with the same field metadata (help, range, choices) as the node's schema in core/config.py.
They are not MaqboolConfig fields: the bridge is a separate node with its own parameters."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from maqbool_ros.core.config import _f
from maqbool_ros.core.integration.links import LINK_POSE_TYPES

BRIDGE_NODE_NAME = "maqbool_rtabmap_bridge"


@dataclass
class BridgeConfig:
    """All bridge parameters (names are the ROS parameter names). docs/rtabmap.md."""

    robot_id: str = _f(
        "",
        "Robot id of the keyframes the bridge publishes; only candidates of this robot become links (this RTAB-Map "
        "holds no other). Empty: the namespace, or robot0 (the node's own rule, so both agree in one namespace).")
    map_data_topic: str = _f("rtabmap/mapData", "rtabmap_msgs/MapData from RTAB-Map: new nodes become keyframes.")
    info_topic: str = _f("rtabmap/info", "rtabmap_msgs/Info from RTAB-Map: wm_state, the working-memory node ids.")
    add_link_service: str = _f(
        "rtabmap/rtabmap/add_link",
        "RTAB-Map's AddLink service (rtabmap_slam names it <node name>/add_link inside its namespace).")
    get_map_service: str = _f(
        "rtabmap/rtabmap/get_map_data",
        "RTAB-Map's GetMap service, called once at start when seed_from_map is true.")
    seed_from_map: bool = _f(
        False,
        "At start, ask RTAB-Map for its whole map (get_map_service, with images) and publish every node as a "
        "keyframe, so loops to nodes mapped before the bridge started can be found.")
    keyframe_topic: str = _f("keyframes", "maqbool_ros/Keyframe output: the node's keyframe_topic.")
    candidates_topic: str = _f("loop_closure/candidates", "LoopClosureCandidate input: the node's candidates_topic.")
    link_pose_types: str = _f(
        "metric",
        "Which verified poses become links. metric: only POSE_METRIC (RGB-D nodes with depth: RTAB-Map's graph is "
        "metric). metric+rotation: also monocular POSE_ROTATION_UNIT_TRANSLATION poses, sent as rotation-only "
        "links (translation 0 with variance 9999 m^2, RTAB-Map's 'ignored' value).",
        choices=LINK_POSE_TYPES)
    candidate_pose_frame: str = _f(
        "camera",
        "Frame of the node's relative poses. camera: optical frames (the node's camera_to_base is the identity); "
        "the bridge converts them to base frames with each RTAB-Map node's camera local_transform. base: the "
        "node already converts (camera_to_base set); poses are sent as they are.",
        choices=("camera", "base"))
    max_links_per_query: int = _f(
        1, "Links sent per query keyframe at most, the verified candidate with the most inliers first (RTAB-Map "
        "adds one loop closure per node).", range=(1, 100, 1))
    min_variance: float = _f(
        1e-6, "Floor of the covariance eigenvalues before inversion (m^2, rad^2): bounds the information matrix.",
        range=(1e-12, 1.0, 0.0))
    service_timeout_s: float = _f(
        2.0, "Waiting time for RTAB-Map's add_link answer (seconds); a call not answered counts as failed.",
        range=(0.1, 60.0, 0.0))
    stats_period_s: float = _f(5.0, "Period of the ~/stats JSON message (seconds).",
                               range=(0.1, 3600.0, 0.0))

    def validate(self) -> None:
        """ValueError naming the first field of the wrong type, out of range or not a choice."""
        for f in dataclasses.fields(self):
            check_bridge_value(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BridgeConfig:
        unknown = sorted(set(values) - set(BRIDGE_FIELDS))
        if unknown:
            raise ValueError(f"unknown bridge parameter(s): {', '.join(unknown)}")
        cfg = cls(**values)
        cfg.validate()
        return cfg


BRIDGE_FIELDS = {f.name: f for f in dataclasses.fields(BridgeConfig)}


def check_bridge_value(name: str, value: Any) -> Any:
    """The value converted to the field's type (int given for a float is accepted); ValueError otherwise."""
    f = BRIDGE_FIELDS[name]
    typ = type(f.default)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ValueError(f"{name}: expected {typ.__name__}, got {type(value).__name__} ({value!r})")
    meta = f.metadata
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"{name}: {value!r} is not one of {list(meta['choices'])}")
    if meta["range"] is not None and not meta["range"][0] <= value <= meta["range"][1]:
        raise ValueError(f"{name}: {value!r} is outside [{meta['range'][0]}, {meta['range'][1]}]")
    return value


def help_text() -> str:
    """The parameters, defaults and meanings, for `maqbool-rtabmap-bridge --help`."""
    lines = []
    for name, f in BRIDGE_FIELDS.items():
        meta = f.metadata
        extra = f" One of: {', '.join(meta['choices'])}." if meta["choices"] else ""
        if meta["range"] is not None:
            extra += f" Range {meta['range'][0]}..{meta['range'][1]}."
        lines.append(f"  {name} (default {f.default!r})\n      {meta['help']}{extra}")
    return "\n".join(lines)
