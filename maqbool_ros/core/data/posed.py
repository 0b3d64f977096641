"""Real datasets with poses, intrinsics and (where the sensor has it) depth, in the layouts users
already have. Each loader returns an :class:`~maqbool_ros.core.data.rgbd_sequence.RGBDSequence`
(a SequenceDataset: positives from the poses by the radius / time-gap rule), so ``maqbool eval
--verify`` judges loops by pose and ``maqbool poses`` scores relative poses on them. The tools
try :func:`load_posed` before datasets.load_dataset (this module imports that one).

Poses are ``world_T_camera`` (4x4) of the image's camera in the OpenCV optical frame, as in
rgbd_sequence.py. Layouts (docs/evaluation.md has the details):

* KITTI odometry: ``image_N/`` (N = 0..3), ``calib.txt`` (``PN:`` 3x4), ``poses.txt`` (or the
  benchmark's ``../../poses/<seq>.txt``; camera 0 to world), optional ``times.txt``. Monocular.
* TUM RGB-D: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt`` (``t tx ty tz qx qy qz qw``),
  associated by timestamp (trajectory_files.associate); intrinsics from ``camera.yaml``
  (fx, fy, cx, cy, width, height, optional d, depth_scale) or, for TUM's own sequences, the
  published Freiburg 1/2/3 calibration chosen by folder name.
* EuRoC / ASL: ``mav0/cam0/{data.csv,data/,sensor.yaml}`` and
  ``mav0/state_groundtruth_estimate0/data.csv`` (body pose, quaternion w x y z), interpolated
  to the image stamps; camera pose = T_world_body @ T_BS. Monocular.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maqbool_ros.core.data.datasets import DEFAULT_MIN_GAP_S, DEFAULT_RADIUS_M, ImageList, positives_from_poses
from maqbool_ros.core.data.rgbd_sequence import RGBDSequence
from maqbool_ros.core.data.trajectory_files import (
    associate,
    floats,
    interpolate_poses,
    pose_from_matrix_row,
    pose_from_row,
    read_rows,
    read_stamped_files,
)
from maqbool_ros.core.images.io import list_images, read_image
from maqbool_ros.core.verification.camera import Camera

TUM_DEPTH_SCALE = 5000.0  # TUM RGB-D: a 16-bit depth value / 5000 = metres
#: TUM RGB-D's published intrinsics of its three Kinects (fx fy cx cy, plumb_bob d0..d4; 640x480),
#: from the dataset's "file formats / camera calibration" page. fr3 images are already undistorted.
TUM_CAMERAS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "freiburg2": (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "freiburg3": (535.4, 539.2, 320.1, 247.6, ()),
}
EUROC_GT_MAX_GAP_S = 0.05  # ground truth at 200 Hz: a larger gap is a dropout, not interpolated


def _sequence(name: str, root: Path, frames: ImageList, poses: np.ndarray, stamps: np.ndarray,
              camera: Camera, depths: ImageList | None, radius: float, min_gap_s: float) -> RGBDSequence:
    positives = positives_from_poses(poses[:, :3, 3], stamps, radius, min_gap_s)
    return RGBDSequence(name, frames, positives, stamps, source=str(root), camera=camera, poses=poses,
                        depths=depths)


def is_kitti(root: Path) -> bool:
    return (root / "calib.txt").is_file() and any((root / f"image_{n}").is_dir() for n in range(4))


def load_kitti(root: str | Path, camera_index: int | None = None, radius: float = DEFAULT_RADIUS_M,
               min_gap_s: float = DEFAULT_MIN_GAP_S) -> RGBDSequence:
    """A KITTI odometry sequence folder (module doc); camera_index: the lowest image_N present
    unless given. Poses of camera N = pose of camera 0 shifted by PN's baseline (KITTI's
    rectified rig: PN = K [I | t_N], t_N = PN[:, 3] / fx along x)."""
    root = Path(root)
    n = camera_index if camera_index is not None else min(k for k in range(4) if (root / f"image_{k}").is_dir())
    files = list_images(root / f"image_{n}")
    calib = root / "calib.txt"
    P = None
    for line_no, fields in read_rows(calib, 1):
        if fields[0] == f"P{n}:":
            if len(fields) < 13:
                raise ValueError(f"{calib}:{line_no}: P{n} needs 12 numbers, got {len(fields) - 1}")
            P = floats(calib, line_no, fields[1:13], f"P{n}").reshape(3, 4)
    if P is None:
        raise ValueError(f"{calib}: no P{n}: line for image_{n}/")
    pose_file = root / "poses.txt"
    if not pose_file.is_file():
        pose_file = root.parent.parent / "poses" / f"{root.name}.txt"  # dataset/sequences/NN -> dataset/poses/NN.txt
    rows = read_rows(pose_file, 12)
    if len(rows) != len(files):
        raise ValueError(f"{pose_file}: {len(rows)} poses for {len(files)} images in {root / f'image_{n}'}")
    offset = np.eye(4)
    offset[0, 3] = -P[0, 3] / P[0, 0]  # camera N's centre in camera 0 coordinates (x to the right)
    poses = np.stack([pose_from_matrix_row(pose_file, ln, floats(pose_file, ln, f[:12], "pose")) @ offset
                      for ln, f in rows])
    stamps = np.arange(len(files), dtype=float)
    if (root / "times.txt").is_file():
        t_rows = read_rows(root / "times.txt", 1)
        stamps = np.asarray([floats(root / "times.txt", ln, f[:1], "time")[0] for ln, f in t_rows])
        if len(stamps) != len(files):
            raise ValueError(f"{root / 'times.txt'}: {len(stamps)} times for {len(files)} images")
    size = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape
    camera = Camera.from_params(P[0, 0], P[1, 1], P[0, 2], P[1, 2], size[1], size[0])
    return _sequence(root.name, root, ImageList.from_files(files), poses, stamps, camera, None, radius, min_gap_s)


def is_tum(root: Path) -> bool:
    return (root / "rgb.txt").is_file()


def read_camera_yaml(path: str | Path) -> tuple[Camera, float]:
    """(camera, depth scale) from a camera.yaml: fx, fy, cx, cy, width, height[, d, depth_scale]."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: camera file not found")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        cam = Camera.from_params(float(data["fx"]), float(data["fy"]), float(data["cx"]), float(data["cy"]),
                                 int(data["width"]), int(data["height"]), D=data.get("d", ()))
    except KeyError as exc:
        raise ValueError(f"{path}: missing field {exc.args[0]} (need fx, fy, cx, cy, width, height)") from None
    return cam, float(data.get("depth_scale", TUM_DEPTH_SCALE))


