"""maqbool_ros next to ORB-SLAM3 (docs/orbslam3.md).

The ORB-SLAM3 wrapper publishes each new KeyFrame as a maqbool_ros/Keyframe on `keyframes`
(keyframe_id = KeyFrame::mnId) from LocalMapping, and LoopClosing asks the node's `~/detect`
service for candidates (query only, covisible keyframes excluded); culled keyframes go to
`~/remove_keyframes`. This file starts the node for that: Keyframe input, robot id orbslam3,
the last 20 keyframes never proposed.

    ros2 launch maqbool_ros orbslam3.launch.py namespace:=orb method:=maqbool use_sim_time:=true

Same arguments as maqbool.launch.py (docs/launch.md), with input_type keyframe and robot_id
orbslam3 by default.
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
    return _common().launch_description(
        defaults={"input_type": "keyframe", "robot_id": "orbslam3"},
        # ORB-SLAM3 inserts keyframes every few frames: a revisit is never among the last ones
        preset={"database.exclude_recent_keyframes": 20})
