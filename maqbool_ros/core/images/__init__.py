"""Images in and out: decoding ROS image payloads and files (with size limits checked before
any pixel is decoded), conversion to RGB uint8, and resizing for the network."""
