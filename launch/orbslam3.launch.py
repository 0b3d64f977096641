"""maqbool_ros next to ORB-SLAM3.

ORB-SLAM3's ROS 2 wrappers publish camera poses and maps but no keyframe images. Publish
each new KeyFrame's image (sensor_msgs/Image, header.stamp = keyframe time stamp,
header.frame_id = str(KeyFrame::mnId)) on `orbslam3/keyframe_image` from your wrapper
(see README "Use with ORB-SLAM3 / RTAB-Map"); this launch file wires that topic in and
takes keyframe ids from header.frame_id. Candidates go to `orbslam3/loop_candidates`.

    ros2 launch maqbool_ros orbslam3.launch.py image_topic:=/orb/keyframe_image use_sim_time:=true

Same arguments as maqbool.launch.py, with these defaults: image_topic
orbslam3/keyframe_image, candidates_topic orbslam3/loop_candidates, robot_id orbslam3.
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
        defaults={"image_topic": "orbslam3/keyframe_image", "candidates_topic": "orbslam3/loop_candidates",
                  "robot_id": "orbslam3"},
        preset={
            "keyframe_id_source": "frame_id",
            "image_transport": "raw",
            # ORB-SLAM3 inserts keyframes every few frames: a revisit is never among the last ones
            "exclude_recent_keyframes": 20,
        })
