"""Verification as a pipeline stage: local features extracted once per keyframe (descriptor
stage) and stored as database extras, then the re-ranked top-N verified inside the query
stage's deadline, with optional temporal consistency. The pipeline calls this; it holds no
ROS code. Frames and direction of the poses: docs/verification.md."""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from maqbool_ros.core.config import MaqboolConfig, parse_camera_to_base, parse_distortion
from maqbool_ros.core.verification.camera import Camera
from maqbool_ros.core.verification.features import DESCRIPTOR_SHAPES, LocalFeatureExtractor, LocalFeatures
from maqbool_ros.core.verification.geometry import transform_from_xyz_quat
from maqbool_ros.core.verification.params import VerificationParams
from maqbool_ros.core.verification.temporal import TemporalConsistency
from maqbool_ros.core.verification.verify import POSE_NONE, Verification, verify_candidates

PREFIX = "lf"  # database extras keys: lf_kp, lf_desc, lf_depth, lf_info


def params_from_config(cfg: MaqboolConfig) -> VerificationParams:
    """VerificationParams from the config's verification section (temporal_k 0 means 1: off)."""
    return VerificationParams.from_config(cfg)


def check_depth(depth: np.ndarray | None, image_size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """(depth, "") when usable with an image of (width, height), else (None, why): not 2-D, dtype
    neither uint16 (mm) nor float32/64 (m), an aspect ratio other than the image's (a registered
    depth image may have another resolution, not another field of view), or no valid pixel."""
    if depth is None:
        return None, ""
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.size == 0:
        return None, f"depth image shape {depth.shape} is not (H, W)"
    if depth.dtype not in (np.uint16, np.float32, np.float64):
        return None, f"depth image dtype {depth.dtype} is neither uint16 (mm) nor float32 (m)"
    h, w = depth.shape
    if abs(w * image_size[1] - h * image_size[0]) > 0.01 * image_size[0] * h:
        return None, f"depth image {w}x{h} does not have the aspect ratio of the {image_size[0]}x{image_size[1]} image"
    valid = depth > 0 if depth.dtype == np.uint16 else np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return None, "depth image has no valid pixel (all zero, NaN or negative)"
    return depth, ""


def camera_from_config(cfg: MaqboolConfig, width: int, height: int) -> Camera | None:
    """The camera section's intrinsics for an image of (width, height); None when camera.fx is 0."""
    cam = cfg.section("camera")
    if cam.fx <= 0:
        return None
    w, h = cam.width or width, cam.height or height
    return Camera.from_params(cam.fx, cam.fy or cam.fx,
                              cam.cx if cam.cx >= 0 else (w - 1) / 2.0,
                              cam.cy if cam.cy >= 0 else (h - 1) / 2.0, w, h,
                              D=parse_distortion(cam.distortion_coeffs), distortion_model=cam.distortion_model)


@dataclass
class CandidateChecks:
    """Per-candidate verification results, in the candidates' (re-ranked) order.

    attempted: verified or rejected before the deadline (False: not reached, beyond top_n, or no
    stored features). verified: passed the geometric decision and temporal consistency.
    pose_types: core pose types (verify.POSE_*); a pose is reported only for verified candidates.
    relative_poses (N, 4, 4): T_query_candidate; pose_covariances (N, 6, 6) of x y z rx ry rz.
    match_points: (K, 4) float32 [xq, yq, xc, yc] raw pixels of the inliers, or None.
    frame: "camera" (optical frames) or "base" (camera_to_base given).
    """

    attempted: np.ndarray
    verified: np.ndarray
    num_inliers: np.ndarray
    inlier_ratios: np.ndarray
    pose_types: list[str]
    relative_poses: np.ndarray
    pose_covariances: np.ndarray
    match_points: list[np.ndarray | None] = field(default_factory=list)
    frame: str = "camera"
    error: str = ""  # verification failed as a whole (every candidate unverified): why

    @classmethod
    def none(cls, n: int, frame: str = "camera") -> CandidateChecks:
        """n unverified candidates."""
        return cls(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, np.float32),
                   [POSE_NONE] * n, np.tile(np.eye(4), (n, 1, 1)), np.tile(np.diag(np.full(6, np.inf)), (n, 1, 1)),
                   [None] * n, frame)

    def head(self, n: int) -> CandidateChecks:
        """The checks of the first n candidates."""
        return self.take(np.arange(min(n, len(self.verified))))

    def take(self, idx) -> CandidateChecks:
        """The checks of the candidates at positions idx, in that order."""
        idx = np.asarray(idx, np.int64)
        return dataclasses.replace(
            self, attempted=self.attempted[idx], verified=self.verified[idx], num_inliers=self.num_inliers[idx],
            inlier_ratios=self.inlier_ratios[idx], pose_types=[self.pose_types[i] for i in idx],
            relative_poses=self.relative_poses[idx], pose_covariances=self.pose_covariances[idx],
            match_points=[self.match_points[i] for i in idx] if self.match_points else [])


