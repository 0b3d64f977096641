"""The loop-closure node: keyframes (maqbool_ros/Keyframe, or plain images) in,
LoopClosureCandidate out; ~/detect and ~/remove_keyframes services (ros/services.py).

Threads: the executor's callbacks only enqueue. A descriptor worker decodes and runs the
network; a re-rank worker searches the database, re-ranks inside the deadline, inserts the
keyframe and publishes. Both hand-over queues are bounded and never block the producer
(overload_policy), so the SLAM system upstream is never stalled.
"""
from __future__ import annotations

import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import String

from maqbool_ros.core.config import FIELD_OF, KEYS, NODE_NAME, MaqboolConfig
from maqbool_ros.core.images.decode import ImageDecodeError, UninformativeImage
from maqbool_ros.core.pipeline import LIVE_FIELDS, Keyframe, LoopClosurePipeline, QueryResult
from maqbool_ros.core.text import MAX_LINE_CHARS, printable
from maqbool_ros.msg import LoopClosureCandidate
from maqbool_ros.ros.conversions import image_to_rgb, result_to_msg, stamp_to_seconds
from maqbool_ros.ros.debug_image import DebugImages
from maqbool_ros.ros.inputs import Arrival, DuplicateKeyframe, keyframe_sensors
from maqbool_ros.ros.markers import LoopMarkers
from maqbool_ros.ros.params import declare_parameters, default_robot_id, validate_change
from maqbool_ros.ros.queues import Closed, DropQueue
from maqbool_ros.ros.sensors import SensorSync
from maqbool_ros.ros.services import NodeServices
from maqbool_ros.ros.startup import run_node, start_pipeline
from maqbool_ros.ros.stats import Counters, Health, LatencyStats, RobotStats, diagnostic_status
from maqbool_ros.ros.subscriptions import InputSubscription


