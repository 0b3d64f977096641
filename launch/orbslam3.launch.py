"""maqbool_ros next to ORB-SLAM3.

ORB-SLAM3's ROS 2 wrappers publish camera poses and maps but no keyframe images. Publish
each new KeyFrame's image (sensor_msgs/Image, header.stamp = keyframe time stamp,
header.frame_id = str(KeyFrame::mnId)) on `orbslam3/keyframe_image` from your wrapper
(see README "Use with ORB-SLAM3 / RTAB-Map"); this launch file wires that topic in and
takes keyframe ids from header.frame_id. Candidates go to `orbslam3/loop_candidates`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    params = os.path.join(get_package_share_directory("maqbool_ros"), "config", "maqbool_ros_params.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=params),
        DeclareLaunchArgument("keyframe_topic", default_value="orbslam3/keyframe_image"),
        DeclareLaunchArgument("robot_id", default_value="orbslam3"),
        Node(
            package="maqbool_ros",
            executable="loop_closure_node",
            name="maqbool_loop_closure",
            parameters=[LaunchConfiguration("params_file"), {
                "keyframe_id_source": "frame_id",
                "image_transport": "raw",
                "robot_id": LaunchConfiguration("robot_id"),
                # ORB-SLAM3 inserts keyframes every few frames: a revisit is never among the last ones
                "exclude_recent_keyframes": 20,
            }],
            remappings=[("keyframes/image", LaunchConfiguration("keyframe_topic")),
                        ("loop_closure/candidates", "orbslam3/loop_candidates")],
            output="screen",
        ),
    ])
