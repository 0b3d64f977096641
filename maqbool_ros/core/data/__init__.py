"""Where images and ground truth come from: dataset folders, ROS 1/2 bags (read and
written with rosbags, no ROS install needed), the embedded synthetic demo sequence, and training
corpora assembled from a declared list of public image sets (corpus.py)."""
