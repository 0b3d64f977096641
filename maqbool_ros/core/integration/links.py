"""RTAB-Map links from verified maqbool candidates (plain numpy; the ROS side is
maqbool_ros/ros/rtabmap_bridge.py, the documentation docs/rtabmap.md).

Conventions. maqbool's relative pose is T_query_candidate (X_query = R X_candidate + t), between
camera optical frames, with a 6x6 covariance of [dx dy dz drx dry drz] (translation additive, rotation
exp([dr]x) R, both in the query frame; core/verification/geometry.py). An RTAB-Map link
(rtabmap::Link) from `from_id` to `to_id` holds the pose of node `to` in the base frame of node
`from`, and RTAB-Map's own loop closures go from the new node to the old one: the link is
query -> candidate and its transform is T_query_candidate re-expressed between robot base frames,
L_q T L_c^-1 with L = the node's camera local_transform (T_base_camera).
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from maqbool_ros.core.verification.geometry import check_transform, invert_T, rebase
from maqbool_ros.core.verification.temporal import strongest_first

#: rtabmap::Link::Type values (rtabmap/core/Link.h): kNeighbor=0, kGlobalClosure=1,
#: kLocalSpaceClosure=2, kLocalTimeClosure=3, kUserClosure=4, ...
LINK_USER_CLOSURE = 4
#: CandidateMatch.pose_type values
POSE_NONE, POSE_ROTATION_UNIT_TRANSLATION, POSE_METRIC = 0, 1, 2
#: Variance RTAB-Map uses for a degree of freedom it ignores (e.g. Reg/Force3DoF): 9999.
IGNORED_VARIANCE = 9999.0
LINK_POSE_TYPES = ("metric", "metric+rotation")
#: Every reason decide() may give for not sending a link (the bridge counts each one).
REJECT_REASONS = ("self_link", "other_robot", "other_session", "not_verified", "no_pose", "scale_less",
                  "bad_covariance", "wm_unknown", "outside_wm", "unknown_node", "duplicate", "per_query_limit")


@dataclass(frozen=True)
class Candidate:
    """The parts of one CandidateMatch (and its query) a link decision needs."""

    query_id: int
    candidate_id: int
    verified: bool
    has_pose: bool
    pose_type: int
    T: np.ndarray  # 4x4 T_query_candidate
    covariance: np.ndarray  # 6x6
    query_robot: str = ""
    candidate_robot: str = ""
    query_session: int = 0  # RTAB-Map session of each node (core/integration/bridge_state.py)
    candidate_session: int = 0
    num_inliers: int = 0  # geometric support: among verified candidates the most is linked first


@dataclass(frozen=True)
class Link:
    """What the bridge sends to RTAB-Map's add_link (rtabmap_msgs/Link)."""

    from_id: int
    to_id: int
    T: np.ndarray  # 4x4, pose of `to` in `from`'s base frame
    information: np.ndarray  # 6x6 symmetric positive definite
    type: int = LINK_USER_CLOSURE
    rotation_only: bool = False


@dataclass
class LinkPolicy:
    """What makes a candidate a link. See docs/rtabmap.md."""

    robot_id: str = ""
    link_pose_types: str = "metric"
    max_links_per_query: int = 1
    min_variance: float = 1e-6
    candidate_pose_frame: str = "camera"  # "base": the node already set camera_to_base
    sent: set = field(default_factory=set)  # (from_id, to_id) already sent in this session
    session: int = 0  # RTAB-Map's current session: only its nodes exist in RTAB-Map

    def __post_init__(self) -> None:
        if self.link_pose_types not in LINK_POSE_TYPES:
            raise ValueError(f"link_pose_types: {self.link_pose_types!r} is not one of {list(LINK_POSE_TYPES)}")
        if self.candidate_pose_frame not in ("camera", "base"):
            raise ValueError(f"candidate_pose_frame: {self.candidate_pose_frame!r} is not one of ['camera', 'base']")
        if not self.min_variance > 0:
            raise ValueError(f"min_variance: must be > 0, got {self.min_variance!r}")


def information_from_covariance(cov, min_variance: float = 1e-6, max_variance: float = 1e12) -> np.ndarray:
    """Information = covariance^-1, symmetric positive definite.

    The covariance is symmetrised and its eigenvalues clipped to [min_variance, max_variance]
    (a rank-deficient or slightly indefinite estimate, or one with a 0 variance, still gives a
    finite, positive definite matrix). An all-zero covariance means "unknown": identity, RTAB-Map's
    own default information. ValueError for a non-finite or wrongly shaped covariance."""
    C = np.asarray(cov, dtype=np.float64)
    if C.size == 36:
        C = C.reshape(6, 6)
    if C.shape != (6, 6) or not np.all(np.isfinite(C)):
        raise ValueError(f"covariance must be a finite 6x6 matrix, got shape {C.shape}")
    if not np.any(C):
        return np.eye(6)
    C = 0.5 * (C + C.T)
    w, V = np.linalg.eigh(C)
    w = np.clip(w, min_variance, max_variance)
    info = (V / w) @ V.T
    return 0.5 * (info + info.T)


