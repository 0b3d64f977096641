"""--dataset and its options, shared by eval, poses, demo and bag from-images: which reader opens
a path (synthetic names, posed folders, posed bags, then the plain layouts of datasets.py)."""
from __future__ import annotations

import argparse
import sys

#: --dataset names of the embedded synthetic sequences (data/rgbd_sequence.py), not paths
SYNTHETIC_DATASETS = ("synthetic-rgbd", "synthetic-mono")


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """Options for opening a dataset (bags: topics and frames; pose ground truth: radius, gap)."""
    from maqbool_ros.core.data.datasets import DEFAULT_MIN_GAP_S, DEFAULT_RADIUS_M
    from maqbool_ros.core.data.posed_bags import DEFAULT_POSE_MAX_GAP_S

    p.add_argument("--image-topic", default=None,
                   help="bags: the image topic (default: the only Image/CompressedImage topic; with a depth "
                        "topic beside it, the only one that is not 16UC1/32FC1)")
    p.add_argument("--pose-topic", default=None,
                   help="bags: Odometry / PoseStamped / PoseWithCovarianceStamped topic, or /tf, with the poses "
                        "(default: the only pose topic, else /tf). Without CameraInfo: positions for positives only")
    p.add_argument("--radius", type=float, default=DEFAULT_RADIUS_M,
                   help="pose ground truth: same place within this many metres (default %(default)s)")
    p.add_argument("--min-gap", type=float, default=DEFAULT_MIN_GAP_S,
                   help="pose ground truth: a revisit is at least this many seconds later (default %(default)s)")
    g = p.add_argument_group("bags with poses and intrinsics (docs/evaluation.md, 'Datasets with poses')")
    g.add_argument("--camera-info-topic", default=None,
                   help="sensor_msgs/CameraInfo topic (default: the only one, or the one beside the image topic)")
    g.add_argument("--intrinsics", default=None, metavar="CAMERA_YAML",
                   help="camera.yaml (fx, fy, cx, cy, width, height[, d]) instead of the bag's CameraInfo")
    g.add_argument("--depth-topic", default=None,
                   help="registered depth Image topic, 16UC1 mm or 32FC1 m (default: the only such topic)")
    g.add_argument("--world-frame", default=None,
                   help="frame the poses are in (default: the pose topic's header.frame_id, or the root of /tf)")
    g.add_argument("--camera-frame", default=None,
                   help="the camera's optical frame (default: the images' header.frame_id)")
    g.add_argument("--body-frame", default=None,
                   help="frame a pose topic's poses are of (default: Odometry child_frame_id, else the camera "
                        "frame); /tf_static links it to the camera frame")
    g.add_argument("--pose-max-gap", type=float, default=DEFAULT_POSE_MAX_GAP_S,
                   help="interpolate poses only between samples at most this many seconds apart "
                        "(default %(default)s); images outside are dropped")


def posed_bag_options(args: argparse.Namespace):
    from maqbool_ros.core.data.posed_bags import PosedBagOptions

    if args.pose_max_gap <= 0:
        raise ValueError(f"--pose-max-gap: must be > 0, got {args.pose_max_gap}")
    return PosedBagOptions(image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
                           depth_topic=args.depth_topic, pose_topic=args.pose_topic, world_frame=args.world_frame,
                           camera_frame=args.camera_frame, body_frame=args.body_frame, intrinsics=args.intrinsics,
                           max_gap_s=args.pose_max_gap)


def open_dataset(args: argparse.Namespace, require_poses: bool = False):
    """The dataset --dataset names. require_poses: a bag must be read as a posed bag (an error
    says what it lacks) instead of falling back to images + positives."""
    from maqbool_ros.core.data.bags import is_bag
    from maqbool_ros.core.data.datasets import load_dataset

    if args.dataset in SYNTHETIC_DATASETS:
        from maqbool_ros.core.data.rgbd_sequence import synthetic_rgbd_sequence

        return synthetic_rgbd_sequence(depth=args.dataset == "synthetic-rgbd")
    from maqbool_ros.core.data.posed import load_posed  # KITTI, TUM RGB-D, EuRoC folders

    posed = load_posed(args.dataset, radius=args.radius, min_gap_s=args.min_gap)
    if posed is None and is_bag(args.dataset):
        from maqbool_ros.core.data.posed_bags import load_posed_bag

        posed = load_posed_bag(args.dataset, posed_bag_options(args), radius=args.radius, min_gap_s=args.min_gap,
                               require=require_poses)
        if posed is not None and not getattr(args, "quiet", False):
            depth = "no depth topic" if posed.depths is None else f"{posed.missing_depth} frames without depth"
            print(f"{args.dataset}: {len(posed.frames)} posed frames, poses from {posed.pose_source}; dropped "
                  f"{posed.missing_pose} images without a pose within --pose-max-gap; {depth}", file=sys.stderr)
    if posed is not None:
        return posed
    return load_dataset(args.dataset, image_topic=args.image_topic, pose_topic=args.pose_topic,
                        radius=args.radius, min_gap_s=args.min_gap)
