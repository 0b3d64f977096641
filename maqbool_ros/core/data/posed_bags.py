"""Bags with poses, intrinsics and (optionally) depth as posed datasets (issue #25): an image
topic, a CameraInfo topic (or a camera.yaml), an optional registered depth topic and the
camera's poses from a pose topic (nav_msgs/Odometry, geometry_msgs PoseStamped or
PoseWithCovarianceStamped) or from /tf, composed with /tf_static down to the camera's frame.

Each image's ``world_T_camera`` is looked up at its header stamp in a frame tree
(data/tf_tree.py): a pose topic's samples are the edge header.frame_id -> body frame (the
Odometry child_frame_id, else the camera frame), /tf and /tf_static the rest. Dynamic edges are
interpolated (linear + slerp) between their neighbouring samples when those are at most
``max_gap_s`` apart (default DEFAULT_POSE_MAX_GAP_S); images outside are dropped and counted in
``missing_pose``. The camera frame (the images' header.frame_id) must be an optical frame (x
right, y down, z forward), as camera drivers stamp their images. Depth (16UC1 mm or 32FC1 m) is
associated by stamp with TUM's rule (trajectory_files.associate); a frame without one keeps an
all-zero depth, counted in ``missing_depth``. Everything is auto-detected when the bag has one
topic of each kind; docs/evaluation.md has the options.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.data import bags
from maqbool_ros.core.data.datasets import DEFAULT_MIN_GAP_S, DEFAULT_RADIUS_M, ImageList
from maqbool_ros.core.data.posed import _sequence, read_camera_yaml
from maqbool_ros.core.data.rgbd_sequence import RGBDSequence
from maqbool_ros.core.data.tf_tree import FrameTree, pose_matrix
from maqbool_ros.core.data.trajectory_files import DEFAULT_MAX_DIFFERENCE_S, associate
from maqbool_ros.core.types import stamp_to_seconds
from maqbool_ros.core.verification.camera import Camera, depth_from_msg, depth_to_metres

CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"
TF, TF_STATIC = "/tf", "/tf_static"
AUTO_DEPTH_ENCODINGS = ("16uc1", "32fc1")  # mono16 is also read, but only as a named --depth-topic
#: Pose samples further apart than this are a dropout, not interpolated across (covers >= 5 Hz sources)
DEFAULT_POSE_MAX_GAP_S = 0.2


@dataclass(frozen=True)
class PosedBagOptions:
    """How to read a posed bag; None = auto-detect (the bag's only topic of that kind)."""

    image_topic: str | None = None
    camera_info_topic: str | None = None
    depth_topic: str | None = None
    pose_topic: str | None = None  # a pose topic, or /tf
    world_frame: str | None = None  # default: the pose topic's header.frame_id, or the root of the TF tree
    camera_frame: str | None = None  # default: the images' header.frame_id
    body_frame: str | None = None  # the frame a pose topic's poses are of (default: child_frame_id, else camera)
    intrinsics: str | None = None  # camera.yaml instead of (or overriding) CameraInfo
    max_gap_s: float = DEFAULT_POSE_MAX_GAP_S
    max_difference_s: float = DEFAULT_MAX_DIFFERENCE_S

    def explicit(self) -> bool:
        """True when an option only a posed bag has was given (then a bag must be read as one)."""
        return any(v is not None for v in (self.camera_info_topic, self.depth_topic, self.world_frame,
                                           self.camera_frame, self.body_frame, self.intrinsics))


def _first_messages(path: Path, topics: list[str]) -> dict[str, Any]:
    first: dict[str, Any] = {}
    for topic, _, _, msg in bags.read_messages(path, topics):
        first.setdefault(topic, msg)
        if len(first) == len(topics):
            break
    return first


def _info_topic(topics: dict[str, str], wanted: str | None, image_topic: str | None) -> str | None:
    """The named CameraInfo topic, the only one, or the one beside the image topic."""
    found = sorted(t for t, ty in topics.items() if ty == CAMERA_INFO_TYPE)
    if wanted is not None or len(found) <= 1:
        topic = bags.pick_topic(topics, wanted, (CAMERA_INFO_TYPE,), "camera-info")
        if topic is not None and topics[topic] != CAMERA_INFO_TYPE:
            raise ValueError(f"camera-info topic {topic} is {topics[topic]}, not {CAMERA_INFO_TYPE}")
        return topic
    beside = [t for t in found if image_topic and t.rsplit("/", 1)[0] == image_topic.rsplit("/", 1)[0]]
    if len(beside) == 1:
        return beside[0]
    raise ValueError(f"several CameraInfo topics {found}: choose one with --camera-info-topic")


def _pose_source(topics: dict[str, str], wanted: str | None) -> str | None:
    """The named pose topic (or /tf), the only pose topic, else /tf when the bag has it."""
    if wanted is not None:
        topic = bags.pick_topic(topics, wanted, bags.POSE_TYPES, "pose")
        if topics[topic] not in (*bags.POSE_TYPES, TF_TYPE):
            raise ValueError(f"pose topic {topic} is {topics[topic]}, not one of {[*bags.POSE_TYPES, TF_TYPE]}")
        return topic
    return bags.pick_topic(topics, None, bags.POSE_TYPES, "pose") or (TF if TF in topics else None)


def _image_topics(path: Path, topics: dict[str, str], opts: PosedBagOptions) -> tuple[str, str | None, Any]:
    """(colour topic, depth topic or None, first colour message); depth = the 16UC1/32FC1 Image topic."""
    kinds = (bags.IMAGE_TYPE, bags.COMPRESSED_TYPE)
    first = _first_messages(path, [t for t, ty in topics.items() if ty in kinds])
    is_depth = {t: topics[t] == bags.IMAGE_TYPE and str(m.encoding).lower() in AUTO_DEPTH_ENCODINGS
                for t, m in first.items()}
    named = bags.pick_topic(topics, opts.image_topic, kinds, "image") if opts.image_topic else None
    depth = bags.pick_topic(topics, opts.depth_topic, (), "depth") if opts.depth_topic else None
    if depth is None:
        found = sorted(t for t, d in is_depth.items() if d and t != named)
        if len(found) > 1:
            raise ValueError(f"several depth image topics {found}: choose one with --depth-topic")
        depth = found[0] if found else None
    elif topics[depth] != bags.IMAGE_TYPE:
        raise ValueError(f"depth topic {depth} is {topics[depth]}, not {bags.IMAGE_TYPE} (16UC1 or 32FC1)")
    if named is not None:
        colour = named
    else:
        found = sorted(t for t, d in is_depth.items() if not d and t != depth)
        if len(found) != 1:
            raise ValueError(f"{path}: {'several' if found else 'no'} colour image topics {found or ''} "
                             f"(Image/CompressedImage with messages): choose one with --image-topic")
        colour = found[0]
    if topics[colour] not in kinds:
        raise ValueError(f"image topic {colour} is {topics[colour]}, not Image or CompressedImage")
    if colour not in first:
        raise ValueError(f"{path}: image topic {colour} has no messages")
    return colour, depth, first[colour]


def _pose_sample(msg: Any, msgtype: str, body: str, camera_frame: str,
                 where: str) -> tuple[float, str, str, np.ndarray]:
    """(stamp, parent, child, parent_T_child); child: --body-frame, Odometry's child_frame_id, else the camera."""
    pose = msg.pose if msgtype == "geometry_msgs/msg/PoseStamped" else msg.pose.pose
    child = body or (msg.child_frame_id.lstrip("/") if msgtype == "nav_msgs/msg/Odometry" else "") or camera_frame
    return (stamp_to_seconds(msg.header.stamp), msg.header.frame_id.lstrip("/"), child,
            pose_matrix(pose.position, pose.orientation, where))


def _tf_samples(msg: Any, where: str) -> list[tuple[float, str, str, np.ndarray]]:
    return [(stamp_to_seconds(tr.header.stamp), tr.header.frame_id.lstrip("/"), tr.child_frame_id.lstrip("/"),
             pose_matrix(tr.transform.translation, tr.transform.rotation, f"{where} {tr.child_frame_id}"))
            for tr in msg.transforms]


def _camera(path: Path, opts: PosedBagOptions, info_topic: str | None, info: Any, colour: str,
            size: tuple[int, int]) -> Camera:
    if opts.intrinsics is not None:
        camera = read_camera_yaml(opts.intrinsics)[0]
        where = opts.intrinsics
    else:
        if info is None:
            raise ValueError(f"{path}: camera-info topic {info_topic} has no messages")
        where = f"{path}: {info_topic}"
        try:  # some drivers leave width/height 0: the images' size is meant
            camera = Camera(K=np.asarray(info.k, np.float64), D=np.asarray(info.d, np.float64),
                            width=int(info.width) or size[0], height=int(info.height) or size[1],
                            distortion_model=str(info.distortion_model or "plumb_bob"))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    try:
        camera.check_image_size(*size, what=f"image topic {colour}")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return camera


def load_posed_bag(path: str | Path, options: PosedBagOptions | None = None, *, radius: float = DEFAULT_RADIUS_M,
                   min_gap_s: float = DEFAULT_MIN_GAP_S, require: bool = False) -> RGBDSequence | None:
    """The bag as a posed dataset (module doc). None when it has no CameraInfo (and no
    intrinsics were given) or no pose source and ``require`` is False and no posed-only option
    was given; otherwise a bag that cannot be read as one raises ValueError naming the topic."""
    path, opts = Path(path), options or PosedBagOptions()
    require = require or opts.explicit()
    topics = bags.bag_topics(path)
    info_topic = _info_topic(topics, opts.camera_info_topic, opts.image_topic)
    source = _pose_source(topics, opts.pose_topic)
    if info_topic is None and opts.intrinsics is None:
        if not require:
            return None
        raise ValueError(f"{path}: no {CAMERA_INFO_TYPE} topic (topics: {sorted(topics)}): give the intrinsics "
                         "with --intrinsics camera.yaml (fx, fy, cx, cy, width, height[, d])")
    if source is None:
        if not require:
            return None
        raise ValueError(f"{path}: no pose source: no nav_msgs/Odometry, PoseStamped or PoseWithCovarianceStamped "
                         f"topic and no /tf (topics: {sorted(topics)}); name one with --pose-topic")
    colour, depth_topic, first = _image_topics(path, topics, opts)
    wanted = [t for t in (colour, depth_topic, info_topic, source, TF, TF_STATIC) if t is not None and t in topics]
    camera_frame = (opts.camera_frame or first.header.frame_id).lstrip("/")
    body = (opts.body_frame or "").lstrip("/")
    images, depths, infos, pose_samples, tf, static = [], [], [], [], [], []
    counts: dict[str, int] = {}
    for topic, msgtype, _, msg in bags.read_messages(path, list(dict.fromkeys(wanted))):
        k = counts[topic] = counts.get(topic, 0) + 1
        where = f"{path}: {topic} message {k}"
        if topic == colour:
            images.append((msg, msgtype))
        elif topic == depth_topic:
            depths.append(msg)
        elif topic == info_topic:
            infos.append(msg)
        elif topic == TF_STATIC:
            static += _tf_samples(msg, where)
        elif topic == TF:
            tf += _tf_samples(msg, where)
        else:
            pose_samples.append(_pose_sample(msg, msgtype, body, camera_frame, where))
    stamps = np.asarray([stamp_to_seconds(m.header.stamp) for m, _ in images])
    try:
        rgb0 = bags.image_msg_to_rgb(*images[0])
    except ValueError as exc:
        raise ValueError(f"{path}: image topic {colour}: {exc}") from None
    camera = _camera(path, opts, info_topic, infos[0] if infos else None, colour, (rgb0.shape[1], rgb0.shape[0]))
    poses, world = _camera_poses(path, source, camera_frame, opts, stamps, pose_samples, tf, static)
    keep = np.flatnonzero(np.all(np.isfinite(poses), axis=(1, 2)))
    if not len(keep):
        raise ValueError(f"{path}: no image stamp on {colour} ({len(stamps)} images, {stamps.min():.3f} .. "
                         f"{stamps.max():.3f} s) has a pose from {source} ({world} -> {camera_frame}) within "
                         f"{opts.max_gap_s} s on both sides")
    names = [f"{stamps[i]:.6f}" for i in keep]
    frames = ImageList(names, lambda i: bags.image_msg_to_rgb(*images[keep[i]]))
    depth_list, missing_depth = None, 0
    if depth_topic is not None:
        depth_list, missing_depth = _depths(path, depth_topic, depths, stamps[keep], names, camera, opts)
    name = path.stem if path.is_file() else path.name
    ds = _sequence(name, path, frames, poses[keep], stamps[keep], camera, depth_list, radius, min_gap_s)
    ds.missing_depth, ds.missing_pose = missing_depth, len(stamps) - len(keep)
    ds.pose_source = f"{source} ({world} -> {camera_frame})"
    return ds


def _camera_poses(path: Path, source: str, camera_frame: str, opts: PosedBagOptions, stamps: np.ndarray,
                  pose_samples: list, tf: list, static: list) -> tuple[np.ndarray, str]:
    """(N, 4, 4) world_T_camera at the stamps (NaN where not covered) and the world frame's name."""
    tree = FrameTree()
    for _, parent, child, T in static:
        tree.add_static(parent, child, T)
    world = opts.world_frame.lstrip("/") if opts.world_frame else None
    if source != TF:
        if not pose_samples:
            raise ValueError(f"{path}: pose topic {source} has no messages")
        for t, parent, child, T in pose_samples:
            if not child:
                raise ValueError(f"{path}: {source}: no frame for its poses (the images' header.frame_id is empty): "
                                 "name it with --body-frame or --camera-frame")
            if child in tree.static:
                raise ValueError(f"{path}: {source} gives poses of {child!r}, which {TF_STATIC} fixes to "
                                 f"{tree.static[child][0]!r}: name the moving frame with --body-frame")
            tree.add_dynamic(parent or source, child, t, T, source)
        world = world or (pose_samples[0][1] or source)
        camera_frame = camera_frame or pose_samples[0][2]
    elif not camera_frame:
        raise ValueError(f"{path}: the images' header.frame_id is empty: name the camera's TF frame with "
                         "--camera-frame")
    for t, parent, child, T in tf:
        tree.add_dynamic(parent, child, t, T, TF)
    if tree.parent(camera_frame) is None and camera_frame != world:
        raise ValueError(f"{path}: camera frame {camera_frame!r} is not in {source} or {TF_STATIC} "
                         f"(frames: {tree.frames()}); name it with --camera-frame (or --body-frame)")
    world = world or tree.chain(camera_frame)[-1]
    try:
        return tree.lookup(world, camera_frame, stamps, opts.max_gap_s), world
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _depths(path: Path, topic: str, msgs: list, stamps: np.ndarray, names: list[str], camera: Camera,
            opts: PosedBagOptions) -> tuple[ImageList, int]:
    """Depth images associated to the kept frames by stamp; the first one is checked at once."""
    if not msgs:
        raise ValueError(f"{path}: depth topic {topic} has no messages")
    try:
        first = depth_from_msg(msgs[0])
    except ValueError as exc:
        raise ValueError(f"{path}: depth topic {topic}: {exc}") from None
    try:
        camera.check_image_size(first.shape[1], first.shape[0], what=f"depth topic {topic}")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    of = associate(stamps, np.asarray([stamp_to_seconds(m.header.stamp) for m in msgs]), opts.max_difference_s)

    def depth(i: int) -> np.ndarray:
        if of[i] < 0:
            return np.zeros((camera.height, camera.width), np.float32)
        try:
            return depth_to_metres(depth_from_msg(msgs[of[i]]))
        except ValueError as exc:
            raise ValueError(f"{path}: depth topic {topic} message {of[i] + 1}: {exc}") from None

    return ImageList(names, depth), int(np.sum(of < 0))
