"""Verification settings, with defaults taken from published systems (not tuned to our data)."""
from __future__ import annotations

from dataclasses import dataclass, fields

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
MIN_INLIERS_FLOOR = 6  # the 5-point solver and PnP need 4-6 points; below this only 0 (= default) is allowed


def check_min_inliers(value: int) -> None:
    """ValueError unless value is 0 (the feature type's default) or in [MIN_INLIERS_FLOOR, 10000]."""
    if value != 0 and not MIN_INLIERS_FLOOR <= value <= 10000:
        raise ValueError(f"{value} must be 0 (the feature type's default: {DEFAULT_MIN_INLIERS}) "
                         f"or between {MIN_INLIERS_FLOOR} and 10000")

# Where each default comes from (docs/verification.md has the table):
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


@dataclass
class VerificationParams:
    """Settings of local-feature extraction, matching, estimation and the decision."""

    features: str = "orb"            # orb | sift | aliked
    max_features: int = 0            # per keyframe, also the stored row count; 0: DEFAULT_MAX_FEATURES[features]
    max_image_side: int = 640        # ORB/SIFT extraction downscales the long side to this (0: full size)
    aliked_max_side: int = 384       # the same for ALIKED (its cost grows with the pixels)
    aliked_threshold: float = 0.0    # ALIKED keypoint score threshold; 0: the max_features strongest
    lightglue_depth_confidence: float = 0.95  # LightGlue adaptive depth (early stop); 0: off
    lightglue_width_confidence: float = 0.99  # LightGlue adaptive width (point pruning); 0: off
    ratio: float = 0.8               # nearest / second-nearest descriptor distance must be below this
    mutual: bool = True              # keep only mutual nearest neighbours (ratio/mutual: not for aliked)
    device: str = "auto"             # torch device of the aliked backend (auto: cuda when available)
    ransac_threshold_px: float = 2.0
    ransac_confidence: float = 0.999
    ransac_max_iters: int = 1000
    min_inliers: int = 0             # 0: DEFAULT_MIN_INLIERS[features]; resolved in __post_init__
    min_inlier_ratio: float = 0.25   # inliers / tentative matches used by the estimator
    max_depth_m: float = 0.0         # depth beyond this is ignored (0: no limit)
    pnp_refine: bool = True          # Levenberg-Marquardt refinement on the PnP inliers
    depth_noise: float = 1.425e-3    # sigma_z = depth_noise * z^2 m (Khoshelham & Elberink 2012); 0: exact depth
    keypoint_sigma_px: float = 1.0   # a-priori keypoint sigma, px of the level it was found in (ORB-SLAM)
    temporal_k: int = 1              # consecutive query keyframes that must agree (1: off)
    temporal_window: int = 3         # candidates whose keyframe ids differ by <= this are neighbours
    top_n: int = 3                   # candidates verified per query, best re-ranked first

    def __post_init__(self) -> None:
        self.validate()
        if self.min_inliers == 0:
            self.min_inliers = DEFAULT_MIN_INLIERS[self.features]
        if self.max_features == 0:
            self.max_features = DEFAULT_MAX_FEATURES[self.features]

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.features not in FEATURE_KINDS:
            raise ValueError(f"verification features {self.features!r} is not one of {FEATURE_KINDS}")
        checks = {
            "max_features": self.max_features == 0 or 8 <= self.max_features <= 20000,
            "max_image_side": self.max_image_side == 0 or 64 <= self.max_image_side <= 8192,
            "aliked_max_side": self.aliked_max_side == 0 or 64 <= self.aliked_max_side <= 8192,
            "aliked_threshold": 0.0 <= self.aliked_threshold < 1.0,
            "lightglue_depth_confidence": 0.0 <= self.lightglue_depth_confidence <= 1.0,
            "lightglue_width_confidence": 0.0 <= self.lightglue_width_confidence <= 1.0,
            "ratio": 0.0 < self.ratio <= 1.0,
            "ransac_threshold_px": 0.0 < self.ransac_threshold_px <= 50.0,
            "ransac_confidence": 0.0 < self.ransac_confidence < 1.0,
            "ransac_max_iters": 1 <= self.ransac_max_iters <= 1_000_000,
            "min_inliers": self.min_inliers == 0 or MIN_INLIERS_FLOOR <= self.min_inliers <= 10000,
            "min_inlier_ratio": 0.0 <= self.min_inlier_ratio <= 1.0,
            "max_depth_m": self.max_depth_m >= 0.0,
            "depth_noise": 0.0 <= self.depth_noise <= 1.0,
            "keypoint_sigma_px": 0.01 <= self.keypoint_sigma_px <= 50.0,
            "temporal_k": 1 <= self.temporal_k <= 100,
            "temporal_window": 0 <= self.temporal_window <= 100000,
            "top_n": 0 <= self.top_n <= 1000,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"verification {name} = {getattr(self, name)!r} is out of range")

    @classmethod
    def from_config(cls, cfg=None, prefix: str = "verification_", **overrides) -> VerificationParams:
        """From any object with attributes named prefix + field (e.g. MaqboolConfig's
        verification_min_inliers); missing attributes keep their defaults."""
        values = {}
        for f in fields(cls):
            if cfg is not None and hasattr(cfg, prefix + f.name):
                values[f.name] = getattr(cfg, prefix + f.name)
        values.update(overrides)
        return cls(**values)
