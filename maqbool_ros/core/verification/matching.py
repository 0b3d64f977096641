"""Tentative correspondences: nearest neighbours with Lowe's ratio test and a mutual check
(Hamming distance for ORB, L2 for SIFT)."""
from __future__ import annotations

import cv2
import numpy as np

from maqbool_ros.core.verification.features import LocalFeatures


def match_features(query: LocalFeatures, cand: LocalFeatures, ratio: float = 0.8, mutual: bool = True,
                   device: str = "auto", depth_confidence: float | None = None,
                   width_confidence: float | None = None) -> np.ndarray:
    """(M, 2) int32 index pairs [query index, candidate index], sorted by query index.

    A query feature keeps its nearest candidate feature when the nearest distance is below
    ratio x the second nearest, and (mutual) when it is also that candidate's nearest.
    ALIKED features are matched by LightGlue instead (ratio and mutual do not apply; depth/width
    confidence: its adaptive depth and width, None = published defaults).
    """
    if query.kind != cand.kind:
        raise ValueError(f"cannot match {query.kind} features against {cand.kind} features")
    if len(query) < 2 or len(cand) < 2:
        return np.zeros((0, 2), np.int32)
    if query.kind == "aliked":
        from maqbool_ros.core.verification import learned  # torch only when asked for

        pairs = learned.matcher(device).match(
            query.keypoints, query.descriptors, query.image_size, cand.keypoints, cand.descriptors, cand.image_size,
            depth_confidence=depth_confidence, width_confidence=width_confidence)
        return pairs[np.argsort(pairs[:, 0], kind="stable")]
    if query.kind == "orb":
        norm, dq, dc = cv2.NORM_HAMMING, query.descriptors, cand.descriptors
    else:
        norm, dq, dc = cv2.NORM_L2, query.descriptors.astype(np.float32), cand.descriptors.astype(np.float32)
    matcher = cv2.BFMatcher(norm, crossCheck=False)
    knn = matcher.knnMatch(dq, dc, k=2)
    qi, ci, d1, d2 = [], [], [], []
    for pair in knn:
        if len(pair) == 2:
            qi.append(pair[0].queryIdx)
            ci.append(pair[0].trainIdx)
            d1.append(pair[0].distance)
            d2.append(pair[1].distance)
    if not qi:
        return np.zeros((0, 2), np.int32)
    qi, ci = np.asarray(qi), np.asarray(ci)
    keep = np.asarray(d1) < ratio * np.asarray(d2)
    if mutual:
        back = matcher.match(dc, dq)  # each candidate feature's nearest query feature
        best_q = np.full(len(cand), -1)
        for m in back:
            best_q[m.queryIdx] = m.trainIdx
        keep &= best_q[ci] == qi
    return np.stack([qi[keep], ci[keep]], axis=1).astype(np.int32)