class LoopClosureNode(Node):
    """ROS 2 node around :class:`LoopClosurePipeline`."""

    def __init__(self, pipeline: LoopClosurePipeline | None = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.config: MaqboolConfig = declare_parameters(self)
        cfg = self.config
        self.robot_id = default_robot_id(self, cfg.robot_id)
        self.counts = Counters(self.get_logger().warning)
        self._count, self._count_error = self.counts.add, self.counts.error
        self.latency = LatencyStats()
        self.health = Health()
        self.robots = RobotStats()
        self._stopped = False
        self.pipeline = pipeline or start_pipeline(cfg)  # bad inputs: StartupError, one line, status 2
        # One keyframe at a time per stage: the workers and ~/detect share the pipeline's
        # stateful parts (re-ranker, temporal consistency); the database has its own lock.
        self._describe_lock, self._query_lock = threading.Lock(), threading.Lock()
        self._ingress = DropQueue(cfg.queue_size, cfg.overload_policy)
        self._described = DropQueue(cfg.queue_size, cfg.overload_policy)

        self._pub = self.create_publisher(LoopClosureCandidate, cfg.candidates_topic, 10)
        self._stats_pub = self.create_publisher(String, "~/stats", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.inputs = InputSubscription(self, self._ingress, self._first_counter_id())
        self.sensors = SensorSync(self, cfg, self.counts)  # depth_topic, camera_info_topic
        self.debug = DebugImages(self)
        self.markers = LoopMarkers(self)  # ~/loop_markers for RViz (pose_source)
        self.service_handlers = NodeServices(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Wall-clock (steady) timer: diagnostics must come with use_sim_time and no /clock too.
        self._stats_timer = self.create_timer(cfg.stats_period_s, self._on_stats_timer,
                                              clock=Clock(clock_type=ClockType.STEADY_TIME))

        self._workers = [threading.Thread(target=self._describe_loop, name="maqbool-descriptor", daemon=True),
                         threading.Thread(target=self._rerank_loop, name="maqbool-rerank", daemon=True)]
        for worker in self._workers:
            worker.start()
        self.get_logger().info(
            f"maqbool_ros ready: method={cfg.method} budget={cfg.region_budget} top_k={cfg.top_k} "
            f"robot={self.robot_id} input={self.inputs.describe()} -> {cfg.candidates_topic}; "
            f"verification {cfg.verification_features if cfg.verification_enabled else 'off'}; "
            f"sequence {getattr(self.pipeline, 'sequence_length_used', lambda: 1)()}; "
            f"{len(self.pipeline.database)} keyframes in the database")
        if getattr(self.pipeline, "sequence_note", ""):
            self.get_logger().warn(self.pipeline.sequence_note)

    def _first_counter_id(self) -> int:
        """Counter ids continue after this robot's largest stored id, so a reloaded map is
        never refused as duplicates (a backend without a local id list starts at 0)."""
        keyframes = getattr(self.pipeline.database, "keyframes", None)
        if self.config.input_type != "image" or keyframes is None:
            return 0
        _, ids, robots = keyframes()
        mine = [int(i) for i, r in zip(ids, robots) if r == self.robot_id]
        return max(mine) + 1 if mine else 0

    # --- callbacks (executor threads: never raise) ---------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        try:
            return self._set_parameters(params)
        except Exception as exc:  # noqa: BLE001 - a failed change must not kill the node
            self._count_error("callback_errors", f"set_parameters: {type(exc).__name__}: {exc}")
            return SetParametersResult(successful=False, reason=f"{type(exc).__name__}: {exc}")

    def _set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for p in params:  # parameter names are section.short; the pipeline takes attribute names
            reason = validate_change(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if FIELD_OF.get(p.name) in LIVE_FIELDS:
                changes[FIELD_OF[p.name]] = p.value
        if changes:
            try:
                self.config = self.pipeline.update_config(**changes)
                self._ingress.configure(self.config.queue_size, self.config.overload_policy)
                self._described.configure(self.config.queue_size, self.config.overload_policy)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            shown = {KEYS[k]: v for k, v in changes.items()}
            self.get_logger().info(f"parameters changed: {printable(shown, MAX_LINE_CHARS)}")
        return SetParametersResult(successful=True)

    def _on_stats_timer(self) -> None:
        try:
            self.publish_stats()
        except Exception as exc:  # noqa: BLE001 - a timer error must not kill the node
            self._count_error("callback_errors", f"stats timer: {type(exc).__name__}: {exc}")

    # --- the stages (workers and ~/detect) ----------------------------------------------
    def is_stored(self, keyframe_id: int, robot_id: str) -> bool:
        """Whether (robot_id, keyframe_id) is in the database (False when the backend cannot tell)."""
        row_of = getattr(self.pipeline.database, "row_of", None)
        return row_of is not None and row_of(keyframe_id, robot_id) is not None

    def describe(self, arrival: Arrival) -> Keyframe:
        """Decode the image (ImageDecodeError) and run the descriptor stage; sensor problems
        are counted and noted in Keyframe.notes."""
        rgb = image_to_rgb(arrival.image, self.config.max_image_pixels)
        kf_name = f"{arrival.robot_id}/{arrival.keyframe_id}"
        camera = depth = None
        if arrival.from_keyframe:
            camera, depth = keyframe_sensors(arrival, self._count_error)
        if self.sensors.enabled and (camera is None or depth is None):  # the topics fill what the message lacks
            topic_camera, topic_depth = self.sensors.for_image(arrival.header.stamp, arrival.keyframe_id)
            camera, depth = camera or topic_camera, depth if depth is not None else topic_depth
        with self._describe_lock:
            kf = self.pipeline.describe(rgb, arrival.keyframe_id, arrival.robot_id,
                                        stamp_to_seconds(arrival.header.stamp), received=arrival.received,
                                        camera=camera, depth=depth)
        kf.map_id = arrival.map_id
        for note in kf.notes:  # "malformed_depth: why": dropped, the keyframe goes on
            self._count_error(note.split(":")[0], f"keyframe {kf_name}: {note}")
        return kf

    def query(self, kf: Keyframe, add_to_database: bool | None = None, excluded_ids=()) -> QueryResult:
        """Search, re-rank, verify and (add_to_database, None: insert_keyframes) insert; a
        keyframe already stored is refused (ValueError naming keyframe_id) before any work."""
        with self._query_lock:
            add = self.config.insert_keyframes if add_to_database is None else add_to_database
            if add and self.is_stored(kf.keyframe_id, kf.robot_id):
                raise DuplicateKeyframe(
                    f"keyframe_id: keyframe {kf.robot_id}/{kf.keyframe_id} is already in the database (a second "
                    "keyframe with the same robot_id and keyframe_id is refused; ~/remove_keyframes first)")
            return self.pipeline.query(kf, add_to_database=add, excluded_ids=excluded_ids)

    def remove_keyframes(self, keyframe_ids: list[int], robot_id: str) -> int:
        """Remove keyframes of robot_id from the database (logged, so persisted); how many were there."""
        with self._query_lock:
            return int(self.pipeline.database.remove(keyframe_ids, robot_id))

    # --- workers ----------------------------------------------------------------------
    def _describe_loop(self) -> None:
        while True:
            try:
                arrival = self._ingress.get()
            except Closed:
                return
            name = f"keyframe {arrival.robot_id}/{arrival.keyframe_id}"
            try:
                kf = self.describe(arrival)
                self._described.put((kf, arrival.header))  # before done(): never invisible in stats
            except UninformativeImage as exc:  # well-formed but blank: not a malformed message
                self._count_error("uninformative_images", f"{name}: {arrival.image_field}: {exc}")
            except ImageDecodeError as exc:
                self._count_error("malformed_images", f"{name}: {arrival.image_field}: {exc}")
            except Exception as exc:  # noqa: BLE001 - one bad keyframe must not kill the node
                self._count_error("descriptor_errors", f"{name}: {type(exc).__name__}: {exc}")
            finally:
                self._ingress.done()

    def _rerank_loop(self) -> None:
        while True:
            try:
                kf, header = self._described.get()
            except Closed:
                return
            try:
                self._rerank_one(kf, header)
            finally:
                self._described.done()

    def _rerank_one(self, kf, header) -> None:
        name = f"keyframe {kf.robot_id}/{kf.keyframe_id}"
        try:
            result = self.query(kf)
        except DuplicateKeyframe as exc:
            self._count_error("duplicate_keyframes", f"{name}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001
            self._count_error("rerank_errors", f"{name}: {type(exc).__name__}: {exc}")
            return
        self._count("processed")
        self.robots.add(kf.robot_id, "processed")
        latency = (time.perf_counter() - kf.received) * 1e3
        self.latency.add({**result.timings_ms, "end_to_end": latency})
        if result.num_verified:
            self._count("verified_keyframes")
        if result.checks.error:
            self._count_error("verification_errors", f"{name}: {result.checks.error}")
        threshold = self.config.publish_min_score
        if (threshold < 0 or result.best_score >= threshold) and (
                result.num_verified or not self.config.publish_only_verified):
            try:
                self._pub.publish(msg := result_to_msg(result, header, latency))
                self._count("published")
                self.robots.add(kf.robot_id, "published")
                self.markers.add(msg)  # never raises
            except Exception as exc:  # noqa: BLE001 - the keyframe is stored; only the message is lost
                self._count_error("publish_errors", f"{name}: {type(exc).__name__}: {exc}")
        try:  # after the candidates: drawing must not delay them
            self.debug.publish(kf, result, header)
        except Exception as exc:  # noqa: BLE001 - a drawing error must not kill the worker
            self._count_error("publish_errors", f"debug image of {name}: {exc}")

    # --- diagnostics ------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters, queue depths, work in the workers' hands, database size and latencies."""
        ingress, described = self._ingress.counters(), self._described.counters()
        counts = self.counts.snapshot()
        counts.update(accepted=ingress["accepted"], dropped_ingress=ingress["dropped"],
                      dropped_rerank=described["dropped"])
        return {"counts": counts, "queue_depth": {"ingress": ingress["waiting"], "rerank": described["waiting"]},
                "in_flight": {"descriptor": ingress["in_flight"], "rerank": described["in_flight"]},
                "database_size": len(self.pipeline.database), "last_error": self.counts.last_error,
                "robots": self.robots.snapshot(self._robot_counts()),
                "database_recovery": self.pipeline.database.recovery_report.as_dict(),
                "database_outbox": self.pipeline.database.outage_report(), "latency_ms": self.latency.summary()}

    def _robot_counts(self) -> dict[str, int]:
        counts = getattr(self.pipeline.database, "robot_counts", None)
        return counts() if counts is not None else {}

    def publish_stats(self) -> None:
        """~/stats (JSON) and one DiagnosticStatus named after this node's full name."""
        stats = self.stats()
        self._stats_pub.publish(String(data=json.dumps(stats)))
        level, problems = self.health.assess(stats["counts"], self.config.no_keyframe_timeout_s,
                                             stats["database_recovery"])
        diag = DiagnosticArray(status=[diagnostic_status(f"{self.get_fully_qualified_name()}: loop closure",
                                                         self.robot_id, level, problems, stats)])
        diag.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diag)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Finish every accepted keyframe (processed, stored, published), then save the database.

        Call while the ROS context is still valid, before destroy_node(): the workers still publish."""
        if self._stopped:
            return
        self._stopped = True
        pending = self._ingress.pending() + self._described.pending()
        if pending:
            self.get_logger().info(f"stopping: finishing {pending} accepted keyframe(s)")
        self._ingress.close()
        self._workers[0].join(timeout=timeout_s)
        self._described.close()
        self._workers[1].join(timeout=timeout_s)
        if any(w.is_alive() for w in self._workers):
            self.get_logger().error(f"stopping: workers still busy after {timeout_s:.0f} s")
        if self.config.database_path:
            try:
                self.pipeline.save_database()
            except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
                self.get_logger().error(f"could not save the database: {exc}")
        self.pipeline.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of `maqbool-node` / `ros2 run maqbool_ros loop_closure_node`."""
    return run_node(LoopClosureNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
