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

from maqbool_ros.core.bags import image_topic_of
from maqbool_ros.ros.bag_player import BagPlayer
from maqbool_ros.ros.recorder import CandidateRecorder


def collect_candidates(bag: str | Path, *, image_topic: str | None = None, node_image_topic: str | None = None,
                       candidates_topic: str = "loop_closure/candidates", rate: float = 0.0,
                       answer_timeout_s: float = 60.0, discovery_timeout_s: float = 30.0,
                       progress: bool = True) -> list:
    """Publish the bag's image topic (remapped to node_image_topic if given) and return the
    LoopClosureCandidate messages the node published, in arrival order."""
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
            raise RuntimeError(f"no node subscribes to {remaps.get(topic, topic)} after {discovery_timeout_s:.0f} s "
                               "(is maqbool-node running, with the same image_topic and ROS_DOMAIN_ID?)")
        _wait(lambda: recorder.publisher_count() > 0, discovery_timeout_s)
        bar = tqdm(desc="online keyframes", unit="kf", disable=not progress)
        missed = []

        def after_each(_topic: str, index: int) -> None:
            bar.update()
            if rate == 0 and not recorder.wait_for(index + 1 - len(missed), answer_timeout_s):
                missed.append(index)  # the node dropped it or is stuck: go on

        sent = player.play(after_each)
        bar.close()
        recorder.wait_for(sent - len(missed), answer_timeout_s if rate else 1.0)
        return recorder.decoded()
    finally:
        executor.shutdown()
        node.destroy_node()
        if owns_context:
            rclpy.try_shutdown()


def _wait(predicate, timeout_s: float) -> bool:
    import time

    end = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < end:
        time.sleep(0.05)
    return predicate()
