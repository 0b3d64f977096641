"""The node's services: ~/save_database, ~/reset_database (std_srvs/Trigger), ~/detect
(maqbool_ros/Detect) and ~/remove_keyframes (maqbool_ros/RemoveKeyframes).

They run in a callback group of their own, so with the node's MultiThreadedExecutor a
~/detect call (a descriptor pass, a search, re-ranking and verification: up to the
rerank deadline) never holds up the keyframe subscription. Every callback answers: any
error becomes success false with a message naming the field; nothing is stored then.
"""
from __future__ import annotations

import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from std_srvs.srv import Trigger

from maqbool_ros.core.images.decode import ImageDecodeError
from maqbool_ros.ros.conversions import result_to_msg
from maqbool_ros.ros.inputs import MalformedKeyframe, arrival_from_keyframe, robot_of
from maqbool_ros.srv import Detect, RemoveKeyframes


class NodeServices:
    """Creates the services on `node` (a LoopClosureNode) and answers them."""

    def __init__(self, node) -> None:
        self.node = node
        group = MutuallyExclusiveCallbackGroup()
        node.create_service(Trigger, "~/save_database", self._trigger("save_database", self._save),
                            callback_group=group)
        node.create_service(Trigger, "~/reset_database", self._trigger("reset_database", self._reset),
                            callback_group=group)
        node.create_service(Detect, "~/detect", self._guard("detect", self._detect), callback_group=group)
        node.create_service(RemoveKeyframes, "~/remove_keyframes", self._guard("remove_keyframes", self._remove),
                            callback_group=group)

    def _guard(self, name: str, action):
        """A callback: action(request, response) fills response; any error is a failed answer."""
        def callback(request, response):
            try:
                action(request, response)
                response.success = True
            except (MalformedKeyframe, ImageDecodeError, ValueError) as exc:  # the caller's request
                response.success, response.message = False, f"{name}: {exc}"
            except Exception as exc:  # noqa: BLE001 - report any failure to the caller, never die
                self.node.counts.error("callback_errors", f"{name}: {type(exc).__name__}: {exc}")
                response.success, response.message = False, f"{name} failed: {type(exc).__name__}: {exc}"
            return response
        return callback

    def _trigger(self, name: str, action):
        """A Trigger callback: action() returns the success message; any error is a failed answer."""
        def callback(_request, response):
            try:
                response.success, response.message = True, action()
            except Exception as exc:  # noqa: BLE001 - report any failure to the caller
                self.node.counts.error("callback_errors", f"{name}: {type(exc).__name__}: {exc}")
                response.success, response.message = False, f"{name} failed: {type(exc).__name__}: {exc}"
            return response
        return callback

    def _save(self) -> str:
        pipeline = self.node.pipeline
        path = pipeline.save_database()
        return f"saved {len(pipeline.database)} keyframes to {path}"

    def _reset(self) -> str:
        self.node.pipeline.reset_database()
        return "database reset (0 keyframes)"

    def _detect(self, request: Detect.Request, response: Detect.Response) -> None:
        """Describe and query the request's keyframe now (the same stages as the topic input)."""
        node = self.node
        received = time.perf_counter()
        arrival = arrival_from_keyframe(request.keyframe, node.robot_id, received, prefix="keyframe.")
        excluded = [int(i) for i in request.excluded_ids]
        add = bool(request.add_to_database)
        key = f"{arrival.robot_id}/{arrival.keyframe_id}"
        if add and node.pipeline.database.row_of(arrival.keyframe_id, arrival.robot_id) is not None:
            raise MalformedKeyframe(f"keyframe.keyframe_id: keyframe {key} is already in the database "
                                    "(remove it first, or call with add_to_database false)")
        try:
            kf = node.describe(arrival)
        except ImageDecodeError as exc:
            raise MalformedKeyframe(f"keyframe.{arrival.image_field}: {exc}") from None
        result = node.query(kf, add_to_database=add, excluded_ids=excluded)
        limit = int(request.max_candidates) or node.config.top_k
        result.truncate(limit)
        response.result = result_to_msg(result, arrival.header, (time.perf_counter() - received) * 1e3)
        node.markers.add(response.result)  # ~/loop_markers draws ~/detect answers too (never raises)
        notes = "; ".join(kf.notes)
        response.message = (f"keyframe {key}: {len(result)} candidate(s), {result.num_verified} verified"
                            f"{', stored' if add else ''}" + (f" ({notes})" if notes else ""))

    def _remove(self, request: RemoveKeyframes.Request, response: RemoveKeyframes.Response) -> None:
        """Remove ids of one robot (the node's when robot_id is empty); persisted by the database log."""
        robot = robot_of(request.robot_id, self.node.robot_id)
        ids = [int(i) for i in request.keyframe_ids]
        removed = self.node.remove_keyframes(ids, robot)
        response.removed = removed
        response.message = f"removed {removed} of {len(ids)} keyframe(s) of robot {robot}"
