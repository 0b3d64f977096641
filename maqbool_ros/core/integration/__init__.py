"""Integration with SLAM systems, in plain numpy: what a bridge decides before it talks to one.

``links``: RTAB-Map loop-closure links from maqbool candidates (working-memory filter, frame
conversion camera -> robot base, information matrix from the covariance, link policy);
``rtabmap_data``: depth and image formats of RTAB-Map node data, node positions from a MapData
graph (for markers); ``bridge_config``: the options of `maqbool-rtabmap-bridge`; ``bridge_state``:
RTAB-Map sessions (resets) and whether RTAB-Map kept each link; ``loop_graph``:
keyframe positions by stamp or id and the loop edges `~/loop_markers` draws in RViz.
"""
