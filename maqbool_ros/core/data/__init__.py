"""Where images and ground truth come from: dataset folders, ROS 1/2 bags (read and
written with rosbags, no ROS install needed) and the embedded synthetic demo sequence."""