class VerificationStage:
    """Extraction, storage and verification for one pipeline (thread-safe: one extractor per thread)."""

    def __init__(self, cfg: MaqboolConfig, database=None) -> None:
        self.params = params_from_config(cfg)
        self._cfg = cfg
        self._local = threading.local()
        self._lock = threading.Lock()
        self.temporal = TemporalConsistency(self.params.temporal_k, window=self.params.temporal_window)
        xyz, quat = parse_camera_to_base(cfg.section("camera").to_base)
        T = transform_from_xyz_quat(xyz, quat)
        self.camera_to_base = None if np.allclose(T, np.eye(4)) else T
        self.frame = "camera" if self.camera_to_base is None else "base"
        if database is not None:
            self.check_database(database)

    def check_database(self, database) -> None:
        """ValueError when the database stores local features of another kind or count."""
        spec = database.extras_spec().get(f"{PREFIX}_desc")
        dim, dtype = DESCRIPTOR_SHAPES[self.params.features]
        want = ((self.params.max_features, dim), np.dtype(dtype))
        if spec is not None and (tuple(spec[0]), np.dtype(spec[1])) != want:
            raise ValueError(f"verification_features/verification_max_features: the database stores local features "
                             f"{tuple(spec[0])} {np.dtype(spec[1])} but {self.params.features} x "
                             f"{self.params.max_features} needs {want[0]} {want[1]}; use the settings the database "
                             "was built with, or a fresh database_path")

    def configure(self, cfg: MaqboolConfig) -> None:
        """Apply live changes (top_n, thresholds, temporal_k); they take effect on the next query.
        The read-only fields (features, max_features, temporal_window, ...) cannot change."""
        with self._lock:
            self._cfg = cfg
            self.params = params_from_config(cfg)
            self.temporal.set_k(self.params.temporal_k)

    def _extractor(self) -> LocalFeatureExtractor:
        ex = getattr(self._local, "extractor", None)
        if ex is None:  # OpenCV detectors are not thread-safe: one per thread
            ex = self._local.extractor = LocalFeatureExtractor(self.params)
        return ex

    def describe(self, image_rgb: np.ndarray, depth: np.ndarray | None = None,
                 camera: Camera | None = None) -> tuple[LocalFeatures, Camera | None, list[str]]:
        """Local features of a keyframe, its camera (given, else the camera_* parameters) and
        the sensor problems found ("malformed_depth: ...", "camera_mismatch: ..."): a bad depth
        image or camera is dropped (2-D verification or none), never an error."""
        h, w = np.asarray(image_rgb).shape[:2]
        notes = []
        depth, why = check_depth(depth, (w, h))
        if why:
            notes.append(f"malformed_depth: {why}")
        if camera is None:
            camera = camera_from_config(self._cfg, w, h)
        if camera is not None and (camera.width, camera.height) != (w, h):
            notes.append(f"camera_mismatch: intrinsics are for {camera.width}x{camera.height}, the image is {w}x{h}")
            camera = None
        return self._extractor().extract(image_rgb, depth=depth), camera, notes

    def db_extras(self, feats: LocalFeatures) -> dict[str, np.ndarray]:
        return feats.to_extras(self.params.max_features, prefix=PREFIX)

    def _candidate(self, extras: dict[str, np.ndarray], i: int, camera: Camera | None) -> LocalFeatures | None:
        if f"{PREFIX}_info" not in extras or int(extras[f"{PREFIX}_info"][i][0]) == 0:
            return None  # stored without local features (verification was off, or a blank image)
        feats = LocalFeatures.from_extras({k: v[i] for k, v in extras.items() if k.startswith(PREFIX + "_")},
                                          self.params.features, prefix=PREFIX)
        if camera is not None and feats.image_size != (camera.width, camera.height):
            return None  # another camera: the pair cannot be verified with these intrinsics
        return feats

    def verify(self, query: LocalFeatures, camera: Camera | None, keys: list, extras: dict[str, np.ndarray],
               order: np.ndarray, deadline: float, also: int | None = None) -> CandidateChecks:
        """Verify candidates in re-ranked `order` (indices into keys/extras rows) until top_n or
        `deadline` (time.perf_counter()); keys: (robot_id, keyframe_id) per candidate row.
        also: one more position of `order` to verify after the top_n (the sequence stage's
        single-frame best), or None."""
        with self._lock:
            p = self.params
            order = np.asarray(order, dtype=np.int64)
            out = CandidateChecks.none(len(order), self.frame)
            positions = list(range(min(p.top_n, len(order))))
            if also is not None and p.top_n > 0 and 0 <= also < len(order) and also not in positions:
                positions.append(int(also))
            head = order[positions]
            mono_deadline = time.monotonic() + (deadline - time.perf_counter())
            try:
                cands = [self._candidate(extras, int(i), camera) for i in head]
                results = verify_candidates(query, cands, camera, dataclasses.replace(p, top_n=len(cands)),
                                            deadline=mono_deadline, camera_to_base=self.camera_to_base)
            except Exception as exc:  # noqa: BLE001 - a verification failure must not lose the candidates
                self.temporal.update([])
                out.error = f"{type(exc).__name__}: {exc}"
                return out
            accepted = self.temporal.update([keys[int(head[j])] for j, v in enumerate(results)
                                             if v is not None and v.verified])
            for j, v in enumerate(results):
                if v is not None:
                    self._fill(out, positions[j], v, accepted.get(keys[int(head[j])], False), query, cands[j])
            return out

    @staticmethod
    def _fill(out: CandidateChecks, j: int, v: Verification, accepted: bool, q: LocalFeatures,
              c: LocalFeatures) -> None:
        out.attempted[j] = True
        out.num_inliers[j], out.inlier_ratios[j] = v.num_inliers, v.inlier_ratio
        out.match_points[j] = np.hstack([q.keypoints[v.inliers[:, 0]], c.keypoints[v.inliers[:, 1]]]) \
            if len(v.inliers) else None
        if v.verified and accepted:
            out.verified[j] = True
            out.pose_types[j] = v.pose_type
            if v.pose_type != POSE_NONE:
                out.relative_poses[j], out.pose_covariances[j] = v.T, v.covariance
