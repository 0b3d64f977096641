"""The one launch description behind maqbool.launch.py, orbslam3.launch.py and rtabmap.launch.py.

Each launch file only picks a preset (default topics, robot id, fixed parameter overrides) and
calls ``launch_description(...)``; every argument is declared here, once. Installed next to
the launch files (share/maqbool_ros/launch) and loaded by path, as it is no Python package.

Arguments (all files; ``ros2 launch maqbool_ros <file> --show-args`` lists them):
  params_file       ROS parameters file (default: the package's config/maqbool_ros_params.yaml)
  namespace         node namespace; also the robot id when robot_id is empty
  image_topic       keyframe image topic (empty: the params file's image_topic)
  candidates_topic  LoopClosureCandidate output topic (empty: the params file's candidates_topic)
  method            netvlad | maqbool | landmarks (empty: the params file's method)
  robot_id          robot / agent id stamped on keyframes (empty: the params file's, else namespace)
  use_sim_time      true: the node takes time from /clock (e.g. `maqbool bag play --clock`)
"""
from __future__ import annotations

import os

NODE_NAME = "maqbool_loop_closure"
EXECUTABLE = "loop_closure_node"

# name -> (default, description); the preset of a launch file may change the defaults.
ARGUMENTS: dict[str, tuple[str, str]] = {
    "params_file": ("", "ROS parameters file (`maqbool dump-config` writes one); empty: the package's default"),
    "namespace": ("", "Node namespace; also the robot id when robot_id is empty"),
    "image_topic": ("", "Keyframe image topic (empty: the params file's image_topic)"),
    "candidates_topic": ("", "LoopClosureCandidate output topic (empty: the params file's candidates_topic)"),
    "method": ("", "Re-ranking method: netvlad, maqbool or landmarks (empty: the params file's method)"),
    "robot_id": ("", "Robot / agent id stamped on keyframes (empty: the params file's, else the namespace)"),
    "use_sim_time": ("false", "true: take time from /clock (a simulator or `maqbool bag play --clock`)"),
}
# Launch arguments that, when not empty, override the schema parameter of the same name.
OVERRIDES = ("image_topic", "candidates_topic", "method", "robot_id")


def default_params_file() -> str:
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory("maqbool_ros"), "config", "maqbool_ros_params.yaml")


def node_parameters(values: dict[str, str], preset: dict | None = None) -> list:
    """The node's ``parameters=`` list from resolved launch arguments: the params file, then
    the preset's fixed values, then every non-empty override argument and use_sim_time."""
    overrides = dict(preset or {})
    overrides.update({name: values[name] for name in OVERRIDES if values.get(name, "")})
    use_sim_time = values.get("use_sim_time", "false").strip().lower()
    if use_sim_time not in ("true", "false"):
        raise ValueError(f"use_sim_time: expected true or false, got {values.get('use_sim_time')!r}")
    overrides["use_sim_time"] = use_sim_time == "true"
    return [values.get("params_file") or default_params_file(), overrides]


def launch_description(defaults: dict[str, str] | None = None, preset: dict | None = None):
    """A LaunchDescription declaring every argument of ARGUMENTS (defaults changed by
    ``defaults``) and starting the loop-closure node with ``preset`` parameter values."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    defaults = defaults or {}
    unknown = sorted(set(defaults) - set(ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown launch argument(s) in defaults: {', '.join(unknown)}")

    def start_node(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
        return [Node(package="maqbool_ros", executable=EXECUTABLE, name=NODE_NAME,
                     namespace=values["namespace"], parameters=node_parameters(values, preset),
                     output="screen", emulate_tty=True)]

    declared = [DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=start_node)])
