"""Geometric verification of loop-closure candidates: local features stored per keyframe
(ORB, SIFT), mutual-NN + ratio matching, USAC MAGSAC++ essential matrix or depth PnP, the
relative pose T_query_candidate with its covariance, the accept rule and temporal consistency.
Plain numpy/OpenCV: no ROS here."""
from maqbool_ros.core.verification.camera import Camera, depth_to_metres, sample_depth
from maqbool_ros.core.verification.features import LocalFeatureExtractor, LocalFeatures, bytes_per_keyframe
from maqbool_ros.core.verification.geometry import invert_T, make_T, transform_from_xyz_quat
from maqbool_ros.core.verification.matching import match_features
from maqbool_ros.core.verification.params import VerificationParams
from maqbool_ros.core.verification.temporal import TemporalConsistency, id_neighbours
from maqbool_ros.core.verification.verify import (
    POSE_METRIC,
    POSE_NONE,
    POSE_UNIT_TRANSLATION,
    Verification,
    verify,
    verify_candidates,
)

__all__ = ["POSE_METRIC", "POSE_NONE", "POSE_UNIT_TRANSLATION", "Camera", "LocalFeatureExtractor", "LocalFeatures",
           "TemporalConsistency", "Verification", "VerificationParams", "bytes_per_keyframe", "depth_to_metres",
           "id_neighbours", "invert_T", "make_T", "match_features", "sample_depth", "transform_from_xyz_quat",
           "verify", "verify_candidates"]
