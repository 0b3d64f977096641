"""Monocular relative pose with model selection (homography vs essential matrix) and explicit
ambiguity, after ORB-SLAM's initialiser (Mur-Artal, Montiel, Tardos, "ORB-SLAM: a versatile and
accurate monocular SLAM system", IEEE T-RO 2015, Sec. IV; ORB-SLAM2 Initializer.cc).

Why: when most matches lie on one plane (a wall) the essential matrix is near-degenerate: the
plane's homography H = R + t n^T / d has two physically valid decompositions ("twins", Faugeras
& Lustman 1988) that explain the on-plane matches equally well, and the 5-point solution lands
on either. With little parallax the translation direction is not observable at all. Rather than
pass such a pose as a confident one, the result says what is known:

* essential (R_H <= 0.45): R and unit t from the essential matrix, as before;
* homography with one valid decomposition (the others fail cheirality): that R, t;
* homography with two valid twins (planar ambiguity): rotation only, the geodesic midpoint of the
  twins' rotations with their half-separation added to the rotation covariance, t unknown;
* any of these with parallax below MIN_PARALLAX_DEG: rotation only, t unknown;
* an essential pose whose cost has other minima that the data do not reject (ambiguity.py,
  called by verify.py): their spread added, or rotation only (essential_ambiguous) when their
  directions disagree.

Below MIN_PARALLAX_DEG the pose also adds the parallax angle (isotropic, squared) to its rotation
variance: without t, the part of the ray displacement that the translation caused can be absorbed
by the rotation (the bas-relief ambiguity), so R is not known better than about that angle.

"t unknown" is reported as t = 0 with a translation variance of UNKNOWN_TRANSLATION_VAR (huge,
finite: the information matrix stays finite and says "no translation information").
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maqbool_ros.core.verification import geometry as geo

PLANE_RATIO = 0.45         # R_H = S_H / (S_H + S_F) above this -> homography (ORB-SLAM paper, Sec. IV-C)
CHI2_1DOF, CHI2_2DOF = 3.841, 5.991  # 95 % chi-square bounds; ORB-SLAM's scoring thresholds
SCORE_SIGMA_PX = 1.0       # ORB-SLAM scores with sigma = 1 px at the finest pyramid level
MIN_PARALLAX_DEG = 1.0     # ORB-SLAM2 Initializer minParallax: below it t is not trusted
TWIN_SEPARATION = 0.75     # ORB-SLAM2 ReconstructH: the best solution needs > 1/0.75 x the second's support
UNKNOWN_TRANSLATION_VAR = 1e6  # variance (per axis) of a translation that was not observed


@dataclass
class TwoViewPose:
    """T_a_b (R, t) from undistorted pixel matches; t unit, or zero when unknown (rotation only)."""

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray          # (N,) bool: the essential matrix's MAGSAC inliers (the decision uses them)
    model: str                   # essential | homography | homography_ambiguous | essential_ambiguous
    ratio_h: float               # R_H; nan when no homography was found
    translation_known: bool
    rotation_spread: np.ndarray  # (3, 3) covariance added when t is unknown: twin spread + parallax^2
    R_fit: np.ndarray | None = None  # a full (R, unit t) solution of the data, where the covariance
    t_fit: np.ndarray | None = None  # is linearised when t is unknown (rotation only)
    spread: np.ndarray | None = None  # (6, 6) added to a full pose's covariance: other minima (ambiguity.py)
    num_minima: int = 1              # distinct minima of the cost not rejected by the data (ambiguity.py)


def _to_h(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))])


def score_homography(H: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, sigma: float = SCORE_SIGMA_PX) -> float:
    """ORB-SLAM's S_H: sum over both transfer directions of (5.991 - e^2 / sigma^2) where positive."""
    def transfer_err(M, src, dst):
        p = _to_h(src) @ M.T
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.sum((p[:, :2] / p[:, 2:3] - dst) ** 2, axis=1) / sigma ** 2
        return np.nan_to_num(e, nan=np.inf)

    s = 0.0
    for e in (transfer_err(H, x_b, x_a), transfer_err(np.linalg.inv(H), x_a, x_b)):
        s += float(np.sum(np.where(e < CHI2_2DOF, CHI2_2DOF - e, 0.0)))
    return s


