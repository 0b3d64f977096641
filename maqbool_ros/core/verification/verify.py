"""Geometric verification of one query keyframe against candidate keyframes: matches, robust
relative pose and the accept/reject decision.

relative pose (R, t) = T_query_candidate: X_query = R X_candidate + t, i.e. the pose of the
candidate camera expressed in the query camera frame (t = candidate camera centre in query
coordinates; OpenCV optical frame: x right, y down, z forward). With camera_to_base
(T_base_camera) both ends are the robot base instead: T_qbase_cbase = T_bc T_qc T_bc^-1.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from maqbool_ros.core.verification import acontrario, ambiguity, jackknife, pnp, twoview
from maqbool_ros.core.verification import geometry as geo
from maqbool_ros.core.verification.camera import Camera, sample_depth
from maqbool_ros.core.verification.features import LocalFeatures
from maqbool_ros.core.verification.matching import match_features
from maqbool_ros.core.verification.params import VerificationParams
from maqbool_ros.core.verification.variance import MIN_VARIANCE_FACTOR

POSE_NONE = "none"                                  # no pose (rejected, or no camera: fundamental matrix only)
POSE_UNIT_TRANSLATION = "rotation_unit_translation"  # monocular: rotation + translation direction, scale unknown
POSE_METRIC = "metric"                               # depth + PnP: metric 6-DoF


@dataclass
class Verification:
    """Result of verifying one (query, candidate) pair.

    verified: passed the decision: meaningful_inliers >= min_inliers, meaningful_inliers /
        num_matches >= min_inlier_ratio and log10_nfa < 0.
    num_matches: tentative matches fed to the estimator; num_inliers: its RANSAC inliers (the pose
        and covariance use them); inlier_ratio = num_inliers / num_matches.
    meaningful_inliers, log10_nfa: the a-contrario count of those inliers and its number of false
        alarms (acontrario.py): RANSAC inliers beyond the most meaningful set are likely chance fits
        of the model, so the decision counts only the meaningful ones.
    R (3, 3), t (3,): T_query_candidate (see module doc); t has unit norm for rotation_unit_translation.
    covariance: (6, 6) of [x, y, z, rx, ry, rz] (perturbation in the query frame); inf on the
        diagonal when no pose was estimated. A rejected pair has pose_type none but keeps the
        estimate it was rejected with (diagnostics only).
    frame: "camera" or "base" (camera_to_base was given). variance_factor: the a-posteriori variance
        factor k of the covariance (pnp.py): the residuals' variance over the keypoints' a-priori
        one (1 px at their pyramid level), floored at the model's (variance.MIN_VARIANCE_FACTOR).
    parallax_deg: median angle between the inliers' query rays and their rotated candidate rays
        (camera frame, the triangulation angle).
    model: the estimator that gave the pose; monocular poses choose between a homography and the
        essential matrix (twoview.py, after ORB-SLAM's initialiser); essential_ambiguous: several
        minima of the two-view cost that the data do not reject, directions disagreeing (ambiguity.py).
    translation_known: False for a monocular pose whose translation direction is not observable
        (parallax < 1 deg, a plane whose homography has two valid decompositions, or essential_ambiguous): t = 0,
        the translation variance is twoview.UNKNOWN_TRANSLATION_VAR and only R is a constraint.
    """

    verified: bool
    num_matches: int
    num_inliers: int
    inlier_ratio: float
    pose_type: str
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    covariance: np.ndarray = field(default_factory=lambda: np.diag(np.full(6, np.inf)))
    frame: str = "camera"
    variance_factor: float = float("nan")
    parallax_deg: float = float("nan")
    inliers: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))  # [query idx, cand idx]
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""  # why the estimator failed (an OpenCV error on degenerate matches): rejected
    model: str = ""  # pnp | essential | homography | homography_ambiguous | essential_ambiguous; "" when none
    translation_known: bool = False  # False: rotation only (t = 0, translation variance huge)
    meaningful_inliers: int = 0      # the decision's count (acontrario.py); <= num_inliers
    log10_nfa: float = float("inf")  # < 0: the inlier set is more than chance

    @property
    def T(self) -> np.ndarray:
        """4x4 T_query_candidate."""
        return geo.make_T(self.R, self.t)


def _depths(feats: LocalFeatures, depth_image: np.ndarray | None, max_depth_m: float) -> np.ndarray | None:
    if depth_image is not None:
        return sample_depth(depth_image, feats.keypoints, feats.image_size, max_depth_m=max_depth_m)
    return feats.depths


def _backproject(uv: np.ndarray, z: np.ndarray, K: np.ndarray) -> np.ndarray:
    x = (uv[:, 0] - K[0, 2] - K[0, 1] * (uv[:, 1] - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    return np.stack([x * z, y * z, z], axis=1)


def _sigmas(query: LocalFeatures, cand: LocalFeatures, pairs: np.ndarray,
            sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """A-priori pixel sigmas of the matched query and candidate keypoints (rows [query, cand])."""
    return sigma_px * query.keypoint_sigmas(pairs[:, 0]), sigma_px * cand.keypoint_sigmas(pairs[:, 1])


def verify(query: LocalFeatures, cand: LocalFeatures, camera: Camera | None,
           depth_q: np.ndarray | None = None, depth_c: np.ndarray | None = None,
           params: VerificationParams | None = None, camera_to_base: np.ndarray | None = None) -> Verification:
    """Match, estimate and decide.

    camera: intrinsics of both keyframes (None: uncalibrated, fundamental matrix, no pose).
    depth_q / depth_c: optional registered depth images (uint16 mm or float32 m); when absent the
        features' own per-keypoint depths (sampled at extraction) are used. Candidate depth gives
        PnP (candidate 3-D points, query pixels) -> T_qc directly; else query depth gives T_cq,
        inverted; else (or when fewer than min_inliers matches have depth) the essential matrix.
    camera_to_base: optional 4x4 T_base_camera; the pose is then base-to-base.
    """
    p = params or VerificationParams()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    A = geo.check_transform(camera_to_base, "camera_to_base") if camera_to_base is not None else None
    if camera is not None:
        for f, what in ((query, "query features"), (cand, "candidate features")):
            camera.check_image_size(*f.image_size, what=what)
    pairs = match_features(query, cand, ratio=p.ratio, mutual=p.mutual, device=p.device,
                           depth_confidence=p.lightglue_depth_confidence,
                           width_confidence=p.lightglue_width_confidence)
    timings["match_ms"] = (time.perf_counter() - t0) * 1e3

    def reject(n: int, n_inl: int = 0) -> Verification:
        timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        return Verification(False, n, n_inl, n_inl / n if n else 0.0, POSE_NONE, timings_ms=timings)

    if len(pairs) < p.min_inliers:  # cannot pass the decision: skip the estimator
        return reject(len(pairs))
    try:
        return _estimate(query, cand, pairs, camera, depth_q, depth_c, p, A, t0, timings, reject)
    except (cv2.error, np.linalg.LinAlgError) as exc:
        # OpenCV's USAC asserts on some degenerate match sets (e.g. "!model.empty()" in
        # setModelParameters for a near-pure-translation fundamental matrix): no model = rejected
        out = reject(len(pairs))
        out.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"
        return out


def _estimate(query: LocalFeatures, cand: LocalFeatures, pairs: np.ndarray, camera: Camera | None,
              depth_q: np.ndarray | None, depth_c: np.ndarray | None, p: VerificationParams, A: np.ndarray | None,
              t0: float, timings: dict[str, float], reject) -> Verification:
    """verify() from the matches on: robust estimation, covariance, decision."""
    uv_q_raw = query.keypoints[pairs[:, 0]].astype(np.float64)
    uv_c_raw = cand.keypoints[pairs[:, 1]].astype(np.float64)
    t1 = time.perf_counter()
    if camera is None:
        F, mask = cv2.findFundamentalMat(uv_c_raw, uv_q_raw, cv2.USAC_MAGSAC, p.ransac_threshold_px,
                                         p.ransac_confidence, p.ransac_max_iters)
        inl = mask.ravel().astype(bool) if mask is not None else np.zeros(len(pairs), bool)
        n_inl = int(inl.sum())
        res = (geo.sampson_distance(F[:3], uv_c_raw, uv_q_raw) if F is not None and F.shape[0] >= 3
               else np.full(len(pairs), np.inf))
        ok, mk = _decide(res, len(pairs), n_inl, query.image_size, "fundamental", p)
        timings["estimate_ms"] = (time.perf_counter() - t1) * 1e3
        timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        return Verification(ok, len(pairs), n_inl, n_inl / len(pairs), POSE_NONE, inliers=pairs[inl],
                            timings_ms=timings, meaningful_inliers=mk.num_inliers, log10_nfa=mk.log10_nfa)

    K = camera.K
    uv_q = camera.undistort_pixels(uv_q_raw)
    uv_c = camera.undistort_pixels(uv_c_raw)
    zc, zq = _depths(cand, depth_c, p.max_depth_m), _depths(query, depth_q, p.max_depth_m)
    zc = zc[pairs[:, 1]] if zc is not None else np.zeros(len(pairs))
    zq = zq[pairs[:, 0]] if zq is not None else np.zeros(len(pairs))
    use_c, use_q = zc > 0, zq > 0
    used = np.arange(len(pairs))
    if use_c.sum() >= p.min_inliers or use_q.sum() >= p.min_inliers:
        from_cand = use_c.sum() >= use_q.sum()
        used = np.flatnonzero(use_c if from_cand else use_q)
        # candidate points seen by the query camera (T_qc), or query points seen by the candidate's (T_cq)
        X_all, obs = ((_backproject(uv_c[used], zc[used], K), uv_q[used]) if from_cand
                      else (_backproject(uv_q[used], zq[used], K), uv_c[used]))
        est = geo.estimate_pnp(X_all, obs, K, p.ransac_threshold_px, p.ransac_confidence, p.ransac_max_iters,
                               p.pnp_refine)
        if est is None:
            return reject(len(used))
        R, t, inl = est
        if inl.sum() < 6:
            return reject(len(used), int(inl.sum()))
        s_q, s_c = _sigmas(query, cand, pairs[used[inl]], p.keypoint_sigma_px)
        s_obs, s_src = (s_q, s_c) if from_cand else (s_c, s_q)
        X, uv = X_all[inl], obs[inl]
        if p.pnp_refine:
            R, t = pnp.refine_weighted(R, t, X, uv, K, p.depth_noise, s_obs, s_src)
        cov, sigma2 = pnp.pnp_covariance(R, t, X, uv, K, p.depth_noise, s_obs, s_src,
                                         threshold=p.ransac_threshold_px)
        ok, mk = _decide(pnp.reprojection_errors(R, t, X_all, obs, K), len(used), int(inl.sum()),
                         (query if from_cand else cand).image_size, "pnp", p)
        T = geo.make_T(R, t)
        if not from_cand:
            cov = geo.inverse_covariance(T, cov)
            T = geo.invert_T(T)
        pose_type, model, t_known = POSE_METRIC, "pnp", True
    else:
        tv = twoview.estimate_two_view(uv_c, uv_q, K, p.ransac_threshold_px, p.ransac_confidence, p.ransac_max_iters)
        if tv is None:
            return reject(len(pairs))
        inl = tv.inliers
        s_q, s_c = _sigmas(query, cand, pairs[inl], p.keypoint_sigma_px)
        if tv.model == "essential" and tv.translation_known and p.pnp_refine:
            tv.R, tv.t = geo.refine_essential(tv.R, tv.t, uv_c[inl], uv_q[inl], K, s_c, s_q)
            # cap each inlier's influence, refine again: these sigmas then feed the decision's
            # ambiguity search and the covariance (docs/verification.md, bounded influence)
            s_c, s_q = geo.bounded_influence_sigmas(tv.R, tv.t, uv_c[inl], uv_q[inl], K, s_c, s_q)
            tv.R, tv.t = geo.refine_essential(tv.R, tv.t, uv_c[inl], uv_q[inl], K, s_c, s_q)
        R_r, t_r = (tv.R, tv.t) if tv.translation_known else (tv.R_fit, tv.t_fit)
        ok, mk = _decide(np.abs(geo.sampson_residuals(R_r, t_r, uv_c, uv_q, K)), len(pairs), int(inl.sum()),
                         query.image_size, "essential", p)
        if tv.model == "essential" and tv.translation_known and ok:  # other minima the data do not reject
            # (a rejected pose is never used: the search is skipped)
            tv = ambiguity.resolve(tv, uv_c[inl], uv_q[inl], K, s_c, s_q, MIN_VARIANCE_FACTOR, p.ransac_threshold_px)
        cov, sigma2 = twoview.two_view_covariance(tv, uv_c[inl], uv_q[inl], K, s_c, s_q, MIN_VARIANCE_FACTOR,
                                                  p.ransac_threshold_px)
        if tv.model == "essential" and tv.translation_known and ok:  # the data's own spread widens it
            spread = jackknife.essential_jackknife(tv.R, tv.t, uv_c[inl], uv_q[inl], K, s_c, s_q)
            cov = cov if spread is None else jackknife.loewner_max(cov, spread)
        T = geo.make_T(tv.R, tv.t)
        pose_type, model, t_known = POSE_UNIT_TRANSLATION, tv.model, tv.translation_known
    timings["estimate_ms"] = (time.perf_counter() - t1) * 1e3
    sel = used[inl]
    parallax = twoview.parallax_deg(T[:3, :3], uv_c[sel], uv_q[sel], K)
    frame = "camera"
    if A is not None:
        if pose_type == POSE_METRIC:
            T, cov = geo.conjugate(A, T, cov)
        else:  # scale unknown: only the rotation transfers exactly; t is the direction in base axes
            rot = np.zeros((6, 6))
            rot[:3, :3] = rot[3:, 3:] = A[:3, :3]
            T = geo.make_T(A[:3, :3] @ T[:3, :3] @ A[:3, :3].T, A[:3, :3] @ T[:3, 3])
            cov = rot @ cov @ rot.T
        frame = "base"
    n_inl = int(inl.sum())
    timings["total_ms"] = (time.perf_counter() - t0) * 1e3
    return Verification(ok, len(used), n_inl, n_inl / len(used), pose_type if ok else POSE_NONE,
                        R=T[:3, :3].copy(), t=T[:3, 3].copy(), covariance=cov, frame=frame,
                        variance_factor=float(sigma2), parallax_deg=parallax, inliers=pairs[used][inl],
                        timings_ms=timings, model=model, translation_known=t_known,
                        meaningful_inliers=mk.num_inliers, log10_nfa=mk.log10_nfa)


def _decide(residuals: np.ndarray, num_matches: int, num_inliers: int, image_size: tuple[int, int], model: str,
            p: VerificationParams) -> tuple[bool, acontrario.Meaningful]:
    """The accept decision on the a-contrario count of the RANSAC inliers (never more than them)."""
    mk = acontrario.meaningful_inliers(residuals, image_size, model, p.ransac_threshold_px, max_inliers=num_inliers)
    k = mk.num_inliers
    return k >= p.min_inliers and k / num_matches >= p.min_inlier_ratio and mk.log10_nfa < 0, mk


def verify_candidates(query: LocalFeatures, candidates: Sequence[LocalFeatures | None], camera: Camera | None,
                      params: VerificationParams | None = None, deadline: float | None = None,
                      depth_q: np.ndarray | None = None, camera_to_base: np.ndarray | None = None,
                      ) -> list[Verification | None]:
    """Verify candidates in the given (re-ranked) order: at most params.top_n, and none started
    after `deadline` (a time.monotonic() value). Candidates not reached, or without stored
    features (None), stay None (unverified)."""
    p = params or VerificationParams()
    out: list[Verification | None] = [None] * len(candidates)
    for i, cand in enumerate(candidates[: p.top_n]):
        if deadline is not None and time.monotonic() >= deadline:
            break
        if cand is not None:
            out[i] = verify(query, cand, camera, depth_q=depth_q, params=p, camera_to_base=camera_to_base)
    return out
