"""Message <-> numpy/core conversions for the node (thin; decoding lives in core)."""
from __future__ import annotations

import cv2
import numpy as np
from builtin_interfaces.msg import Time

from maqbool_ros.core.images.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageDecodeError,
    check_keyframe_image,
    check_pixels,
    decode_compressed,
    decode_raw,
)
from maqbool_ros.core.pipeline import QueryResult
from maqbool_ros.core.types import seconds_to_sec_nanosec, stamp_to_seconds
from maqbool_ros.core.verification.verify import POSE_METRIC, POSE_NONE, POSE_UNIT_TRANSLATION
from maqbool_ros.msg import CandidateMatch, LoopClosureCandidate

# stamp_to_seconds is re-exported for the node (one implementation, in core.types).
__all__ = ["image_to_rgb", "pose_with_covariance", "result_to_msg", "seconds_to_stamp", "stamp_to_seconds"]

#: core pose types -> CandidateMatch.pose_type constants
POSE_TYPES = {POSE_NONE: CandidateMatch.POSE_NONE, POSE_UNIT_TRANSLATION: CandidateMatch.POSE_ROTATION_UNIT_TRANSLATION,
              POSE_METRIC: CandidateMatch.POSE_METRIC}

try:  # cv_bridge is optional: used when a real ROS install provides it
    from cv_bridge import CvBridge  # type: ignore

    _BRIDGE = CvBridge()
except Exception:  # noqa: BLE001 - any import problem means "not available"
    _BRIDGE = None


def seconds_to_stamp(seconds: float) -> Time:
    """Seconds -> builtin_interfaces/Time (core.types.seconds_to_sec_nanosec)."""
    sec, nanosec = seconds_to_sec_nanosec(seconds)
    return Time(sec=sec, nanosec=nanosec)


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> RGB uint8 (raises ImageDecodeError).

    Images over max_pixels (the node's max_image_pixels) are refused before their data is
    copied or decoded: raw ones by width*height, compressed ones by the size in their header.
    Decoded images smaller than MIN_KEYFRAME_SIDE or blank are refused (check_keyframe_image).
    """
    rgb = _decode(msg, max_pixels)
    check_keyframe_image(rgb)
    return rgb


def _decode(msg, max_pixels: int) -> np.ndarray:
    if hasattr(msg, "format"):  # CompressedImage
        return decode_compressed(bytes(msg.data), msg.format, max_pixels)
    check_pixels(int(msg.width), int(msg.height), max_pixels, "width/height:")
    if _BRIDGE is not None and msg.encoding.lower() in ("rgb8", "bgr8", "mono8"):
        try:
            return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception as exc:  # noqa: BLE001 - cv_bridge raises its own types
            raise ImageDecodeError(f"cv_bridge: {exc}") from exc
    return decode_raw(bytes(msg.data), int(msg.width), int(msg.height), msg.encoding, int(msg.step),
                      bool(msg.is_bigendian), max_pixels)


def quaternion_xyzw(R: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation matrix (via its rotation vector)."""
    rvec, _ = cv2.Rodrigues(np.asarray(R, dtype=np.float64))
    angle = float(np.linalg.norm(rvec))
    axis = rvec.ravel() / angle if angle > 1e-12 else np.zeros(3)
    q = np.append(axis * np.sin(angle / 2.0), np.cos(angle / 2.0))
    return tuple(float(v) for v in (q if q[3] >= 0 else -q))


def pose_with_covariance(msg, T: np.ndarray, cov: np.ndarray) -> None:
    """Fill a geometry_msgs/PoseWithCovariance from a 4x4 transform and a 6x6 covariance."""
    p = msg.pose.position
    p.x, p.y, p.z = (float(v) for v in T[:3, 3])
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = quaternion_xyzw(T[:3, :3])
    msg.covariance = [float(v) for v in np.asarray(cov, dtype=np.float64).ravel()]


def result_to_msg(result: QueryResult, header, latency_ms: float) -> LoopClosureCandidate:
    """A pipeline QueryResult as a LoopClosureCandidate message."""
    msg = LoopClosureCandidate()
    msg.header = header
    msg.query_keyframe_id = int(result.keyframe_id)
    msg.robot_id = result.robot_id
    msg.map_id = getattr(result, "map_id", "")
    map_ids = getattr(result, "map_ids", None) or [""] * len(result)
    msg.method = result.method
    msg.region_source = result.region_source
    msg.region_budget = int(result.region_budget)
    msg.num_reranked = int(result.num_reranked)
    msg.reranking_complete = bool(result.complete)
    msg.sequence_length = int(getattr(result, "sequence_length", 1))
    msg.latency_ms = float(latency_ms)
    t = result.timings_ms
    msg.descriptor_ms = float(t.get("descriptor", 0.0))
    msg.search_ms = float(t.get("search", 0.0))
    msg.rerank_ms = float(t.get("extras", 0.0) + t.get("rerank", 0.0) + t.get("sequence", 0.0))
    msg.descriptor_ms += float(t.get("local_features", 0.0))
    msg.verify_ms = float(t.get("verify", 0.0))
    checks = result.checks
    for i in range(len(result)):
        c = CandidateMatch()
        c.keyframe_id = int(result.keyframe_ids[i])
        c.robot_id = result.robot_ids[i]
        c.map_id = map_ids[i]
        c.stamp = seconds_to_stamp(float(result.stamps[i]))
        c.descriptor_distance = float(result.descriptor_distances[i])
        c.reranked_distance = float(result.reranked_distances[i])
        c.score = float(result.scores[i])
        c.sequence_score = float(result.sequence_scores[i])
        c.sequence_aligned = int(result.sequence_aligned[i])
        c.verified = bool(checks.verified[i])
        c.num_inliers = int(checks.num_inliers[i])
        c.inlier_ratio = float(checks.inlier_ratios[i])
        c.pose_type = POSE_TYPES[checks.pose_types[i]]
        c.has_relative_pose = c.verified and c.pose_type != CandidateMatch.POSE_NONE
        if c.has_relative_pose:
            pose_with_covariance(c.relative_pose, checks.relative_poses[i], checks.pose_covariances[i])
        msg.candidates.append(c)
    return msg
