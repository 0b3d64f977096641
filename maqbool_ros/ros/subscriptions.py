"""The node's input subscription: Keyframe messages on keyframe_topic (input_type keyframe)
or images on image_topic (input_type image, with the image QoS fallback and keyframe ids from
keyframe_id_source). Callbacks check what is cheap to check, count and enqueue an Arrival;
they never block and never raise."""
from __future__ import annotations

import time

from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Int64

from maqbool_ros.core.text import printable
from maqbool_ros.msg import Keyframe as KeyframeMsg
from maqbool_ros.ros.headers import MalformedHeader, check_stamp
from maqbool_ros.ros.inputs import KEYFRAME_QOS, Arrival, ImageIds, MalformedKeyframe, arrival_from_keyframe
from maqbool_ros.ros.params import image_qos


class InputSubscription:
    """Subscribes `node` (a LoopClosureNode) to its input and puts Arrivals on `ingress`."""

    def __init__(self, node, ingress, first_counter_id: int = 0) -> None:
        self.node, self.ingress, cfg = node, ingress, node.config
        self.keyframes = cfg.input_type == "keyframe"
        self._image_type = CompressedImage if cfg.image_transport == "compressed" else Image
        self._ids = ImageIds(cfg.keyframe_id_source, first_counter_id)
        self._adapt_timer = None
        if self.keyframes:
            events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
            self.sub = node.create_subscription(KeyframeMsg, cfg.keyframe_topic, self._on_keyframe, KEYFRAME_QOS,
                                                event_callbacks=events)
        else:
            self.sub = self._subscribe_images(best_effort=False)
            if cfg.keyframe_id_source == "topic":  # ids must not be lost: reliable, deep
                self._id_sub = node.create_subscription(Int64, cfg.keyframe_id_topic, self._ids.on_id, 100)

    def describe(self) -> str:
        """The input for the start-up log line."""
        cfg = self.node.config
        if self.keyframes:
            return f"{self.sub.topic_name} (maqbool_ros/Keyframe, reliable)"
        return (f"{self.sub.topic_name} ({cfg.image_transport} images, ids: {cfg.keyframe_id_source}, "
                f"QoS {cfg.image_qos_reliability}, depth {cfg.image_qos_depth})")

    # --- callbacks (executor threads) ---------------------------------------------------
    def _on_keyframe(self, msg) -> None:
        node = self.node
        node.counts.add("received")
        node.health.keyframe()
        try:
            arrival = arrival_from_keyframe(msg, node.robot_id, time.perf_counter())
        except MalformedKeyframe as exc:
            node.counts.error("malformed_keyframes",
                              f"keyframe {printable(msg.robot_id or node.robot_id)}/{msg.keyframe_id}: {exc}")
            return
        node.robots.add(arrival.robot_id, "received")
        self.ingress.put(arrival)

    def _on_image(self, msg) -> None:
        node = self.node
        node.counts.add("received")
        node.health.keyframe()
        try:
            kf_id = self._ids.next_id(msg.header)
            check_stamp(msg.header.stamp)
        except MalformedHeader as exc:
            node.counts.error("malformed_headers", str(exc))
            return
        node.robots.add(node.robot_id, "received")
        self.ingress.put(Arrival(msg, kf_id, node.robot_id, "", msg.header, time.perf_counter()))

    # --- QoS ----------------------------------------------------------------------------
    def _subscribe_images(self, best_effort: bool):
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        return self.node.create_subscription(self._image_type, self.node.config.image_topic, self._on_image,
                                             image_qos(self.node.config, best_effort), event_callbacks=events)

    def _on_incompatible_qos(self, info) -> None:
        node, cfg = self.node, self.node.config
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind))
        if not self.keyframes and cfg.image_qos_reliability == "auto" and "RELIABILITY" in policy:
            if self._adapt_timer is None:  # switch outside the subscription's own event callback
                self._adapt_timer = node.create_timer(0.0, self._fall_back_to_best_effort)
            return
        reliability = "reliable" if self.keyframes else cfg.image_qos_reliability
        node.health.incompatible_qos(policy)
        node.counts.error("qos_incompatible", f"a publisher of {self.sub.topic_name} has incompatible QoS "
                          f"({policy}); this subscription is {reliability}")

    def _fall_back_to_best_effort(self) -> None:
        node = self.node
        try:
            self._adapt_timer.cancel()
            node.destroy_subscription(self.sub)
            self.sub = self._subscribe_images(best_effort=True)
            node.counts.add("qos_best_effort_fallbacks")
            node.get_logger().info(f"a best-effort publisher appeared on {self.sub.topic_name}: "
                                   "subscribing best effort (image_qos_reliability: auto)")
        except Exception as exc:  # noqa: BLE001 - a timer error must not kill the node
            node.counts.error("callback_errors", f"QoS fallback: {type(exc).__name__}: {exc}")
