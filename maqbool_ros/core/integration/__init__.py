"""Integration with SLAM systems and viewers, in plain numpy: keyframe positions from a
trajectory or a pose graph (stamp or id look-ups) and the loop edges drawn in RViz."""
