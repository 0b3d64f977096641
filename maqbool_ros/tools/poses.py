"""`maqbool poses`: score the relative-pose stage alone on frame pairs with their true pose."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any

from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args

POSE_OPTIONS = ("verification_features", "verification_max_features", "verification_min_inliers",
                "verification_min_inlier_ratio", "verification_ratio", "verification_ransac_threshold_px",
                "verification_max_depth_m", "verification_depth_noise",
                "verification_keypoint_sigma_px")


def register(subparsers: argparse._SubParsersAction) -> None:
    from maqbool_ros.tools.dataset_args import add_dataset_args

    p = subparsers.add_parser(
        "poses", help="score relative poses and their covariances on frame pairs of a posed dataset",
        description="Verify frame pairs of a dataset with poses and intrinsics (KITTI odometry, TUM RGB-D, "
                    "EuRoC, a bag with CameraInfo and poses, synthetic-rgbd / synthetic-mono) as loop candidates "
                    "(query = the later frame) and compare each verified T_query_candidate with the ground truth: "
                    "median rotation error, translation error (metric) or translation-direction error "
                    "(monocular), and the NEES coverage of the reported covariances. See docs/evaluation.md.")
    p.add_argument("--dataset", required=True, help="posed dataset folder or bag, or synthetic-rgbd / synthetic-mono")
    p.add_argument("--pairs", default="consecutive:1",
                   help="consecutive:K (frames i+K and i), all (every pair) or loops (the ground-truth loops); "
                        "default %(default)s")
    p.add_argument("--json", default=None, help="write the report (summary and every pair) here")
    add_config_options(p, *POSE_OPTIONS)
    add_common_options(p)
    add_dataset_args(p)
    p.set_defaults(func=run)


def _clean(value: Any) -> Any:
    """NaN -> None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    from maqbool_ros.core.atomic import atomic_target
    from maqbool_ros.core.evaluation.relative_poses import parse_pairs, score_pairs
    from maqbool_ros.core.verification.stage import params_from_config
    from maqbool_ros.tools.dataset_args import open_dataset

    cfg = config_from_args(args)
    dataset = open_dataset(args, require_poses=True)
    pairs = parse_pairs(args.pairs, len(dataset.frames), getattr(dataset, "positives", None))
    report = _clean(score_pairs(dataset, pairs, params_from_config(cfg)))
    report["pairs_spec"] = args.pairs
    print_summary(report)
    if args.json:
        with atomic_target(args.json) as tmp, open(tmp, "w") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json}")
    return 0


def print_summary(r: dict[str, Any]) -> None:
    fmt = lambda x, spec=".3f": "n/a" if x is None else format(x, spec)  # noqa: E731
    line = (f"{r['dataset']}: {r['num_verified']}/{r['num_pairs']} pairs verified; rotation error median "
            f"{fmt(r['rotation_error_deg_median'])} deg")
    if r["metric"]:
        line += f", translation error median {fmt(r['translation_error_m_median'], '.4f')} m"
    else:
        line += (f", translation direction error median {fmt(r['translation_direction_error_deg_median'])} deg, "
                 f"direction NEES within 95% {fmt(r['nees_direction_within_95'])}")
    print(line + f"; NEES within 95% {fmt(r['nees_within_95'])}")
