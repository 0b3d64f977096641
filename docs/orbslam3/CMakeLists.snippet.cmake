# Add to the ORB-SLAM3 ROS 2 wrapper's CMakeLists.txt (its package.xml: <depend>maqbool_ros</depend>).
# Copy maqbool_keyframe.hpp and maqbool_detect_client.hpp into the wrapper's include/ directory.
find_package(rclcpp REQUIRED)
find_package(maqbool_ros REQUIRED)   # the generated C++ messages and services

# <wrapper_target>: the executable that owns the ORB_SLAM3::System (e.g. rgbd / mono / stereo)
ament_target_dependencies(<wrapper_target> rclcpp maqbool_ros)
target_compile_features(<wrapper_target> PRIVATE cxx_std_17)
