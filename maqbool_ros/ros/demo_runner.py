"""Run a dataset through the real ROS 2 node, in this process: dataset -> temporary bag ->
BagPlayer -> LoopClosureNode -> recorded LoopClosureCandidate messages.

Everything goes over real ROS topics (DDS on this host); only the process is shared, so
`maqbool demo --runner node` needs no second terminal.
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.data.bags import write_dataset_bag
from maqbool_ros.core.evaluation.protocol import protocol_config
from maqbool_ros.ros.online_eval import collect_candidates


def run_through_node(dataset, config: MaqboolConfig, *, progress: bool = True) -> list:
    """The node's answers for every keyframe of the dataset (refs, then queries or frames)."""
    from maqbool_ros.ros.node import LoopClosureNode

    # The node's ingress queue must hold a whole lock-step burst; keep nothing from the
    # user's environment that would drop keyframes.
    # The bag numbers keyframes in header.frame_id (the protocol's ids): plain image input.
    cfg = protocol_config(dataset, config).replace(queue_size=max(config.queue_size, 16), publish_min_score=-1.0,
                                                   input_type="image", keyframe_id_source="frame_id")
    work = Path(tempfile.mkdtemp(prefix="maqbool-demo-"))
    bag = work / "keyframes"
    write_dataset_bag(dataset, bag, storage="mcap", topic="/" + cfg.image_topic.lstrip("/"), progress=progress)
    owns_context = not rclpy.ok()
    if owns_context:
        rclpy.init()
    overrides = [Parameter(key, value=value) for key, value in cfg.to_params().items()]
    node = LoopClosureNode(parameter_overrides=overrides)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        return collect_candidates(bag, candidates_topic=cfg.candidates_topic,
                                  num_refs=len(dataset.refs) if dataset.kind == "query_ref" else 0,
                                  progress=progress)
    finally:
        node.stop()
        executor.shutdown()
        spinner.join(timeout=10)
        node.destroy_node()
        if owns_context:
            rclpy.try_shutdown()