def _tum_camera(root: Path) -> tuple[Camera, float]:
    if (root / "camera.yaml").is_file():
        return read_camera_yaml(root / "camera.yaml")
    for key, (fx, fy, cx, cy, d) in TUM_CAMERAS.items():
        if key in root.resolve().name:
            return Camera.from_params(fx, fy, cx, cy, 640, 480, D=d), TUM_DEPTH_SCALE
    raise ValueError(f"{root}: no intrinsics: add camera.yaml (fx, fy, cx, cy, width, height[, d, depth_scale]) "
                     f"or keep TUM's folder name (one of {sorted(TUM_CAMERAS)})")


def load_tum(root: str | Path, radius: float = DEFAULT_RADIUS_M, min_gap_s: float = DEFAULT_MIN_GAP_S,
             max_difference: float = 0.02) -> RGBDSequence:
    """A TUM RGB-D sequence folder. Colour frames without a ground-truth pose within
    max_difference seconds are dropped (nothing to score them against); frames without a depth
    image within max_difference keep an all-zero (unknown) depth, counted in ``missing_depth``."""
    root = Path(root)
    rgb_t, rgb_names = read_stamped_files(root / "rgb.txt")
    gt_file = root / "groundtruth.txt"
    gt_rows = read_rows(gt_file, 8)
    gt_t = np.asarray([floats(gt_file, ln, f[:1], "timestamp")[0] for ln, f in gt_rows])
    gt = np.stack([pose_from_row(gt_file, ln, v[1:4], v[4:8])
                   for ln, v in ((ln, floats(gt_file, ln, f[:8], "pose")) for ln, f in gt_rows)])
    pose_of = associate(rgb_t, gt_t, max_difference)
    keep = np.flatnonzero(pose_of >= 0)
    if not len(keep):
        raise ValueError(f"{gt_file}: no pose within {max_difference} s of any frame in {root / 'rgb.txt'}")
    depth_names: list[str | None] = [None] * len(keep)
    if (root / "depth.txt").is_file():
        d_t, d_names = read_stamped_files(root / "depth.txt")
        depth_of = associate(rgb_t[keep], d_t, max_difference)
        depth_names = [d_names[j] if j >= 0 else None for j in depth_of]
    camera, scale = _tum_camera(root)
    files = [root / rgb_names[i] for i in keep]
    names = [Path(rgb_names[i]).name for i in keep]

    def depth(i: int) -> np.ndarray:
        if depth_names[i] is None:
            return np.zeros((camera.height, camera.width), np.float32)
        raw = cv2.imread(str(root / depth_names[i]), cv2.IMREAD_ANYDEPTH)
        if raw is None or raw.ndim != 2:
            raise ValueError(f"{root / depth_names[i]}: not a single-channel depth image")
        return raw.astype(np.float32) / np.float32(scale)

    ds = _sequence(root.name, root, ImageList(names, lambda i: read_image(files[i])), gt[pose_of[keep]],
                   rgb_t[keep], camera, ImageList(names, depth), radius, min_gap_s)
    ds.missing_depth = sum(d is None for d in depth_names)
    return ds


