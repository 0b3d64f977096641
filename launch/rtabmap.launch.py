"""maqbool_ros next to RTAB-Map.

RTAB-Map publishes new nodes (keyframes) inside `rtabmap/mapData` (rtabmap_msgs/MapData,
images compressed in SensorData). A small adapter (see README "Use with ORB-SLAM3 /
RTAB-Map") republishes each new node's image as sensor_msgs/CompressedImage on
`rtabmap/keyframe_image/compressed` with header.frame_id = str(node id). This launch
file consumes that topic (compressed, ids from frame_id); the adapter turns our
candidates into RTAB-Map links (service `rtabmap/add_link`) after geometric verification.
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
        DeclareLaunchArgument("keyframe_topic", default_value="rtabmap/keyframe_image/compressed"),
        DeclareLaunchArgument("robot_id", default_value="rtabmap"),
        Node(
            package="maqbool_ros",
            executable="loop_closure_node",
            name="maqbool_loop_closure",
            parameters=[LaunchConfiguration("params_file"), {
                "keyframe_id_source": "frame_id",
                "image_transport": "compressed",
                "robot_id": LaunchConfiguration("robot_id"),
                "exclude_recent_keyframes": 10,
            }],
            remappings=[("keyframes/image", LaunchConfiguration("keyframe_topic")),
                        ("loop_closure/candidates", "rtabmap/loop_candidates")],
            output="screen",
        ),
    ])