def is_positive_definite(M) -> bool:
    """Symmetric (to rounding) with every eigenvalue > 0."""
    A = np.asarray(M, dtype=np.float64)
    return A.shape == (6, 6) and bool(np.allclose(A, A.T, rtol=1e-9, atol=1e-12)) and \
        bool(np.all(np.linalg.eigvalsh(0.5 * (A + A.T)) > 0))


def rotation_only(T: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A scale-less pose as a rotation-only constraint: translation 0, translation variance
    IGNORED_VARIANCE (RTAB-Map's 'ignored' value), no rotation-translation correlation."""
    T2 = T.copy()
    T2[:3, 3] = 0.0
    C = np.zeros((6, 6))
    C[3:, 3:] = np.asarray(cov, dtype=np.float64).reshape(6, 6)[3:, 3:]
    C[:3, :3] = np.eye(3) * IGNORED_VARIANCE
    return T2, C


def decide(c: Candidate, policy: LinkPolicy, working_memory: Collection[int] | None,
           local_transforms: dict[int, np.ndarray]) -> tuple[Link | None, str]:
    """(the link to send, "") or (None, the reason in REJECT_REASONS it is not sent).

    working_memory: RTAB-Map's WM node ids (Info.wm_state), None before the first Info;
    local_transforms: node id -> T_base_camera from its SensorData (needed for camera-frame poses)."""
    if c.query_id == c.candidate_id:
        return None, "self_link"
    if policy.robot_id and (c.query_robot not in ("", policy.robot_id)
                            or c.candidate_robot not in ("", policy.robot_id)):
        return None, "other_robot"  # this RTAB-Map holds only its own robot's nodes
    if c.query_session != policy.session or c.candidate_session != policy.session:
        return None, "other_session"  # RTAB-Map was reset since: the node is no longer in it
    if not c.verified:
        return None, "not_verified"
    if not c.has_pose or c.pose_type == POSE_NONE:
        return None, "no_pose"
    scale_less = c.pose_type != POSE_METRIC
    if scale_less and policy.link_pose_types == "metric":
        return None, "scale_less"
    T = np.asarray(c.T, dtype=np.float64)
    cov = np.asarray(c.covariance, dtype=np.float64).reshape(6, 6)
    if not np.all(np.isfinite(cov)) or not np.all(np.isfinite(T)):
        return None, "bad_covariance"
    if working_memory is None:
        return None, "wm_unknown"
    if c.query_id not in working_memory or c.candidate_id not in working_memory:
        return None, "outside_wm"  # RTAB-Map's addLink refuses nodes outside WM (and says so only in its log)
    if (c.query_id, c.candidate_id) in policy.sent:
        return None, "duplicate"
    if scale_less:
        T, cov = rotation_only(T, cov)
    if policy.candidate_pose_frame == "camera":
        if c.query_id not in local_transforms or c.candidate_id not in local_transforms:
            return None, "unknown_node"
        Lq = check_transform(local_transforms[c.query_id], "query local_transform")
        Lc = check_transform(local_transforms[c.candidate_id], "candidate local_transform")
        T, cov = rebase(Lq, T, invert_T(Lc), cov)
    info = information_from_covariance(cov, policy.min_variance)
    return Link(int(c.query_id), int(c.candidate_id), T, info, rotation_only=scale_less), ""


def decide_query(candidates: list[Candidate], policy: LinkPolicy, working_memory: Collection[int] | None,
                 local_transforms: dict[int, np.ndarray]) -> tuple[list[Link], list[str]]:
    """Links for one query's candidates (rank order), at most policy.max_links_per_query, the
    verified ones with the most inliers first (temporal.strongest_first); and the reason for each
    candidate not sent. Sent pairs are remembered in policy.sent."""
    links: list[Link] = []
    reasons: list[str] = []
    order = strongest_first([c.verified for c in candidates], [c.num_inliers for c in candidates])
    for c in (candidates[i] for i in order):
        link, reason = decide(c, policy, working_memory, local_transforms)
        if link is not None and len(links) >= policy.max_links_per_query:
            link, reason = None, "per_query_limit"
        if link is None:
            reasons.append(reason)
            continue
        links.append(link)
        policy.sent.add((link.from_id, link.to_id))
    return links, reasons
