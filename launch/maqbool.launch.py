"""Launch the maqbool_ros loop-closure node with a parameters file.

    ros2 launch maqbool_ros maqbool.launch.py params_file:=/path/params.yaml keyframe_topic:=/slam/keyframes \
        method:=maqbool namespace:=robot1 pose_source:=odometry pose_topic:=/odom use_sim_time:=true

Arguments (defaults and meanings: docs/launch.md, or `--show-args`): params_file, namespace,
input_type, keyframe_topic, image_topic, candidates_topic, method, robot_id, pose_source,
pose_topic, markers_frame, use_sim_time. Empty ones keep the params file's value.
"""

import importlib.util
import os


def _common():
    """maqbool_launch.py, installed next to this file (share/maqbool_ros/launch)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "maqbool_launch.py")
    spec = importlib.util.spec_from_file_location("maqbool_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate_launch_description():
    return _common().launch_description()
