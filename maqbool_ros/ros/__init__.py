"""The ROS 2 side: the loop-closure node (message -> numpy -> core -> message), its
parameters, worker queues and statistics, and the rclpy helpers used to play bags to a
node and record its candidates. The only place that imports rclpy."""
