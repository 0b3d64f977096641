"""The loop-closure engine in plain numpy / torch / faiss: never imports rclpy.

Top level: ``config`` (the one parameter schema), ``pipeline`` (image -> candidates),
``types`` (the data passed between stages), ``atomic`` and ``machine`` (small helpers).
Each concern lives in a subpackage: ``images`` (decoding and resizing), ``descriptor``
(NetVLAD models and the ONNX engine), ``database`` (keyframe store and search), ``rerank``
(netvlad / MAQBOOL / ConvNet-landmark re-rankers), ``data`` (datasets, bags, demo
sequence), ``evaluation`` (protocol, metrics, reports) and ``integration`` (SLAM bridges:
RTAB-Map links).
"""
