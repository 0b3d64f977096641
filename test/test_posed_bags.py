"""Bags with CameraInfo, depth and poses read as posed datasets (core/data/posed_bags.py, issue
#25): the four pose flavours on bags rendered from the synthetic room loop (true poses known),
interpolation against a brute-force slerp, `maqbool poses` / `maqbool eval --verify` on such a
bag, and every kind of bad input as one error naming the topic or field."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.posed_bag import (
    COLOUR,
    DEPTH,
    DEPTH_DELAY_S,
    INFO,
    T0,
    camera_info_msg,
    depth_msg,
    header,
    pose_msg,
    tf_msg,
    write_posed_bag,
)
from maqbool_ros.core.data import bags
from maqbool_ros.core.data.posed_bags import PosedBagOptions, load_posed_bag
from maqbool_ros.core.data.rgbd_sequence import synthetic_rgbd_sequence
from maqbool_ros.core.evaluation.relative_poses import score_pairs
from maqbool_ros.core.verification.camera import Camera
from maqbool_ros.core.verification.geometry import make_T
from maqbool_ros.tools.cli import main as cli_main

POSE_STAMPED = "geometry_msgs/msg/PoseStamped"


@pytest.mark.parametrize("flavour,storage,compressed,depth", [
    ("tf", "mcap", False, "16UC1"), ("odometry", "sqlite3", True, "32FC1"),
    ("pose", "sqlite3", False, None), ("pose_cov", "mcap", False, "16UC1")])
def test_each_pose_flavour_gives_the_true_poses(tmp_path, flavour, storage, compressed, depth):
    truth = write_posed_bag(tmp_path / "bag", flavour, storage=storage, compressed=compressed, depth=depth,
                            drop_depth=2 if depth else None, unposed_tail=not compressed)
    ds = load_posed_bag(truth.path)
    seq = synthetic_rgbd_sequence()
    assert len(ds.frames) == 4 and ds.missing_pose == (0 if compressed else 1)  # the tail image has no pose
    np.testing.assert_allclose(ds.stamps, truth.stamps)
    # slerp + linear between samples 70 ms before and 50 ms after; the body offset bends the path ~3e-5 m
    np.testing.assert_allclose(ds.poses, truth.poses, atol=1e-4 if flavour in ("tf", "odometry") else 1e-9)
    np.testing.assert_allclose(ds.camera.K, seq.camera.K)
    np.testing.assert_array_equal(ds.frames[1], seq.frames[1])  # rgb8 and png are lossless
    if depth is None:
        assert ds.depths is None
        return
    assert ds.missing_depth == 1 and not ds.depths[2].any()  # frame 2 was written without depth
    np.testing.assert_allclose(ds.depths[3], seq.depths[3], atol=5e-4 if depth == "16UC1" else 0)
    # world frames: the root of the TF tree (map), else the pose topic's header.frame_id
    assert ds.pose_source.split("(")[1].startswith({"tf": "map", "odometry": "odom"}.get(flavour, "world"))


def _slerp_brute_force(t, ts, Ts, max_gap):
    """The pose at t from the samples (ts, Ts) by scanning them all: quaternion slerp, written out."""
    from scipy.spatial.transform import Rotation

    before = [i for i in range(len(ts)) if ts[i] <= t]
    after = [i for i in range(len(ts)) if ts[i] >= t]
    if not before or not after:
        return None
    a, b = max(before, key=lambda i: ts[i]), min(after, key=lambda i: ts[i])
    if ts[a] == ts[b]:
        return Ts[a]
    if ts[b] - ts[a] > max_gap:
        return None
    s = (t - ts[a]) / (ts[b] - ts[a])
    qa, qb = Rotation.from_matrix(Ts[a][:3, :3]).as_quat(), Rotation.from_matrix(Ts[b][:3, :3]).as_quat()
    if qa @ qb < 0:
        qb = -qb
    omega = np.arccos(np.clip(qa @ qb, -1, 1))
    q = qa if omega < 1e-12 else (np.sin((1 - s) * omega) * qa + np.sin(s * omega) * qb) / np.sin(omega)
    return make_T(Rotation.from_quat(q).as_matrix(), (1 - s) * Ts[a][:3, 3] + s * Ts[b][:3, 3])


def _tiny_bag(path, image_stamps, pose_samples, *, info_size=(32, 24), pose_topic="/gt", extra=()):
    """32x24 images, a CameraInfo and PoseStamped samples (t, world_T_camera or a Pose) on pose_topic;
    extra: (topic, msgtype, t, msg) written as well."""
    rng = np.random.default_rng(0)
    with bags.BagWriter(path) as w:
        if info_size:
            cam = Camera.from_params(30.0, 30.0, 15.5, 11.5, *info_size)
            w.write(INFO, "sensor_msgs/msg/CameraInfo", 1, camera_info_msg(0.0, cam, "cam"))
        for t, T in pose_samples:
            w.write(pose_topic, POSE_STAMPED, int(t * 1e9) + 2, bags.typestore().types[POSE_STAMPED](
                header=header(t, "world"), pose=pose_msg(T) if isinstance(T, np.ndarray) else T))
        for t in image_stamps:
            w.write(COLOUR, bags.IMAGE_TYPE, int(t * 1e9) + 3,
                    bags.rgb_to_image_msg(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), t, "cam"))
        for topic, msgtype, t, msg in extra:
            w.write(topic, msgtype, int(t * 1e9) + 4, msg)
    return path


def _random_pose(rng):
    from scipy.spatial.transform import Rotation

    return make_T(Rotation.from_rotvec(rng.uniform(-1.5, 1.5, 3)).as_matrix(), rng.uniform(-5, 5, 3))


def test_interpolation_matches_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    ts = np.round(np.sort(rng.uniform(10.0, 12.0, 40)), 6)  # whole microseconds: the bag stores nanoseconds
    ts = np.r_[ts, 12.5, 12.55]  # a 0.5 s dropout before 12.5: images inside it get no pose
    samples = [(t, _random_pose(rng)) for t in ts]
    images = np.r_[np.round(rng.uniform(9.9, 12.6, 30), 6), ts[5], 12.3]  # one on a sample, one in the dropout
    path = _tiny_bag(tmp_path / "bag", images, samples)
    for max_gap, dropped in ((0.2, 2), (1.0, 1)):  # --pose-max-gap 1: the dropout is interpolated too
        ds = load_posed_bag(path, PosedBagOptions(max_gap_s=max_gap))
        expected = [(t, _slerp_brute_force(t, ts, [T for _, T in samples], max_gap)) for t in images]
        kept = sorted((t, T) for t, T in expected if T is not None)
        assert ds.missing_pose == len(images) - len(kept) >= dropped and len(kept) > 20
        np.testing.assert_allclose(ds.stamps, [t for t, _ in kept])
        np.testing.assert_allclose(ds.poses, np.stack([T for _, T in kept]), atol=1e-9)
    assert 12.3 in ds.stamps  # inside the dropout, kept with the wider gap


def test_maqbool_poses_on_a_bag_matches_the_synthetic_sequence(tmp_path):
    """`maqbool poses --dataset BAG --pairs consecutive:1` verifies every pair with small errors,
    pair for pair the figures the same frames give with their exact synthetic poses."""
    write_posed_bag(tmp_path / "bag", "tf", n=5)
    out = tmp_path / "poses.json"
    assert cli_main(["poses", "--dataset", str(tmp_path / "bag"), "--pairs", "consecutive:1", "--json", str(out),
                     "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["metric"] and report["num_verified"] == report["num_pairs"] == 4
    assert report["rotation_error_deg_median"] < 0.5 and report["translation_error_m_median"] < 0.02
    exact = score_pairs(synthetic_rgbd_sequence(), [(i + 1, i) for i in range(4)])
    for mine, ref in zip(report["pairs"], exact["pairs"]):
        assert mine["rotation_deg_error"] == pytest.approx(ref["rotation_deg_error"], abs=0.01)
        assert mine["translation_m_error"] == pytest.approx(ref["translation_m_error"], abs=1e-3)


def test_eval_verify_judges_loops_by_the_bags_poses(tmp_path):
    from helpers.tiny_models import small_config, tiny_model

    write_posed_bag(tmp_path / "bag", "odometry", n=5)
    out = tmp_path / "eval.json"
    assert cli_main(["eval", "--dataset", str(tmp_path / "bag"), "--verify", "--model",
                     str(tiny_model(tmp_path / "m.onnx", 64)), "--config",
                     str(small_config(tmp_path / "c.yaml", exclude_recent_keyframes=1, exclude_recent_seconds=1.5)),
                     "--method", "netvlad", "--min-gap", "2", "--radius", "3", "--json", str(out), "--quiet"]) == 0
    v = json.loads(out.read_text())["verified"]
    assert v["num_queries_with_revisit"] == 3  # frames 2, 3, 4 revisit places >= 2 s earlier within 3 m
    assert v["num_pose_errors"] >= 1 and v["rotation_error_deg_median"] < 1.0  # judged against the bag's poses
    assert v["translation_error_m_median"] < 0.05


def _err(path, match, **options):
    with pytest.raises(ValueError, match=match):
        load_posed_bag(path, PosedBagOptions(**options), require=True)


def test_bad_bags_give_one_error_naming_topic_or_field(tmp_path):
    good = [(T0 + 0.1 * k, make_T(np.eye(3), [0.1 * k, 0, 0])) for k in range(11)]
    images = [T0 + 0.25, T0 + 0.55]
    no_info = _tiny_bag(tmp_path / "no_info", images, good, info_size=None)
    assert load_posed_bag(no_info) is None  # eval falls back to images + positions
    _err(no_info, r"no sensor_msgs/msg/CameraInfo topic .*--intrinsics")
    (tmp_path / "cam.yaml").write_text("fx: 30\nfy: 30\ncx: 15.5\ncy: 11.5\nwidth: 32\nheight: 24\n")
    assert len(load_posed_bag(no_info, PosedBagOptions(intrinsics=str(tmp_path / "cam.yaml"))).frames) == 2
    ok = _tiny_bag(tmp_path / "ok", images, good)
    _err(ok, r"pose topic '/odom' is not in the bag", pose_topic="/odom")
    _err(ok, r"pose topic /camera/color/image_raw is sensor_msgs/msg/Image", pose_topic=COLOUR)
    _err(_tiny_bag(tmp_path / "no_pose", images, []), r"no pose source")
    _err(_tiny_bag(tmp_path / "late", [T0 + 50.0], good),
         r"no image stamp on /camera/color/image_raw \(1 images, 150\.000 .. 150\.000 s\) has a pose from /gt")
    types = bags.typestore().types
    nan_pose = types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=0.0, y=np.nan, z=0.0),
                                                orientation=types["geometry_msgs/msg/Quaternion"](x=0, y=0, z=0, w=1))
    nan = [*good[:3], (good[3][0], nan_pose), *good[4:]]
    _err(_tiny_bag(tmp_path / "nan", images, nan), r"/gt message 4: pose is not finite")
    _err(_tiny_bag(tmp_path / "size", images, good, info_size=(64, 48)),
         r"camera_info: image topic /camera/color/image_raw is 32x24 but the camera .* is 64x48")
    rgb_depth = bags.rgb_to_image_msg(np.zeros((24, 32, 3), np.uint8), T0 + 0.25, "cam")
    bad_depth = _tiny_bag(tmp_path / "depth", images, good, extra=[(DEPTH, bags.IMAGE_TYPE, T0 + 0.25, rgb_depth)])
    _err(bad_depth, r"depth topic /camera/depth/image_rect_raw: depth encoding 'rgb8' is not 16UC1",
         depth_topic=DEPTH, image_topic=COLOUR)
    small_depth = depth_msg(np.ones((12, 16), np.float32), T0 + 0.25 + DEPTH_DELAY_S)
    _err(_tiny_bag(tmp_path / "depth_size", images, good, extra=[(DEPTH, bags.IMAGE_TYPE, T0, small_depth)]),
         r"depth topic /camera/depth/image_rect_raw is 16x12 but the camera")
    second_info = [(INFO + "2", "sensor_msgs/msg/CameraInfo", T0,
                    camera_info_msg(T0, Camera.from_params(1, 1, 1, 1, 32, 24), "cam"))]
    _err(_tiny_bag(tmp_path / "two_info", images, good, extra=second_info), r"several CameraInfo topics")
    tf = [("/tf", "tf2_msgs/msg/TFMessage", T0, tf_msg([(T0, "map", "base", np.eye(4))]))]
    _err(_tiny_bag(tmp_path / "tf", images, [], extra=tf), r"camera frame 'cam' is not in /tf or /tf_static")
    _err(_tiny_bag(tmp_path / "tf2", images, [], extra=tf),
         r"frame 'odom' is not above 'base' in the transform tree \(its chain: base -> map",
         camera_frame="base", world_frame="odom")


def test_cli_poses_needs_a_posed_bag(tmp_path, capsys):
    """`maqbool poses` on an image bag without CameraInfo: one line saying what is missing."""
    path = _tiny_bag(tmp_path / "bag", [T0 + 0.25], [(T0, np.eye(4)), (T0 + 0.1, np.eye(4))], info_size=None)
    assert cli_main(["poses", "--dataset", str(path), "--pairs", "all"]) != 0
    err = capsys.readouterr().err
    assert "no sensor_msgs/msg/CameraInfo topic" in err and "Traceback" not in err


def test_tf_without_intrinsics_is_a_clear_error(tmp_path):
    """--pose-topic /tf on a bag without CameraInfo: not a posed bag, and /tf gives no positions alone."""
    from maqbool_ros.core.data.datasets import load_dataset

    tf = [("/tf", "tf2_msgs/msg/TFMessage", T0, tf_msg([(T0, "map", "cam", np.eye(4))]))]
    path = _tiny_bag(tmp_path / "bag", [T0], [], info_size=None, extra=tf)
    assert load_posed_bag(path, PosedBagOptions(pose_topic="/tf")) is None
    with pytest.raises(ValueError, match=r"pose topic /tf is tf2_msgs/msg/TFMessage: without CameraInfo"):
        load_dataset(path, pose_topic="/tf")
