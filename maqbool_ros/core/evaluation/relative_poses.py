"""Scoring of the relative-pose stage alone (``maqbool poses``; docs/evaluation.md).

Frame pairs of a posed dataset (data/posed.py, data/rgbd_sequence.py) are verified as a loop
would be (query = the later frame, candidate = the earlier one) and the estimated
T_query_candidate is compared with the ground truth inv(T_wq) T_wc. Consistency of the
reported covariance is the NEES (normalised estimation error squared, Bar-Shalom et al.,
"Estimation with Applications to Tracking and Navigation", 2001, ch. 5.4): e^T P^-1 e of the
error e in the covariance's own parametrisation (verification/geometry.py: t = t_hat + d_t,
R = exp([d_r]x) R_hat). A consistent covariance puts 95 % of pairs inside the 95 % chi-square
bound of e's dimension: 6 for a metric pose, 3 (rotation) for a monocular one, whose
translation direction is checked separately in its 2-D tangent plane.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from maqbool_ros.core.evaluation.verified import pose_errors
from maqbool_ros.core.verification.features import LocalFeatureExtractor
from maqbool_ros.core.verification.params import VerificationParams
from maqbool_ros.core.verification.verify import POSE_METRIC, POSE_UNIT_TRANSLATION, verify

#: chi-square 95 % quantiles by degrees of freedom (scipy.stats.chi2.ppf(0.95, k))
CHI2_95 = {2: 5.991, 3: 7.815, 6: 12.592}


def parse_pairs(spec: str, num_frames: int, positives: list | None = None) -> list[tuple[int, int]]:
    """``consecutive:K``: (i + K, i) for every i (frames K apart); ``all``: every (j, i), j > i;
    ``loops``: every ground-truth loop (i, earlier positive of i). Each pair is (query,
    candidate), the query the later frame."""
    spec = spec.strip()
    if spec == "loops":
        if positives is None:
            raise ValueError("--pairs loops: the dataset has no loop ground truth")
        return [(i, int(j)) for i, pos in enumerate(positives) for j in pos]
    if spec == "all":
        return [(j, i) for i in range(num_frames) for j in range(i + 1, num_frames)]
    kind, _, k = spec.partition(":")
    if kind == "consecutive" and k.isdigit() and int(k) >= 1:
        return [(i + int(k), i) for i in range(num_frames - int(k))]
    raise ValueError(f"--pairs {spec!r}: expected consecutive:K (K >= 1), all or loops")


def _rotation_log(R: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.ascontiguousarray(R, np.float64))[0].ravel()


def nees(T_est: np.ndarray, cov: np.ndarray, T_gt: np.ndarray, pose_type: str,
         translation_known: bool = True) -> dict[str, float]:
    """NEES of the pose error: ``pose`` (metric: 6-D; monocular: rotation, 3-D) and, for a
    monocular pose with a translation direction, ``direction`` (2-D, tangent plane of t_hat)."""
    d_r = _rotation_log(T_gt[:3, :3] @ T_est[:3, :3].T)
    out = {"pose": float("nan"), "pose_dof": 0, "direction": float("nan")}
    if pose_type == POSE_METRIC:
        e = np.r_[T_gt[:3, 3] - T_est[:3, 3], d_r]
        out["pose"], out["pose_dof"] = float(e @ np.linalg.solve(cov, e)), 6
    elif pose_type == POSE_UNIT_TRANSLATION:
        out["pose"], out["pose_dof"] = float(d_r @ np.linalg.solve(cov[3:, 3:], d_r)), 3
        t_gt, t_est = T_gt[:3, 3], T_est[:3, 3]
        if translation_known and np.linalg.norm(t_gt) > 0 and np.linalg.norm(t_est) > 0:
            t_hat = t_est / np.linalg.norm(t_est)
            B = np.linalg.svd(t_hat.reshape(1, 3))[2][1:].T  # the two observable directions
            e2 = B.T @ (t_gt / np.linalg.norm(t_gt) - t_hat)
            out["direction"] = float(e2 @ np.linalg.solve(B.T @ cov[:3, :3] @ B, e2))
    return out


def _frac_within(pairs: list[tuple[float, int]]) -> float | None:
    """Fraction of finite (NEES, dof) values inside their 95 % chi-square bound."""
    inside = [x <= CHI2_95[dof] for x, dof in pairs if dof and np.isfinite(x)]
    return float(np.mean(inside)) if inside else None


def _median(values: list[float]) -> float | None:
    v = np.asarray([x for x in values if np.isfinite(x)])
    return float(np.median(v)) if len(v) else None


def score_pairs(dataset: Any, pairs: list[tuple[int, int]], params: VerificationParams | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Verify every (query, candidate) pair and score the verified poses (keys: docs/evaluation.md)."""
    if getattr(dataset, "poses", None) is None or getattr(dataset, "camera", None) is None:
        raise ValueError(f"{dataset.name}: relative poses need a dataset with poses and intrinsics "
                         "(KITTI, TUM RGB-D, EuRoC, a bag with CameraInfo and poses, synthetic-rgbd/-mono)")
    p = params or VerificationParams()
    extractor = LocalFeatureExtractor(p)
    feats: dict[int, Any] = {}

    def features(i: int):
        if i not in feats:
            depth = dataset.depths[i] if dataset.depths is not None else None
            feats[i] = extractor.extract(dataset.frames[i], depth)
        return feats[i]

    rows = []
    for k, (q, c) in enumerate(pairs):
        v = verify(features(q), features(c), dataset.camera, params=p)
        T_gt = dataset.relative_pose(q, c)
        row: dict[str, Any] = {"query": q, "candidate": c, "verified": bool(v.verified), "pose_type": v.pose_type,
                               "num_inliers": v.num_inliers, "model": v.model,
                               "true_rotation_deg": pose_errors(np.eye(4), T_gt, POSE_METRIC)["rotation_deg"],
                               "true_baseline_m": float(np.linalg.norm(T_gt[:3, 3]))}
        if v.verified:
            row.update({f"{key}_error": val for key, val in pose_errors(v.T, T_gt, v.pose_type).items()})
            n = nees(v.T, v.covariance, T_gt, v.pose_type, v.translation_known)
            row.update({"nees": n["pose"], "nees_dof": n["pose_dof"], "nees_direction": n["direction"],
                        "variance_factor": v.variance_factor})
        rows.append(row)
        if progress is not None:
            progress(k + 1, len(pairs))
    return summarize(dataset, rows)


def summarize(dataset: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The report: medians over verified pairs, NEES coverage, and every pair's row."""
    ver = [r for r in rows if r["verified"]]
    metric = dataset.depths is not None
    out: dict[str, Any] = {"dataset": dataset.name, "source": dataset.source, "num_pairs": len(rows),
                           "num_verified": len(ver), "metric": metric,
                           "rotation_error_deg_median": _median([r["rotation_deg_error"] for r in ver])}
    if metric:
        out["translation_error_m_median"] = _median([r["translation_m_error"] for r in ver])
    else:
        out["translation_direction_error_deg_median"] = _median([r["translation_direction_deg_error"] for r in ver])
    out["nees_within_95"] = _frac_within([(r["nees"], r["nees_dof"]) for r in ver])
    if not metric:
        out["nees_direction_within_95"] = _frac_within([(r["nees_direction"], 2) for r in ver])
    out["pairs"] = rows
    return out
