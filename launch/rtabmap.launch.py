"""maqbool_ros next to RTAB-Map: the loop-closure node and `maqbool-rtabmap-bridge` (docs/rtabmap.md).

The bridge turns each new RTAB-Map node (rtabmap_msgs/MapData on map_data_topic) into a
maqbool_ros/Keyframe on the node's keyframe topic (keyframe id = node id), reads the node's
candidates and adds each verified metric loop to RTAB-Map with its add_link service. Both run in
`namespace`; RTAB-Map's topics are relative to it (rtabmap_launch's defaults: namespace rtabmap,
node rtabmap). ~/loop_markers draws the loops on RTAB-Map's optimised graph (pose_source
rtabmap_graph, on map_data_topic).

    ros2 launch maqbool_ros rtabmap.launch.py namespace:=robot1 method:=maqbool map_data_topic:=/rtabmap/mapData \
        info_topic:=/rtabmap/info add_link_service:=/rtabmap/rtabmap/add_link use_sim_time:=true

Arguments: those of maqbool.launch.py plus map_data_topic, info_topic, add_link_service,
link_pose_types and seed_from_map (the bridge's parameters); defaults in docs/launch.md.
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
        defaults={"input_type": "keyframe", "pose_source": "rtabmap_graph"},
        preset={"database.exclude_recent_keyframes": 10, "verification.temporal_k": 2}, bridge=True)
