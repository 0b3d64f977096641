"""Launch the maqbool_ros loop-closure node with a parameters file.

    ros2 launch maqbool_ros maqbool.launch.py params_file:=/path/params.yaml \
        image_topic:=/camera/keyframes method:=maqbool
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("maqbool_ros"), "config",
                                  "maqbool_ros_params.yaml")
    params_file = LaunchConfiguration("params_file")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS parameters file (maqbool dump-config writes one)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Node namespace; also the robot id when robot_id is empty"),
        DeclareLaunchArgument("keyframes", default_value="keyframes/image",
                              description="Topic the SLAM system publishes keyframe images on"),
        Node(
            package="maqbool_ros",
            executable="loop_closure_node",
            name="maqbool_loop_closure",
            namespace=LaunchConfiguration("namespace"),
            parameters=[params_file],
            remappings=[("keyframes/image", LaunchConfiguration("keyframes"))],
            output="screen",
            emulate_tty=True,
        ),
    ])
