"""`maqbool doctor`: versions and the accelerators each stage would use here."""
from __future__ import annotations

import argparse
import json

from maqbool_ros.tools.options import add_common_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor", help="print library versions and the live GPU back ends (onnxruntime, FAISS, torch)",
        description="Reports what this Python environment offers: onnxruntime's execution providers (TensorRT, "
                    "CUDA, CPU), FAISS's GPU support and GPU count, torch's CUDA, and what device auto picks for "
                    "the descriptor engine, the keyframe index and ALIKED + LightGlue. Changes nothing.")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maqbool_ros import __version__
    from maqbool_ros.core.devices import device_report, report_lines

    report = {"maqbool_ros": __version__, **device_report()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"maqbool_ros {__version__}")
        print("\n".join(report_lines(report)))
    return 0
