"""maqbool_ros next to RTAB-Map.

RTAB-Map publishes new nodes (keyframes) inside `rtabmap/mapData` (rtabmap_msgs/MapData,
images compressed in SensorData). A small adapter (see README "Use with ORB-SLAM3 /
RTAB-Map") republishes each new node's image as sensor_msgs/CompressedImage on
`rtabmap/keyframe_image/compressed` with header.frame_id = str(node id). This launch
file consumes that topic (compressed, ids from frame_id); the adapter turns our
candidates into RTAB-Map links (service `rtabmap/add_link`) after geometric verification.

    ros2 launch maqbool_ros rtabmap.launch.py namespace:=robot1 method:=maqbool

Same arguments as maqbool.launch.py, with these defaults: image_topic
rtabmap/keyframe_image/compressed, candidates_topic rtabmap/loop_candidates, robot_id rtabmap.
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
        defaults={"image_topic": "rtabmap/keyframe_image/compressed",
                  "candidates_topic": "rtabmap/loop_candidates", "robot_id": "rtabmap"},
        preset={"keyframe_id_source": "frame_id", "image_transport": "compressed",
                "exclude_recent_keyframes": 10})
