"""The loop-closure node: keyframe images in, LoopClosureCandidate out.

Threads: the executor's callbacks only enqueue. A descriptor worker decodes and runs the
network; a re-rank worker searches the database, re-ranks inside the deadline, inserts the
keyframe and publishes. Both hand-over queues are bounded and never block the producer
(overload_policy), so the SLAM system upstream is never stalled.
"""
from __future__ import annotations

import collections
import json
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Int64, String
from std_srvs.srv import Trigger

from maqbool_ros.core.config import NODE_NAME, MaqboolConfig
from maqbool_ros.core.images.decode import ImageDecodeError
from maqbool_ros.core.pipeline import LIVE_FIELDS, LoopClosurePipeline
from maqbool_ros.ros.queues import Closed, DropQueue
from maqbool_ros.ros.stats import LatencyStats
from maqbool_ros.msg import LoopClosureCandidate
from maqbool_ros.ros.conversions import image_to_rgb, result_to_msg, stamp_to_seconds
from maqbool_ros.ros.params import declare_parameters, validate_change


class LoopClosureNode(Node):
    """ROS 2 node around :class:`LoopClosurePipeline`."""

    def __init__(self, pipeline: LoopClosurePipeline | None = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.config: MaqboolConfig = declare_parameters(self)
        cfg = self.config
        self.robot_id = cfg.robot_id or self.get_namespace().strip("/").replace("/", "_") or "robot0"
        self.counts = collections.Counter()
        self.last_error = ""
        self.latency = LatencyStats()
        self._next_counter = 0
        self._pending_ids: collections.deque = collections.deque(maxlen=1000)
        self.pipeline = pipeline or LoopClosurePipeline(cfg)
        self._ingress = DropQueue(cfg.queue_size, cfg.overload_policy)
        self._described = DropQueue(cfg.queue_size, cfg.overload_policy)

        self._pub = self.create_publisher(LoopClosureCandidate, cfg.candidates_topic, 10)
        self._stats_pub = self.create_publisher(String, "~/stats", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        image_type = CompressedImage if cfg.image_transport == "compressed" else Image
        self._image_sub = self.create_subscription(image_type, cfg.image_topic, self._on_image, 10)
        if cfg.keyframe_id_source == "topic":
            self._id_sub = self.create_subscription(Int64, cfg.keyframe_id_topic, self._on_id, 100)
        self.create_service(Trigger, "~/save_database", self._on_save)
        self.create_service(Trigger, "~/reset_database", self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Wall-clock period: with use_sim_time the ROS clock stands still until /clock ticks.
        self._stats_timer = self.create_timer(cfg.stats_period_s, self.publish_stats,
                                              clock=Clock(clock_type=ClockType.STEADY_TIME))

        self._workers = [threading.Thread(target=self._describe_loop, name="maqbool-descriptor", daemon=True),
                         threading.Thread(target=self._rerank_loop, name="maqbool-rerank", daemon=True)]
        for worker in self._workers:
            worker.start()
        self.get_logger().info(
            f"maqbool_ros ready: method={cfg.method} budget={cfg.region_budget} top_k={cfg.top_k} "
            f"robot={self.robot_id} input={cfg.image_topic} ({cfg.image_transport}) -> {cfg.candidates_topic}; "
            f"{len(self.pipeline.database)} keyframes in the database")

    # --- callbacks (executor threads: enqueue only) ---------------------------------
    def _on_image(self, msg) -> None:
        self.counts["received"] += 1
        self.counts["dropped_ingress"] += self._ingress.put((msg, self._keyframe_id(msg), time.perf_counter()))

    def _on_id(self, msg: Int64) -> None:
        self._pending_ids.append(int(msg.data))

    def _keyframe_id(self, msg) -> int:
        source = self.config.keyframe_id_source
        if source == "frame_id":
            try:
                return int(msg.header.frame_id)
            except ValueError:
                pass
        elif source == "topic" and self._pending_ids:
            return self._pending_ids.popleft()
        self._next_counter += 1
        return self._next_counter - 1

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for p in params:
            reason = validate_change(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if p.name in LIVE_FIELDS:
                changes[p.name] = p.value
        if changes:
            try:
                self.config = self.pipeline.update_config(**changes)
                self._ingress.configure(self.config.queue_size, self.config.overload_policy)
                self._described.configure(self.config.queue_size, self.config.overload_policy)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            self.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    def _on_save(self, request, response):
        try:
            path = self.pipeline.save_database()
            response.success, response.message = True, f"saved {len(self.pipeline.database)} keyframes to {path}"
        except Exception as exc:  # noqa: BLE001 - report any failure to the caller
            response.success, response.message = False, str(exc)
        return response

    def _on_reset(self, request, response):
        self.pipeline.reset_database()
        response.success, response.message = True, "database reset (0 keyframes)"
        return response

    # --- workers ----------------------------------------------------------------------
    def _describe_loop(self) -> None:
        while True:
            try:
                msg, kf_id, received = self._ingress.get()
            except Closed:
                return
            try:
                rgb = image_to_rgb(msg)
                kf = self.pipeline.describe(rgb, kf_id, self.robot_id, stamp_to_seconds(msg.header.stamp),
                                            received=received)
            except ImageDecodeError as exc:
                self._count_error("malformed_images", f"keyframe {kf_id}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - one bad keyframe must not kill the node
                self._count_error("descriptor_errors", f"keyframe {kf_id}: {type(exc).__name__}: {exc}")
                continue
            self.counts["dropped_rerank"] += self._described.put((kf, msg.header))

    def _rerank_loop(self) -> None:
        while True:
            try:
                kf, header = self._described.get()
            except Closed:
                return
            try:
                result = self.pipeline.query(kf)
            except Exception as exc:  # noqa: BLE001
                self._count_error("rerank_errors", f"keyframe {kf.keyframe_id}: {type(exc).__name__}: {exc}")
                continue
            self.counts["processed"] += 1
            latency = (time.perf_counter() - kf.received) * 1e3
            self.latency.add({**result.timings_ms, "end_to_end": latency})
            threshold = self.config.publish_min_score
            if threshold < 0 or result.best_score >= threshold:
                self._pub.publish(result_to_msg(result, header, latency))
                self.counts["published"] += 1

    def _count_error(self, key: str, text: str) -> None:
        self.counts[key] += 1
        self.last_error = text
        self.get_logger().warning(f"{key.replace('_', ' ')}: {text}")

    # --- diagnostics ------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters, queue depths, database size and per-stage latency percentiles."""
        return {"counts": dict(self.counts), "queue_depth": {"ingress": len(self._ingress),
                                                             "rerank": len(self._described)},
                "database_size": len(self.pipeline.database), "last_error": self.last_error,
                "latency_ms": self.latency.summary()}

    def publish_stats(self) -> None:
        stats = self.stats()
        self._stats_pub.publish(String(data=json.dumps(stats)))
        status = DiagnosticStatus(name=f"{self.get_name()}: loop closure", hardware_id=self.robot_id)
        dropped = stats["counts"].get("dropped_ingress", 0) + stats["counts"].get("dropped_rerank", 0)
        status.level = DiagnosticStatus.WARN if dropped or self.last_error else DiagnosticStatus.OK
        status.message = f"{stats['counts'].get('processed', 0)} keyframes, {dropped} dropped"
        values = {f"count.{k}": v for k, v in stats["counts"].items()}
        values.update({f"queue.{k}": v for k, v in stats["queue_depth"].items()})
        values["database_size"] = stats["database_size"]
        for stage, row in stats["latency_ms"].items():
            values.update({f"latency_ms.{stage}.{p}": round(v, 2) for p, v in row.items() if p != "count"})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        diag = DiagnosticArray(status=[status])
        diag.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diag)

    def stop(self) -> None:
        """Stop the workers (queued keyframes are finished first) and flush the database."""
        self._ingress.close()
        self._workers[0].join(timeout=30)
        self._described.close()
        self._workers[1].join(timeout=30)
        if self.config.database_path:
            try:
                self.pipeline.save_database()
            except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
                self.get_logger().error(f"could not save the database: {exc}")
        self.pipeline.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of `maqbool-node` / `ros2 run maqbool_ros loop_closure_node`."""
    rclpy.init(args=args)
    executor = MultiThreadedExecutor(num_threads=2)  # before the node: a signal may come any time
    node = None
    try:
        node = LoopClosureNode()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM during start-up invalidated the context mid-construction: a clean stop
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