def is_euroc(root: Path) -> bool:
    return (root / "mav0" / "cam0").is_dir() or ((root / "cam0").is_dir() and (root / "cam0" / "sensor.yaml").is_file())


def _euroc_camera(path: Path) -> tuple[Camera, np.ndarray]:
    import yaml

    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("%YAML"))
    data = yaml.safe_load(text) or {}
    try:
        fu, fv, cu, cv = (float(v) for v in data["intrinsics"])
        w, h = (int(v) for v in data["resolution"])
        T_BS = np.asarray(data["T_BS"]["data"], dtype=np.float64).reshape(4, 4)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: need intrinsics [fu, fv, cu, cv], resolution [w, h] and T_BS.data (16 numbers): "
                         f"{exc}") from None
    model = {"radial-tangential": "plumb_bob", "equidistant": "equidistant"}.get(data.get("distortion_model", ""), "")
    if data.get("distortion_model") and not model:
        raise ValueError(f"{path}: distortion_model {data['distortion_model']!r} is not radial-tangential "
                         "or equidistant")
    D = data.get("distortion_coefficients", []) if model else []
    return Camera.from_params(fu, fv, cu, cv, w, h, D=D, distortion_model=model or "plumb_bob"), T_BS


def load_euroc(root: str | Path, radius: float = DEFAULT_RADIUS_M, min_gap_s: float = DEFAULT_MIN_GAP_S,
               camera_name: str = "cam0") -> RGBDSequence:
    """An EuRoC / ASL sequence (the folder holding mav0/, or mav0/ itself). Images without ground
    truth around their stamp are dropped. Stamps are in seconds (the files' nanoseconds / 1e9)."""
    root = Path(root)
    mav = root / "mav0" if (root / "mav0").is_dir() else root
    cam_dir = mav / camera_name
    camera, T_BS = _euroc_camera(cam_dir / "sensor.yaml")
    rows = read_rows(cam_dir / "data.csv", 2, comma=True)
    stamps = np.asarray([floats(cam_dir / "data.csv", ln, f[:1], "timestamp")[0] for ln, f in rows]) * 1e-9
    files = [cam_dir / "data" / f[1] for _, f in rows]
    for (ln, _), f in zip(rows, files):
        if not f.is_file():
            raise FileNotFoundError(f"{cam_dir / 'data.csv'}:{ln}: listed image {f} does not exist")
    gt_file = mav / "state_groundtruth_estimate0" / "data.csv"
    gt_rows = read_rows(gt_file, 8, comma=True)
    gt_vals = [(ln, floats(gt_file, ln, f[:8], "timestamp, position, quaternion")) for ln, f in gt_rows]
    gt_t = np.asarray([v[0] for _, v in gt_vals]) * 1e-9
    # EuRoC writes q_RS as w x y z; transform_from_xyz_quat takes x y z w
    gt = np.stack([pose_from_row(gt_file, ln, v[1:4], np.r_[v[5:8], v[4]]) for ln, v in gt_vals])
    poses = interpolate_poses(stamps, gt_t, gt, EUROC_GT_MAX_GAP_S) @ T_BS
    keep = np.flatnonzero(np.all(np.isfinite(poses), axis=(1, 2)))
    if not len(keep):
        raise ValueError(f"{gt_file}: no ground truth covers the image stamps of {cam_dir / 'data.csv'}")
    kept = [files[i] for i in keep]
    return _sequence(root.name, root, ImageList.from_files(kept), poses[keep], stamps[keep], camera, None,
                     radius, min_gap_s)


def load_posed(root: str | Path, radius: float = DEFAULT_RADIUS_M,
               min_gap_s: float = DEFAULT_MIN_GAP_S) -> RGBDSequence | None:
    """The posed dataset at ``root`` by its layout (KITTI, TUM RGB-D, EuRoC), or None."""
    root = Path(root)
    for test, loader in ((is_tum, load_tum), (is_kitti, load_kitti), (is_euroc, load_euroc)):
        if root.is_dir() and test(root):
            return loader(root, radius=radius, min_gap_s=min_gap_s)
    return None
