"""Posed dataset readers (data/posed.py): KITTI odometry, TUM RGB-D, EuRoC / ASL, on small
generated trees in each layout, and the real ICL / KITTI snippets when ../shared/data is there."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.data.posed import load_euroc, load_kitti, load_posed, load_tum
from maqbool_ros.core.data.trajectory_files import associate, interpolate_poses
from maqbool_ros.core.verification.geometry import make_T, transform_from_xyz_quat


def _img(path, hw=(24, 32), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8))


def _rz(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _kitti(root, n=4):
    for i in range(n):
        _img(root / "image_0" / f"{i:06d}.png", seed=i)
    p0 = "718.0 0 607.0 0 0 718.0 185.0 0 0 0 1 0"
    (root / "calib.txt").write_text(f"P0: {p0}\nP1: 718.0 0 607.0 -386.1 0 718.0 185.0 0 0 0 1 0\n")
    rows = [np.hstack([_rz(2 * i), [[0.1 * i], [0], [1.2 * i]]]).ravel() for i in range(n)]
    (root / "poses.txt").write_text("\n".join(" ".join(f"{v:.9e}" for v in r) for r in rows) + "\n")
    return rows


def test_kitti_layout(tmp_path):
    root = tmp_path / "07"
    rows = _kitti(root)
    ds = load_posed(root)
    assert ds.name == "07" and len(ds.frames) == 4 and ds.depths is None
    assert ds.camera.K[0, 0] == 718.0 and (ds.camera.width, ds.camera.height) == (32, 24)
    np.testing.assert_allclose(ds.poses[2][:3, :], rows[2].reshape(3, 4), atol=1e-9)
    np.testing.assert_allclose(ds.relative_pose(1, 0)[:3, 3], _rz(2).T @ [-0.1, 0, -1.2], atol=1e-9)
    # camera 1 sits 386.1 / 718 m to the right of camera 0: its poses are shifted along camera x
    (root / "image_1").mkdir()
    for i in range(4):
        _img(root / "image_1" / f"{i:06d}.png", seed=i)
    right = load_kitti(root, camera_index=1)
    np.testing.assert_allclose(np.linalg.inv(ds.poses[0]) @ right.poses[0][:, 3], [386.1 / 718, 0, 0, 1], atol=1e-9)


def test_kitti_bad_rows_name_file_and_line(tmp_path):
    root = tmp_path / "00"
    _kitti(root)
    lines = (root / "poses.txt").read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split()[5], "x1.0", 1)
    (root / "poses.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"poses\.txt:3: pose: not numbers"):
        load_kitti(root)
    (root / "poses.txt").write_text("\n".join(lines[:1] + ["1 2 3"]) + "\n")
    with pytest.raises(ValueError, match=r"poses\.txt:2: expected at least 12 columns"):
        load_kitti(root)
    bad_rot = "2 0 0 0 0 1 0 0 0 0 1 0"
    (root / "poses.txt").write_text("\n".join([bad_rot] * 4) + "\n")
    with pytest.raises(ValueError, match=r"poses\.txt:1: the 3x3 block is not a rotation"):
        load_kitti(root)
    (root / "calib.txt").write_text("P1: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError, match=r"calib\.txt: no P0"):
        load_kitti(root)


def _tum(root, depth_stamps=(1.001, 2.003, 3.05)):
    rgb = [1.0, 2.0, 3.0, 4.0]
    for i, t in enumerate(rgb):
        _img(root / "rgb" / f"{t:.6f}.png", seed=i)
    (root / "rgb.txt").write_text("# color images\n# timestamp filename\n"
                                  + "".join(f"{t:.6f} rgb/{t:.6f}.png\n" for t in rgb))
    (root / "depth").mkdir()
    for t in depth_stamps:
        cv2.imwrite(str(root / "depth" / f"{t:.6f}.png"), np.full((24, 32), 10000, np.uint16))
    (root / "depth.txt").write_text("".join(f"{t:.6f} depth/{t:.6f}.png\n" for t in depth_stamps))
    # ground truth at 1.005, 2.01, 3.5 (no pose near 3.0 or 4.0), and a far-off one
    gt = [(1.005, [0, 0, 0], [0, 0, 0, 1]), (2.01, [1, 0, 0], [0, 0, np.sin(0.1), np.cos(0.1)]),
          (3.5, [2, 0, 0], [0, 0, 0, 1])]
    (root / "groundtruth.txt").write_text("# timestamp tx ty tz qx qy qz qw\n" + "".join(
        f"{t} {' '.join(map(str, p))} {' '.join(map(str, q))}\n" for t, p, q in gt))
    (root / "camera.yaml").write_text("fx: 30.0\nfy: 31.0\ncx: 15.5\ncy: 11.5\nwidth: 32\nheight: 24\n"
                                      "depth_scale: 5000.0\n")
    return gt


def test_tum_layout_association_and_missing_depth(tmp_path):
    root = tmp_path / "tum"
    gt = _tum(root, depth_stamps=(1.001, 3.0))
    ds = load_posed(root)
    # frames 3.0 and 4.0 have no pose within 20 ms: dropped; 2.0 has no depth within 20 ms: zeros
    assert ds.frames.names == ["1.000000.png", "2.000000.png"] and ds.stamps.tolist() == [1.0, 2.0]
    np.testing.assert_allclose(ds.poses[1], transform_from_xyz_quat(gt[1][1], gt[1][2]))
    assert ds.missing_depth == 1
    np.testing.assert_allclose(ds.depths[0], 2.0)  # 10000 / 5000 m
    assert not ds.depths[1].any() and ds.depths[1].shape == (24, 32)
    assert ds.camera.K[1, 1] == 31.0


def test_tum_errors_name_file_and_line(tmp_path):
    root = tmp_path / "tum"
    _tum(root)
    text = (root / "groundtruth.txt").read_text().splitlines()
    text[2] = "2.01 1 0 0 0 0 0 0"  # a zero quaternion
    (root / "groundtruth.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"groundtruth\.txt:3: quaternion is zero"):
        load_tum(root)
    text[2] = "2.01 1 0 0 0 0 nan 1"
    (root / "groundtruth.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"groundtruth\.txt:3: pose: not finite"):
        load_tum(root)
    (root / "rgb.txt").write_text("1.0 rgb/1.000000.png\n2.0 rgb/missing.png\n")
    with pytest.raises(FileNotFoundError, match=r"rgb\.txt:2: listed image .*missing\.png does not exist"):
        load_tum(root)
    (root / "camera.yaml").unlink()
    (root / "rgb.txt").write_text("1.0 rgb/1.000000.png\n")
    (root / "groundtruth.txt").write_text("1.0 0 0 0 0 0 0 1\n")
    with pytest.raises(ValueError, match="no intrinsics: add camera.yaml"):
        load_tum(root)


def test_associate_is_greedy_one_to_one():
    # two colour stamps near one depth stamp: only the closer one gets it
    assert associate(np.array([1.0, 1.015, 2.0]), np.array([1.012, 2.5])).tolist() == [-1, 0, -1]
    assert associate(np.array([1.0, 2.0]), np.array([2.019, 0.99])).tolist() == [1, 0]
    assert associate(np.array([1.0]), np.zeros(0)).tolist() == [-1]


def _euroc(root):
    cam = root / "mav0" / "cam0"
    stamps = [1_000_000_000, 1_050_000_000, 3_000_000_000]
    for i, t in enumerate(stamps):
        _img(cam / "data" / f"{t}.png", seed=i)
    (cam / "data.csv").write_text("#timestamp [ns],filename\n" + "".join(f"{t},{t}.png\n" for t in stamps))
    T_BS = make_T(_rz(90), [0.1, 0, 0])
    (cam / "sensor.yaml").write_text(
        "%YAML:1.0\nsensor_type: camera\nT_BS:\n  cols: 4\n  rows: 4\n  data: ["
        + ", ".join(map(str, T_BS.ravel())) + "]\nresolution: [32, 24]\ncamera_model: pinhole\n"
        "intrinsics: [30.0, 30.5, 15.5, 11.5]\ndistortion_model: radial-tangential\n"
        "distortion_coefficients: [-0.28, 0.07, 0.0002, 0.00002]\n")
    gt = root / "mav0" / "state_groundtruth_estimate0"
    gt.mkdir(parents=True)
    # body at x = t (seconds) from 0.9 s to 1.2 s every 10 ms (w x y z quaternion: identity)
    rows = [f"{int(t * 1e9)},{t:.3f},0,0,1,0,0,0,0,0,0,0,0,0,0,0,0" for t in np.arange(0.9, 1.2, 0.01)]
    (gt / "data.csv").write_text("#timestamp,p_RS_R_x [m],...\n" + "\n".join(rows) + "\n")
    return T_BS


def test_euroc_layout_interpolates_and_applies_extrinsics(tmp_path):
    T_BS = _euroc(tmp_path / "MH_01")
    ds = load_posed(tmp_path / "MH_01")
    assert len(ds.frames) == 2  # 3.0 s lies outside the ground truth: dropped
    np.testing.assert_allclose(ds.stamps, [1.0, 1.05])
    np.testing.assert_allclose(ds.poses[1], make_T(np.eye(3), [1.05, 0, 0]) @ T_BS, atol=1e-9)
    assert ds.camera.distortion_model == "plumb_bob" and ds.camera.D.size == 4


def test_euroc_bad_row_and_interpolation_gap(tmp_path):
    _euroc(tmp_path / "seq")
    f = tmp_path / "seq" / "mav0" / "state_groundtruth_estimate0" / "data.csv"
    lines = f.read_text().splitlines()
    lines[3] = lines[3].replace(",1,0,0,0,", ",1,0,0,", 1).rsplit(",", 12)[0]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"data\.csv:4: expected at least 8 columns"):
        load_euroc(tmp_path / "seq")
    t = np.array([0.0, 1.0, 5.0])
    poses = np.stack([make_T(_rz(0), [0, 0, 0]), make_T(_rz(90), [2, 0, 0]), make_T(_rz(90), [2, 0, 0])])
    out = interpolate_poses(np.array([0.5, 3.0, 6.0]), t, poses, max_gap_s=2.0)
    np.testing.assert_allclose(out[0], make_T(_rz(45), [1, 0, 0]), atol=1e-9)
    assert np.isnan(out[1]).all() and np.isnan(out[2]).all()  # a 4 s gap; past the end


def test_real_icl_and_kitti_snippets(shared_data_dir):
    icl = load_posed(shared_data_dir / "rgbd_frames" / "icl")
    # SOURCE.md: poses converted from ICL's y-up camera to the OpenCV optical frame (y down)
    assert len(icl.frames) == 5 and icl.depths is not None and icl.camera.K[1, 1] == 480.0
    assert 1.6 < float(icl.depths[0][icl.depths[0] > 0].min()) and icl.depths[0].max() < 3.5
    kitti = load_posed(shared_data_dir / "kitti_snippets" / "seq1")
    assert len(kitti.frames) == 51 and kitti.depths is None
    assert np.linalg.norm(kitti.relative_pose(1, 0)[:3, 3]) == pytest.approx(1.2, abs=0.05)
