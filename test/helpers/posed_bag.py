"""Small posed bags from the synthetic RGB-D room loop (core/data/rgbd_sequence.py), so every
image's true world_T_camera is known: colour (Image rgb8 or CompressedImage png), CameraInfo,
registered depth (16UC1 mm or 32FC1 m) and the poses in one of four flavours.

Pose samples are written AROUND each image stamp (at SAMPLE_OFFSETS), never at it, on a motion
whose interpolation is exact for the camera itself: near frame i the camera turns at a constant
rate about its own y axis and moves at constant velocity, so slerp + linear interpolation of
the camera's samples give back frame i's pose (through a static body offset the lever arm
bends the body's path slightly: errors ~3e-5 m).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maqbool_ros.core.data import bags
from maqbool_ros.core.data.rgbd_sequence import synthetic_rgbd_sequence
from maqbool_ros.core.types import seconds_to_sec_nanosec
from maqbool_ros.core.verification.geometry import make_T

T0 = 100.0  # first image stamp (s); frames are 1 s apart
SAMPLE_OFFSETS = (-0.07, 0.05)  # pose samples around each image stamp (within the 0.2 s default gap)
DEPTH_DELAY_S = 0.004  # depth stamped a little after colour, as real drivers do
YAW_RATE, VELOCITY = 0.3, np.array([0.2, 0.0, 0.5])  # rad/s about camera y; m/s in the camera frame
COLOUR, INFO, DEPTH = "/camera/color/image_raw", "/camera/color/camera_info", "/camera/depth/image_rect_raw"
CAMERA_FRAME = "camera_color_optical_frame"
#: base_link -> camera optical frame: 0.2 m ahead, 0.1 m up, optical axes (z forward, x right, y down)
BASE_T_CAMERA = make_T(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), [0.2, 0.0, 0.1])
MAP_T_ODOM = make_T(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), [1.0, -2.0, 0.0])


def motion(pose: np.ndarray, tau: float) -> np.ndarray:
    """world_T_camera tau seconds after a frame posed ``pose`` (see the module doc)."""
    c, s = np.cos(YAW_RATE * tau), np.sin(YAW_RATE * tau)
    return pose @ make_T(np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]), VELOCITY * tau)


@dataclass
class PosedBag:
    path: Path
    stamps: np.ndarray  # image stamps of the posed frames
    poses: np.ndarray  # their true world_T_camera
    frames: list[int]  # synthetic frame indices


def _msg(name: str, **kw):
    return bags.typestore().types[name](**kw)


def header(t: float, frame: str):
    sec, nanosec = seconds_to_sec_nanosec(t)
    return _msg("std_msgs/msg/Header", stamp=_msg("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec),
                frame_id=frame)


def _xyz(name: str, v) -> object:
    return _msg(name, x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _quat(R: np.ndarray):
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return _msg("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def pose_msg(T: np.ndarray):
    return _msg("geometry_msgs/msg/Pose", position=_xyz("geometry_msgs/msg/Point", T[:3, 3]),
                orientation=_quat(T[:3, :3]))


def tf_msg(stamped: list[tuple[float, str, str, np.ndarray]]):
    return _msg("tf2_msgs/msg/TFMessage", transforms=[
        _msg("geometry_msgs/msg/TransformStamped", header=header(t, parent), child_frame_id=child,
             transform=_msg("geometry_msgs/msg/Transform", translation=_xyz("geometry_msgs/msg/Vector3", T[:3, 3]),
                            rotation=_quat(T[:3, :3])))
        for t, parent, child, T in stamped])


def camera_info_msg(t: float, camera, frame: str = CAMERA_FRAME):
    return _msg("sensor_msgs/msg/CameraInfo", header=header(t, frame), height=camera.height, width=camera.width,
                distortion_model="plumb_bob", d=np.zeros(5), k=camera.K.ravel(), r=np.eye(3).ravel(),
                p=np.hstack([camera.K, np.zeros((3, 1))]).ravel(), binning_x=0, binning_y=0,
                roi=_msg("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0,
                         do_rectify=False))


def depth_msg(depth_m: np.ndarray, t: float, encoding: str = "16UC1", frame: str = CAMERA_FRAME):
    img = np.clip(np.rint(depth_m * 1000), 0, 65535).astype("<u2") if encoding == "16UC1" else depth_m.astype("<f4")
    h, w = img.shape
    return _msg(bags.IMAGE_TYPE, header=header(t, frame), height=h, width=w, encoding=encoding, is_bigendian=0,
                step=w * img.itemsize, data=np.frombuffer(img.tobytes(), np.uint8))


def odometry_msg(t: float, parent: str, child: str, T: np.ndarray):
    zero = _xyz("geometry_msgs/msg/Vector3", (0, 0, 0))
    return _msg("nav_msgs/msg/Odometry", header=header(t, parent), child_frame_id=child,
                pose=_msg("geometry_msgs/msg/PoseWithCovariance", pose=pose_msg(T), covariance=np.zeros(36)),
                twist=_msg("geometry_msgs/msg/TwistWithCovariance",
                           twist=_msg("geometry_msgs/msg/Twist", linear=zero, angular=zero), covariance=np.zeros(36)))


def write_posed_bag(out: Path, flavour: str, *, n: int = 4, frame_step: int = 1, storage: str = "sqlite3",
                    compressed: bool = False, depth: str | None = "16UC1", camera_info: bool = True,
                    drop_depth: int | None = None, unposed_tail: bool = False) -> PosedBag:
    """Write n synthetic frames (every frame_step-th of lap 1) as a posed bag; flavour:
    tf (/tf odom -> base_link, /tf_static map -> odom and base_link -> camera; world = map),
    odometry (/odom odom -> base_link + /tf_static base_link -> camera), pose (PoseStamped of
    the camera on /ground_truth) or pose_cov (PoseWithCovarianceStamped, likewise).
    drop_depth: a frame written without depth; unposed_tail: one more image 5 s after the last
    pose (dropped by the reader)."""
    seq = synthetic_rgbd_sequence()
    idx = [i * frame_step for i in range(n)]
    stamps = T0 + np.arange(n, dtype=float)
    truth = seq.poses[idx]
    if flavour == "tf":
        truth = np.stack([MAP_T_ODOM @ P for P in truth])  # world = map, the root of the tree
    with bags.BagWriter(out, storage) as w:
        def put(topic: str, msgtype: str, t: float, msg) -> None:
            w.write(topic, msgtype, int(round(t * 1e9)), msg)

        def image(t: float, rgb: np.ndarray) -> None:
            if compressed:
                put(COLOUR + "/compressed", bags.COMPRESSED_TYPE, t,
                    bags.rgb_to_compressed_msg(rgb, t, CAMERA_FRAME, "png"))
            else:
                put(COLOUR, bags.IMAGE_TYPE, t, bags.rgb_to_image_msg(rgb, t, CAMERA_FRAME))

        if flavour in ("tf", "odometry"):
            static = [(T0 - 1, "base_link", CAMERA_FRAME, BASE_T_CAMERA)]
            if flavour == "tf":
                static.append((T0 - 1, "map", "odom", MAP_T_ODOM))
            put("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 1, tf_msg(static))
        if camera_info:
            put(INFO, "sensor_msgs/msg/CameraInfo", T0 - 1, camera_info_msg(T0 - 1, seq.camera))
        for k, (i, t) in enumerate(zip(idx, stamps)):
            for dt in SAMPLE_OFFSETS:
                cam = motion(seq.poses[i], dt)
                if flavour == "tf":  # odom_T_base: map_T_odom @ odom_T_base @ base_T_cam = truth
                    put("/tf", "tf2_msgs/msg/TFMessage", t + dt,
                        tf_msg([(t + dt, "odom", "base_link", cam @ np.linalg.inv(BASE_T_CAMERA))]))
                elif flavour == "odometry":
                    put("/odom", "nav_msgs/msg/Odometry", t + dt,
                        odometry_msg(t + dt, "odom", "base_link", cam @ np.linalg.inv(BASE_T_CAMERA)))
                elif flavour == "pose":
                    put("/ground_truth", "geometry_msgs/msg/PoseStamped", t + dt,
                        _msg("geometry_msgs/msg/PoseStamped", header=header(t + dt, "world"), pose=pose_msg(cam)))
                else:
                    put("/ground_truth", "geometry_msgs/msg/PoseWithCovarianceStamped", t + dt,
                        _msg("geometry_msgs/msg/PoseWithCovarianceStamped", header=header(t + dt, "world"),
                             pose=_msg("geometry_msgs/msg/PoseWithCovariance", pose=pose_msg(cam),
                                       covariance=np.zeros(36))))
            image(t, seq.frames[i])
            if depth is not None and k != drop_depth:
                put(DEPTH, bags.IMAGE_TYPE, t + DEPTH_DELAY_S, depth_msg(seq.depths[i], t + DEPTH_DELAY_S, depth))
        if unposed_tail:
            t = stamps[-1] + 5.0
            image(t, seq.frames[idx[0]])
    return PosedBag(out, stamps, truth, idx)
