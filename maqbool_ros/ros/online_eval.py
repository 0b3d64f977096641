"""Online evaluation: play a bag's keyframes to a running node and collect its answers.

Lock-step by default (rate 0): the next keyframe is published only when the node has
answered the previous one, so a slow CPU never makes the node drop keyframes and the
result equals the offline protocol. With rate > 0 keyframes are paced like the recording
and whatever the node drops counts as "no candidate".
"""
from __future__ import annotations

import threading
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from maqbool_ros.core.config import NODE_NAME
from maqbool_ros.core.data.bags import image_topic_of
from maqbool_ros.ros.bag_player import BagPlayer
from maqbool_ros.ros.recorder import CandidateRecorder


class NodeUnavailableError(ValueError):
    """The node is not there or does not answer (a ValueError: the CLI prints one line)."""


def collect_candidates(bag: str | Path, *, image_topic: str | None = None, node_image_topic: str | None = None,
                       candidates_topic: str = "loop_closure/candidates", rate: float = 0.0,
                       num_refs: int = 0, node_name: str = NODE_NAME,
                       answer_timeout_s: float = 60.0, discovery_timeout_s: float = 30.0,
                       progress: bool = True) -> list:
    """Publish the bag's image topic (remapped to node_image_topic if given) and return the
    LoopClosureCandidate messages the node published, in arrival order.

    num_refs > 0 (query/ref bags: refs first): once the node has answered the first num_refs
    keyframes, its database.insert_keyframes parameter is set to false so queries are searched but
    not stored, exactly as in the offline protocol; it is set back to true at the end."""
    from tqdm import tqdm

    topic, msgtype = image_topic_of(bag, image_topic)
    owns_context = not rclpy.ok()
    if owns_context:
        rclpy.init()
    node = rclpy.create_node("maqbool_eval_player")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        recorder = CandidateRecorder(node, candidates_topic)
        remaps = {topic: node_image_topic} if node_image_topic else {}
        player = BagPlayer(node, bag, rate=rate, remaps=remaps, topics=[topic])
        if not player.wait_for_subscribers(topic, msgtype, discovery_timeout_s):
            raise NodeUnavailableError(
                f"no node subscribes to {remaps.get(topic, topic)} after {discovery_timeout_s:.0f} s (is maqbool-node "
                f"running with input_type image, keyframe_id_source frame_id, the same image_topic, ROS_DOMAIN_ID "
                f"and an image_transport that matches the "
                f"bag's {msgtype.split('/')[-1]}?)")
        _wait(lambda: recorder.publisher_count() > 0, discovery_timeout_s)
        bar = tqdm(desc="online keyframes", unit="kf", disable=not progress)
        missed = []

        def after_each(_topic: str, index: int) -> None:
            bar.update()
            lockstep_or_map_done = rate == 0 or index + 1 == num_refs
            if lockstep_or_map_done and not recorder.wait_for(index + 1 - len(missed), answer_timeout_s):
                missed.append(index)  # the node dropped it or is stuck: go on
            if num_refs and index + 1 == num_refs:
                set_remote_parameter(node, node_name, "database.insert_keyframes", False, discovery_timeout_s)

        try:
            sent = player.play(after_each)
            bar.close()
            recorder.wait_for(sent - len(missed), answer_timeout_s if rate else 1.0)
        finally:
            if num_refs:
                set_remote_parameter(node, node_name, "database.insert_keyframes", True, discovery_timeout_s)
        return recorder.decoded()
    finally:
        executor.shutdown()
        spinner.join(timeout=10)
        node.destroy_node()
        if owns_context:
            rclpy.try_shutdown()


def set_remote_parameter(node, node_name: str, name: str, value, timeout_s: float) -> None:
    """Set a parameter of another node through its set_parameters service."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.create_client(SetParameters, f"/{node_name}/set_parameters")
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise NodeUnavailableError(f"/{node_name}/set_parameters is not available (node name differs?)")
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        future = client.call_async(request)
        if not _wait(future.done, timeout_s):
            raise NodeUnavailableError(f"setting {name} on /{node_name} timed out")
        result = future.result().results[0]
        if not result.successful:
            raise NodeUnavailableError(f"/{node_name} refused {name}={value}: {result.reason}")
    finally:
        node.destroy_client(client)


def _wait(predicate, timeout_s: float) -> bool:
    import time

    end = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < end:
        time.sleep(0.05)
    return predicate()
