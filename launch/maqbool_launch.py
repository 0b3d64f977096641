"""The one launch description behind maqbool.launch.py, orbslam3.launch.py and rtabmap.launch.py.

Each launch file only picks a preset (argument defaults, fixed parameter overrides, whether the
RTAB-Map bridge runs too) and calls ``launch_description(...)``; every argument is declared here,
once. Installed next to the launch files (share/maqbool_ros/launch) and loaded by path, as it is
no Python package. docs/launch.md tables every argument with its default per launch file
(``ros2 launch maqbool_ros <file> --show-args`` lists them too).
"""
from __future__ import annotations

import os

NODE_NAME = "maqbool_loop_closure"
EXECUTABLE = "loop_closure_node"
BRIDGE_NAME = "maqbool_rtabmap_bridge"
BRIDGE_EXECUTABLE = "rtabmap_bridge"

# name -> (default, description); the preset of a launch file may change the defaults.
ARGUMENTS: dict[str, tuple[str, str]] = {
    "params_file": ("", "ROS parameters file (`maqbool dump-config` writes one); empty: the package's default"),
    "namespace": ("", "Namespace of the node (and bridge); also the robot id when robot_id is empty"),
    "input_type": ("", "keyframe (maqbool_ros/Keyframe on keyframe_topic) or image (plain images on image_topic); "
                       "empty: the params file's"),
    "keyframe_topic": ("", "Keyframe topic (empty: the params file's input.keyframe_topic)"),
    "image_topic": ("", "Image topic when input_type is image (empty: the params file's input.image_topic)"),
    "candidates_topic": ("", "LoopClosureCandidate output topic (empty: the params file's output.candidates_topic)"),
    "method": ("", "Re-ranking method: netvlad, maqbool or landmarks (empty: the params file's rerank.method)"),
    "robot_id": ("", "Robot / agent id for keyframes without one (empty: the params file's, else the namespace)"),
    "pose_source": ("", "Keyframe positions for ~/loop_markers: none, pose, odometry, path or rtabmap_graph "
                        "(empty: the params file's)"),
    "pose_topic": ("", "Topic of the pose source (empty: the params file's, else the source's default)"),
    "markers_frame": ("", "frame_id of ~/loop_markers (empty: the params file's markers.frame)"),
    "use_sim_time": ("false", "true: take time from /clock (a simulator, a bag, `maqbool bag play --clock`)"),
}
# Launch arguments that, when not empty, override a schema parameter: argument -> parameter
# (section.short, core/config.py KEYS). The arguments keep their short names (`method:=maqbool`).
OVERRIDES = {"input_type": "input.type", "keyframe_topic": "input.keyframe_topic", "image_topic": "input.image_topic",
             "candidates_topic": "output.candidates_topic", "method": "rerank.method", "robot_id": "input.robot_id",
             "pose_source": "markers.pose_source", "pose_topic": "markers.pose_topic",
             "markers_frame": "markers.frame"}

# The RTAB-Map bridge's own launch arguments (rtabmap.launch.py only): bridge parameters of the
# same name (docs/rtabmap.md). keyframe_topic, candidates_topic and robot_id are shared with the node.
BRIDGE_ARGUMENTS: dict[str, tuple[str, str]] = {
    "map_data_topic": ("rtabmap/mapData", "rtabmap_msgs/MapData from RTAB-Map (new nodes become keyframes)"),
    "info_topic": ("rtabmap/info", "rtabmap_msgs/Info from RTAB-Map (working-memory ids)"),
    "add_link_service": ("rtabmap/rtabmap/add_link", "RTAB-Map's AddLink service the bridge calls"),
    "link_pose_types": ("metric", "metric or metric+rotation: which verified poses become links"),
    "seed_from_map": ("false", "true: at start, publish RTAB-Map's whole map (get_map_data) as keyframes"),
}
BRIDGE_SHARED = ("keyframe_topic", "candidates_topic", "robot_id")


def default_params_file() -> str:
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory("maqbool_ros"), "config", "maqbool_ros_params.yaml")


def _bool(values: dict[str, str], name: str, default: str = "false") -> bool:
    text = values.get(name, default).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"{name}: expected true or false, got {values.get(name)!r}")
    return text == "true"


def node_parameters(values: dict[str, str], preset: dict | None = None) -> list:
    """The node's ``parameters=`` list from resolved launch arguments: the params file, then
    the preset's fixed values (section.short names), then every non-empty override argument
    (as its parameter) and use_sim_time."""
    overrides = dict(preset or {})
    overrides.update({param: values[arg] for arg, param in OVERRIDES.items() if values.get(arg, "")})
    if values.get("pose_source") == "rtabmap_graph" and values.get("map_data_topic") and not values.get("pose_topic"):
        overrides["markers.pose_topic"] = values["map_data_topic"]  # rtabmap: the markers read the bridge's MapData
    overrides["use_sim_time"] = _bool(values, "use_sim_time")
    return [values.get("params_file") or default_params_file(), overrides]


def bridge_parameters(values: dict[str, str]) -> list:
    """The bridge's ``parameters=``: its own arguments, the shared topics / robot id when set
    (else the bridge's defaults, which are the node's), and use_sim_time."""
    params: dict = {name: values.get(name, default) for name, (default, _) in BRIDGE_ARGUMENTS.items()}
    params["seed_from_map"] = _bool(values, "seed_from_map")
    params.update({name: values[name] for name in BRIDGE_SHARED if values.get(name, "")})
    params["use_sim_time"] = _bool(values, "use_sim_time")
    return [params]


def launch_description(defaults: dict[str, str] | None = None, preset: dict | None = None, bridge: bool = False):
    """A LaunchDescription declaring every argument of ARGUMENTS (and BRIDGE_ARGUMENTS with
    ``bridge``), defaults changed by ``defaults``, starting the loop-closure node with ``preset``
    parameter values, and with ``bridge`` the RTAB-Map bridge in the same namespace."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    table = {**ARGUMENTS, **(BRIDGE_ARGUMENTS if bridge else {})}
    defaults = defaults or {}
    unknown = sorted(set(defaults) - set(table))
    if unknown:
        raise ValueError(f"unknown launch argument(s) in defaults: {', '.join(unknown)}")

    def start_nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in table}
        nodes = [Node(package="maqbool_ros", executable=EXECUTABLE, name=NODE_NAME,
                      namespace=values["namespace"], parameters=node_parameters(values, preset),
                      output="screen", emulate_tty=True)]
        if bridge:
            nodes.append(Node(package="maqbool_ros", executable=BRIDGE_EXECUTABLE, name=BRIDGE_NAME,
                              namespace=values["namespace"], parameters=bridge_parameters(values),
                              output="screen", emulate_tty=True))
        return nodes

    declared = [DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=text)
                for name, (default, text) in table.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=start_nodes)])