def score_fundamental(F: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, sigma: float = SCORE_SIGMA_PX) -> float:
    """ORB-SLAM's S_F: point-to-epipolar-line distances in both images, inlier bound 3.841 (1 dof),
    scored as 5.991 - e^2 / sigma^2 (the same scale as S_H)."""
    hb, ha = _to_h(x_b), _to_h(x_a)
    la, lb = hb @ F.T, ha @ F  # epipolar lines in image a and image b
    num = np.sum(ha * la, axis=1) ** 2
    s = 0.0
    for line in (la, lb):
        e = num / np.maximum(line[:, 0] ** 2 + line[:, 1] ** 2, 1e-300) / sigma ** 2
        s += float(np.sum(np.where(e < CHI2_1DOF, CHI2_2DOF - e, 0.0)))
    return s


def _support(R: np.ndarray, t: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
             threshold: float) -> int:
    """Matches that triangulate in front of both cameras with reprojection error <= threshold in both."""
    P_b = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
    P_a = K @ np.hstack([R, t.reshape(3, 1)])
    X = cv2.triangulatePoints(P_b, P_a, x_b.T.astype(np.float64), x_a.T.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        X = (X[:3] / X[3]).T
        Xa = X @ R.T + t
        pb, pa = X @ K.T, Xa @ K.T
        eb = np.linalg.norm(pb[:, :2] / pb[:, 2:3] - x_b, axis=1)
        ea = np.linalg.norm(pa[:, :2] / pa[:, 2:3] - x_a, axis=1)
    good = (X[:, 2] > 0) & (Xa[:, 2] > 0) & (eb <= threshold) & (ea <= threshold)
    return int(np.sum(good))


def homography_solutions(H: np.ndarray, K: np.ndarray, x_b: np.ndarray, x_a: np.ndarray,
                         threshold: float) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Decompositions of H (cv2.decomposeHomographyMat) as (support, R, unit t), most supported
    first; a decomposition with a (near-)zero translation is skipped (no cheirality test possible)."""
    _, Rs, ts, _ = cv2.decomposeHomographyMat(H, K)
    out = []
    for R, t in zip(Rs, ts):
        t = t.ravel()
        n = np.linalg.norm(t)
        if n < 1e-9:
            continue
        out.append((_support(R, t / n, x_b, x_a, K, threshold), R, t / n))
    return sorted(out, key=lambda s: -s[0])


def rotation_midpoint(R1: np.ndarray, R2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic midpoint of two rotations and the covariance of the two-point spread about it,
    in the left-perturbation parametrisation R = exp([dr]x) R_mid (geometry.py)."""
    w = cv2.Rodrigues(R2 @ R1.T)[0].ravel()  # R2 = exp([w]x) R1
    R_mid = cv2.Rodrigues(w / 2)[0] @ R1
    half = w / 2  # each twin lies at +-half from the midpoint
    return R_mid, np.outer(half, half)


def parallax_deg(R: np.ndarray, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray) -> float:
    """Median angle between rays of a and rays of b rotated into a (the triangulation angle)."""
    Kinv = np.linalg.inv(K)
    ra = _to_h(x_a) @ Kinv.T
    rb = _to_h(x_b) @ Kinv.T @ R.T
    cos = np.sum(ra * rb, axis=1) / (np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1))
    return float(np.degrees(np.median(np.arccos(np.clip(cos, -1.0, 1.0))))) if len(cos) else float("nan")


