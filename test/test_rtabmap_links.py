"""The RTAB-Map bridge's plain-numpy logic (core/integration), on seeded synthetic data: the information
matrix, the camera -> base conversion, the link decision and its filters, depth decoding, the bridge
options; and the clear error when rtabmap_msgs is missing."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.rvl import rvl_encode
from maqbool_ros.core.integration.bridge_config import BRIDGE_FIELDS, BridgeConfig, help_text
from maqbool_ros.core.integration.links import (
    IGNORED_VARIANCE,
    LINK_USER_CLOSURE,
    POSE_METRIC,
    POSE_NONE,
    POSE_ROTATION_UNIT_TRANSLATION,
    Candidate,
    LinkPolicy,
    decide,
    decide_query,
    information_from_covariance,
    is_positive_definite,
)
from maqbool_ros.core.integration.rtabmap_data import (
    DepthFormatError,
    decode_depth,
    encode_depth,
    graph_positions,
    image_format,
)
from maqbool_ros.core.verification.geometry import invert_T, make_T, rebase, transform_from_xyz_quat
from maqbool_ros.core.verification.temporal import strongest_first

RNG = np.random.default_rng(14)
L = transform_from_xyz_quat([0.1, 0.0, 0.5], [-0.5, 0.5, -0.5, 0.5])  # optical frame in the base frame


def rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.array([rx, ry, rz], dtype=np.float64))[0]


def random_pose() -> np.ndarray:
    return make_T(rotation(*RNG.normal(0, 0.5, 3)), RNG.normal(0, 2.0, 3))


def random_covariance(scale: float = 1e-3) -> np.ndarray:
    A = RNG.normal(0, 1, (6, 6))
    return scale * (A @ A.T + 0.1 * np.eye(6))


def cand(q=50, c=10, verified=True, pose_type=POSE_METRIC, T=None, cov=None, **kw) -> Candidate:
    return Candidate(q, c, verified, pose_type != POSE_NONE, pose_type, random_pose() if T is None else T,
                     random_covariance() if cov is None else cov, **kw)


def test_information_is_the_inverse_covariance_and_always_positive_definite():
    cov = random_covariance()
    info = information_from_covariance(cov)
    assert np.allclose(info @ cov, np.eye(6), atol=1e-8) and is_positive_definite(info)
    # asymmetric, singular, slightly indefinite, zero variance: still finite, symmetric, positive definite
    bad = [cov + np.triu(np.full((6, 6), 1e-4), 1), np.diag([1e-2, 1e-2, 1e-2, 0.0, 0.0, 0.0]),
           np.diag([1e-2, -1e-9, 1e-2, 1e-3, 1e-3, 1e-3]), np.outer(np.ones(6), np.ones(6))]
    for c in bad:
        info = information_from_covariance(c, min_variance=1e-6)
        assert np.all(np.isfinite(info)) and is_positive_definite(info)
        assert np.linalg.eigvalsh(info).max() <= 1e6 * (1 + 1e-9)  # bounded by 1 / min_variance
    assert np.array_equal(information_from_covariance(np.zeros(36)), np.eye(6))  # unknown: RTAB-Map's default
    with pytest.raises(ValueError, match="covariance"):
        information_from_covariance(np.full((6, 6), np.nan))
    with pytest.raises(ValueError, match="covariance"):
        information_from_covariance(np.eye(5))


def test_rebase_turns_a_camera_pose_into_the_base_pose():
    Pq, Pc = random_pose(), random_pose()  # base poses in the world
    T_cam = invert_T(Pq @ L) @ (Pc @ L)  # what maqbool reports: candidate camera in query camera
    T_base, _ = rebase(L, T_cam, invert_T(L), np.eye(6))
    assert np.allclose(T_base, invert_T(Pq) @ Pc, atol=1e-9)  # RTAB-Map's link: candidate base in query base


def test_rebase_covariance_is_the_first_order_propagation():
    T, A, B = random_pose(), random_pose(), random_pose()
    cov = random_covariance()
    Tp, cov_p = rebase(A, T, B, cov)
    # numerical Jacobian of the perturbation convention: t + dt, exp([dr]x) R (frame of the first factor)
    cols = []
    for k in range(6):
        d = np.zeros(6)
        d[k] = 1e-6
        Tk = T.copy()
        Tk[:3, 3] += d[:3]
        Tk[:3, :3] = rotation(*d[3:]) @ T[:3, :3]
        Tk = A @ Tk @ B
        dr = Tk[:3, :3] @ Tp[:3, :3].T
        cols.append(np.concatenate([Tk[:3, 3] - Tp[:3, 3], [dr[2, 1], dr[0, 2], dr[1, 0]]]) / 1e-6)
    J = np.array(cols).T
    assert np.allclose(J @ cov @ J.T, cov_p, rtol=1e-4, atol=1e-9)


def test_decide_sends_a_user_closure_from_query_to_candidate_in_base_frames():
    wm, lt = {10, 50}, {10: L, 50: L}
    c = cand()
    link, reason = decide(c, LinkPolicy(), wm, lt)
    assert reason == "" and link.from_id == 50 and link.to_id == 10 and link.type == LINK_USER_CLOSURE
    T_expected, cov_expected = rebase(L, c.T, invert_T(L), c.covariance)
    assert np.allclose(link.T, T_expected) and is_positive_definite(link.information)
    assert np.allclose(link.information @ cov_expected, np.eye(6), atol=1e-6)
    link2, _ = decide(c, LinkPolicy(candidate_pose_frame="base"), wm, {})
    assert np.allclose(link2.T, c.T)  # the node already converted: sent as is


@pytest.mark.parametrize("c, wm, policy, reason", [
    (cand(q=10, c=10), {10}, LinkPolicy(), "self_link"),
    (cand(candidate_robot="robot2"), {10, 50}, LinkPolicy(robot_id="robot1"), "other_robot"),
    (cand(candidate_session=0), {10, 50}, LinkPolicy(session=1), "other_session"),  # before a reset
    (cand(query_session=1, candidate_session=1), {10, 50}, LinkPolicy(), "other_session"),  # reset not seen yet
    (cand(verified=False), {10, 50}, LinkPolicy(), "not_verified"),
    (cand(pose_type=POSE_NONE), {10, 50}, LinkPolicy(), "no_pose"),
    (cand(pose_type=POSE_ROTATION_UNIT_TRANSLATION), {10, 50}, LinkPolicy(), "scale_less"),
    (cand(cov=np.full((6, 6), np.inf)), {10, 50}, LinkPolicy(), "bad_covariance"),
    (cand(), None, LinkPolicy(), "wm_unknown"),
    (cand(), {50}, LinkPolicy(), "outside_wm"),
    (cand(), {10}, LinkPolicy(), "outside_wm"),
    (cand(q=50, c=11), {11, 50}, LinkPolicy(), "unknown_node"),
    (cand(), {10, 50}, LinkPolicy(sent={(50, 10)}), "duplicate"),
])
def test_decide_rejects_with_the_reason(c, wm, policy, reason):
    assert decide(c, policy, wm, {10: L, 50: L}) == (None, reason)


def test_scale_less_pose_becomes_a_rotation_only_link_when_allowed():
    c = cand(pose_type=POSE_ROTATION_UNIT_TRANSLATION)
    link, reason = decide(c, LinkPolicy(link_pose_types="metric+rotation", candidate_pose_frame="base"), {10, 50}, {})
    assert reason == "" and link.rotation_only
    assert np.allclose(link.T[:3, 3], 0) and np.allclose(link.T[:3, :3], c.T[:3, :3])
    assert is_positive_definite(link.information)
    assert np.allclose(np.diag(link.information)[:3], 1 / IGNORED_VARIANCE)  # translation: ignored
    assert np.allclose(link.information[3:, 3:], np.linalg.inv(c.covariance[3:, 3:]), rtol=1e-6)
    link, _ = decide(c, LinkPolicy(link_pose_types="metric+rotation"), {10, 50}, {10: L, 50: L})
    assert is_positive_definite(link.information) and np.allclose(link.T[:3, :3], L[:3, :3] @ c.T[:3, :3] @ L[:3, :3].T)


def test_decide_query_keeps_the_best_verified_candidate_and_counts_the_rest():
    policy = LinkPolicy(max_links_per_query=1)
    cands = [cand(c=5, verified=False), cand(c=10), cand(c=11), cand(c=12)]
    wm, lt = {5, 10, 11, 12, 50}, {i: L for i in (5, 10, 11, 12, 50)}
    links, reasons = decide_query(cands, policy, wm, lt)
    assert [(k.from_id, k.to_id) for k in links] == [(50, 10)]
    assert sorted(reasons) == ["not_verified", "per_query_limit", "per_query_limit"]
    assert (50, 10) in policy.sent
    links, reasons = decide_query(cands[1:2], policy, wm, lt)
    assert links == [] and reasons == ["duplicate"]


def test_decide_query_links_the_verified_candidate_with_the_most_inliers():
    """The ranking decides what is checked; among verified candidates the strongest geometric
    support becomes the link (ties: rank order), an unverified one never does."""
    wm, lt = {5, 10, 11, 12, 50}, {i: L for i in (5, 10, 11, 12, 50)}
    cands = [cand(c=5, verified=False, num_inliers=500), cand(c=10, num_inliers=40), cand(c=11, num_inliers=90),
             cand(c=12, num_inliers=90)]
    links, _ = decide_query(cands, LinkPolicy(max_links_per_query=1), wm, lt)
    assert [(k.from_id, k.to_id) for k in links] == [(50, 11)]
    links, _ = decide_query(cands, LinkPolicy(max_links_per_query=3), wm, lt)
    assert [k.to_id for k in links] == [11, 12, 10]
    assert strongest_first([True, False, True], [10, 99, 20]) == [2, 0, 1]


def test_policy_and_options_refuse_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="link_pose_types"):
        LinkPolicy(link_pose_types="all")
    with pytest.raises(ValueError, match="candidate_pose_frame"):
        LinkPolicy(candidate_pose_frame="odom")
    with pytest.raises(ValueError, match="max_links_per_query"):
        BridgeConfig.from_dict({"max_links_per_query": 0})
    with pytest.raises(ValueError, match="service_timeout_s: expected float"):
        BridgeConfig.from_dict({"service_timeout_s": "fast"})
    with pytest.raises(ValueError, match="unknown bridge parameter"):
        BridgeConfig.from_dict({"map_topic": "x"})
    assert BridgeConfig.from_dict({"service_timeout_s": 3}).service_timeout_s == 3.0
    text = help_text()
    assert all(name in text for name in BRIDGE_FIELDS) and "metric+rotation" in text


def test_depth_as_rtabmap_compresses_it_round_trips():
    mm = RNG.integers(0, 5000, (48, 64)).astype(np.uint16)
    assert np.array_equal(decode_depth(encode_depth(mm)), mm)
    m = RNG.uniform(0.2, 8.0, (48, 64)).astype(np.float32)
    assert np.array_equal(decode_depth(encode_depth(m)), m)
    # RVL (RTAB-Map's default for 16-bit depth): holes, long runs, big jumps both ways, image edges
    mm[RNG.random(mm.shape) < 0.3] = 0
    mm[5:9, :] = 0
    mm[20, 3:40] = 65535
    mm[0, 0], mm[-1, -1] = 0, 1
    for depth in (mm, np.zeros((4, 5), np.uint16), np.full((3, 7), 1234, np.uint16)):
        assert np.array_equal(decode_depth(rvl_encode(depth)), depth)
    good = rvl_encode(mm)
    with pytest.raises(DepthFormatError, match="RVL"):
        decode_depth(good[: len(good) // 2])
    with pytest.raises(DepthFormatError, match="RVL"):
        decode_depth(b"DEPTHRVL" + bytes(4))
    with pytest.raises(DepthFormatError, match="right_compressed"):
        decode_depth(b"not an image")
    import cv2

    assert image_format(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()) == "jpeg"
    assert image_format(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()) == "png"
    with pytest.raises(ValueError, match="left_compressed"):
        image_format(b"GIF89a")


def test_graph_positions_from_a_map_graph():
    def pose(x, y, z):
        return SimpleNamespace(position=SimpleNamespace(x=x, y=y, z=z))
    graph = SimpleNamespace(poses_id=[1, 2, -3], poses=[pose(0, 0, 0), pose(1, 2, 3), pose(9, 9, 9)])
    out = graph_positions(SimpleNamespace(graph=graph))  # a MapData: its graph
    assert sorted(out) == [1, 2] and np.allclose(out[2], [1, 2, 3])
    with pytest.raises(ValueError, match="poses_id"):
        graph_positions(SimpleNamespace(poses_id=[1], poses=[]))


def test_missing_rtabmap_msgs_is_a_clear_error():
    code = ("import sys; sys.modules['rtabmap_msgs'] = None; sys.modules['rtabmap_msgs.msg'] = None\n"
            "from maqbool_ros.ros.rtabmap_bridge import main\nsys.exit(main([]))")
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "rtabmap_msgs" in out.stderr and "not importable" in out.stderr and "Traceback" not in out.stderr
    help_out = subprocess.run([sys.executable, "-m", "maqbool_ros.ros.rtabmap_bridge", "--help"],
                              capture_output=True, text=True, timeout=120)
    assert help_out.returncode == 0 and "link_pose_types" in help_out.stdout


def test_the_test_only_rtabmap_msgs_is_hidden_from_colcon():
    """colcon finds every package.xml under a workspace's src/: without the marker it would build the
    test subset of rtabmap_msgs and shadow a real RTAB-Map's rtabmap_msgs."""
    from pathlib import Path

    interfaces = Path(__file__).resolve().parent / "interfaces"
    assert (interfaces / "rtabmap_msgs" / "package.xml").is_file()
    assert (interfaces / "COLCON_IGNORE").is_file()
