"""`maqbool dump-config`: write the default configuration as plain and ROS params YAML."""
from __future__ import annotations

import argparse
from pathlib import Path

from maqbool_ros.core.config import plain_yaml, ros_params_yaml
from maqbool_ros.tools.options import add_common_options, config_from_args

PLAIN_NAME = "maqbool.yaml"
ROS_NAME = "maqbool_ros_params.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dump-config", help="write the default config (plain YAML and ROS params YAML)",
        description="Write the configuration schema's defaults to OUT_DIR as "
                    f"{PLAIN_NAME} (plain YAML, for the CLI) and {ROS_NAME} "
                    "(a --params-file for the node). With --config, dump that config (validated) instead, "
                    "e.g. to turn a plain YAML into a params file.")
    p.add_argument("--out-dir", default="config", help="directory to write to (default: config)")
    add_common_options(p)
    p.add_argument("--from", dest="config", default=None, help="the same as --config (older spelling)")
    p.add_argument("--stdout", action="store_true", help="print the plain YAML instead of writing files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.stdout:
        print(plain_yaml(cfg), end="")
        return 0
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAIN_NAME).write_text(plain_yaml(cfg))
    (out / ROS_NAME).write_text(ros_params_yaml(cfg))
    print(f"wrote {out / PLAIN_NAME} and {out / ROS_NAME}")
    return 0