def estimate_two_view(x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray, threshold: float, confidence: float,
                      max_iters: int) -> TwoViewPose | None:
    """T_a_b from undistorted pixel matches x_b <-> x_a with homography/essential model selection
    (module doc). None when no essential matrix was found (the pair is then rejected)."""
    est = geo.estimate_essential(x_b, x_a, K, threshold, confidence, max_iters)
    if est is None:
        return None
    R, t, inl = est
    no_spread = np.zeros((3, 3))
    out = TwoViewPose(R, t, inl, "essential", float("nan"), True, no_spread)
    try:
        H, h_mask = cv2.findHomography(x_b, x_a, cv2.USAC_MAGSAC, threshold, maxIters=max_iters,
                                       confidence=confidence)
    except cv2.error:  # USAC asserts on some degenerate sets: keep the essential matrix's pose
        H, h_mask = None, None
    if H is not None and h_mask is not None and abs(np.linalg.det(H)) > 1e-12:
        Kinv = np.linalg.inv(K)
        F = Kinv.T @ geo.skew(t) @ R @ Kinv
        s_h, s_f = score_homography(H, x_b, x_a), score_fundamental(F, x_b, x_a)
        out.ratio_h = s_h / (s_h + s_f) if s_h + s_f > 0 else float("nan")
        h_inl = h_mask.ravel().astype(bool)
        if out.ratio_h > PLANE_RATIO and h_inl.sum() >= 4:
            sols = [s for s in homography_solutions(H, K, x_b[h_inl], x_a[h_inl], threshold) if s[0] > 0]
            if len(sols) == 1 or (len(sols) > 1 and sols[1][0] < TWIN_SEPARATION * sols[0][0]):
                out.R, out.t, out.model = sols[0][1], sols[0][2], "homography"
            elif len(sols) > 1:  # planar ambiguity: two decompositions explain the plane equally well
                R_mid, spread = rotation_midpoint(sols[0][1], sols[1][1])
                out.R_fit, out.t_fit = sols[0][1], sols[0][2]
                out.R, out.t, out.model = R_mid, np.zeros(3), "homography_ambiguous"
                out.translation_known, out.rotation_spread = False, spread
    par = parallax_deg(out.R, x_b[inl], x_a[inl], K)
    if out.translation_known and par < MIN_PARALLAX_DEG:
        out.R_fit, out.t_fit = out.R, out.t
        out.t, out.translation_known = np.zeros(3), False
    if par < MIN_PARALLAX_DEG:
        # with t unknown, the rays' translation-induced displacement (the parallax) can be traded
        # against the rotation (bas-relief ambiguity): R is only known to about the parallax angle
        out.rotation_spread = out.rotation_spread + np.eye(3) * np.radians(par) ** 2
    return out


def two_view_covariance(pose: TwoViewPose, x_b: np.ndarray, x_a: np.ndarray, K: np.ndarray,
                        sigma_b: np.ndarray | None = None, sigma_a: np.ndarray | None = None,
                        min_factor: float | None = None, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """6x6 covariance (geometry.essential_covariance on the inliers' Sampson residuals, weighted by
    the keypoint sigmas when given; threshold: the RANSAC bound that chose the inliers). Rotation
    only: the rotation block at (R_fit, t_fit) plus the ambiguity spread, no rotation-translation
    correlation, UNKNOWN_TRANSLATION_VAR on the translation diagonal."""
    if pose.translation_known:
        cov, sigma2 = geo.essential_covariance(pose.R, pose.t, x_b, x_a, K, sigma_b, sigma_a, min_factor, threshold)
        return (cov if pose.spread is None else cov + pose.spread), sigma2
    cov6, sigma2 = geo.essential_covariance(pose.R_fit, pose.t_fit, x_b, x_a, K, sigma_b, sigma_a, min_factor,
                                            threshold)
    cov = np.zeros((6, 6))
    cov[:3, :3] = np.eye(3) * UNKNOWN_TRANSLATION_VAR
    cov[3:, 3:] = cov6[3:, 3:] + pose.rotation_spread
    return cov, sigma2
