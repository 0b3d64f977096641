"""Scoring of geometrically verified loops (``maqbool eval --verify``; docs/evaluation.md).

Per query, the loop the back end would get is the **best verified candidate**: the first
candidate in re-ranked order that passed verification (and temporal consistency). Its
confidence is its inlier count. It is a **true positive** when it is a ground-truth positive
of the query AND, when the dataset has poses, its relative pose agrees with the ground truth
within :data:`TOLERANCES` (metric pose: rotation and translation; monocular pose: rotation and
translation direction; a pose-less decision (no intrinsics): the positive test alone). Every
other best verified candidate is a **false positive**. Queries without a verified candidate
accept nothing.

* precision = TP / (TP + FP) at the configured thresholds (all verified loops accepted);
* recall = TP / queries with a revisit;
* recall_at_100_precision: the largest recall with no false positive when loops are accepted
  from the most inliers down (the PR curve over the inlier count, as metrics.best_match_pr_curve).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from maqbool_ros.core.evaluation.metrics import pr_curve_from_correct

#: A verified pose is correct within these (stated before measuring; 7-Scenes' relocalisation
#: test uses 5 cm / 5 deg; a loop link between keyframes metres apart gets 10 cm).
TOLERANCES = {"rotation_deg": 5.0, "translation_m": 0.10, "translation_direction_deg": 10.0}
#: Below this ground-truth baseline a monocular translation direction is undefined: not checked.
MIN_BASELINE_FOR_DIRECTION_M = 0.05


def rotation_error_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Angle of Ra^T Rb in degrees."""
    c = (np.trace(np.asarray(Ra).T @ np.asarray(Rb)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def pose_errors(T_est: np.ndarray, T_gt: np.ndarray, pose_type: str) -> dict[str, float]:
    """Rotation error (deg) and, for a metric pose, translation error (m), for a unit-translation
    pose the direction error (deg; NaN when the true baseline is below MIN_BASELINE_FOR_DIRECTION_M,
    or when the pose is rotation only: t = 0, verification/twoview.py)."""
    out = {"rotation_deg": rotation_error_deg(T_est[:3, :3], T_gt[:3, :3]),
           "translation_m": float("nan"), "translation_direction_deg": float("nan")}
    t_est, t_gt = np.asarray(T_est[:3, 3], float), np.asarray(T_gt[:3, 3], float)
    if pose_type == "metric":
        out["translation_m"] = float(np.linalg.norm(t_est - t_gt))
    elif (pose_type == "rotation_unit_translation" and np.linalg.norm(t_gt) >= MIN_BASELINE_FOR_DIRECTION_M
          and np.linalg.norm(t_est) > 0):  # t = 0: rotation only, the pose claims no direction
        c = t_est @ t_gt / max(np.linalg.norm(t_est) * np.linalg.norm(t_gt), 1e-12)
        out["translation_direction_deg"] = float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
    return out


def pose_within_tolerance(err: dict[str, float], tol: dict[str, float] = TOLERANCES) -> bool:
    """All defined errors within tolerance (NaN entries are not checked)."""
    return all(not np.isfinite(err[k]) or err[k] <= tol[k] for k in tol)


def best_verified(record: Any) -> int | None:
    """Index (into record.ranked) of the verified candidate with the most inliers (the first on
    ties: temporal.strongest_first, what the RTAB-Map bridge links), or None."""
    from maqbool_ros.core.verification.temporal import strongest_first

    verified = np.asarray(record.verified, dtype=bool)
    if not verified.any():
        return None
    return strongest_first(verified, np.asarray(record.num_inliers))[0]


def _median(values: list[float]) -> float | None:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    return float(np.median(v)) if len(v) else None


def summarize_verified(dataset: Any, records: Sequence[Any], tol: dict[str, float] = TOLERANCES) -> dict[str, Any]:
    """The ``verified`` object of the report (keys in docs/evaluation.md)."""
    poses = getattr(dataset, "poses", None)
    positives = [set(int(p) for p in dataset.positives[r.query_index]) for r in records]
    num_revisits = sum(1 for p in positives if p)
    correct, conf, errors = [], [], []
    tp = fp = wrong_pose = rotation_only = 0
    for r, pos in zip(records, positives):
        j = best_verified(r)
        if j is None:
            correct.append(False)
            conf.append(float("-inf"))
            continue
        cand, ptype = int(r.ranked[j]), r.pose_types[j]
        ok = cand in pos
        if poses is not None and ptype != "none" and r.relative_poses is not None:
            T_gt = np.linalg.inv(poses[r.query_index]) @ poses[cand]
            err = pose_errors(np.asarray(r.relative_poses[j]), T_gt, ptype)
            errors.append(err)
            rotation_only += ptype == "rotation_unit_translation" and not np.any(np.asarray(r.relative_poses[j])[:3, 3])
            if ok and not pose_within_tolerance(err, tol):
                ok, wrong_pose = False, wrong_pose + 1
        tp, fp = tp + ok, fp + (not ok)
        correct.append(ok)
        conf.append(float(r.num_inliers[j]))
    curve = pr_curve_from_correct(correct, conf, num_revisits)
    accepted = tp + fp
    has_poses = poses is not None
    return {
        "recall_at_100_precision": curve.max_recall_at_100_precision,
        "precision": tp / accepted if accepted else None,
        "recall": tp / num_revisits if num_revisits else None,
        "false_positives": fp,
        "true_positives": tp,
        "false_positives_wrong_pose": wrong_pose,
        "num_queries_verified": accepted,
        "num_queries_attempted": int(sum(1 for r in records if np.any(r.attempted))),
        "num_queries_with_revisit": num_revisits,
        "pr_auc": curve.auc,
        "rotation_error_deg_median": _median([e["rotation_deg"] for e in errors]) if has_poses else None,
        "translation_error_m_median": _median([e["translation_m"] for e in errors]) if has_poses else None,
        "translation_direction_error_deg_median":
            _median([e["translation_direction_deg"] for e in errors]) if has_poses else None,
        "num_pose_errors": len(errors),
        "num_rotation_only": rotation_only,
        "tolerances": dict(tol) if has_poses else None,
        "pr_curve": {"thresholds": curve.thresholds.tolist(), "precision": curve.precision.tolist(),
                     "recall": curve.recall.tolist()},
    }
