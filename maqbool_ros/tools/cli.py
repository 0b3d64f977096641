"""The `maqbool` command line: one entry point, one subcommand per tool module.

Each module in maqbool_ros.tools (other than this one) that defines
``register(subparsers)`` adds its subcommand; heavy imports stay inside the
subcommand's run function so that ``maqbool --help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from maqbool_ros import __version__
from maqbool_ros.core.config import keyed_message
from maqbool_ros.core.text import one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maqbool",
        description="maqbool_ros: real-time visual loop closure for ROS 2 SLAM. "
                    "NetVLAD descriptors (ONNX Runtime), a FAISS keyframe database and "
                    "MAQBOOL / ConvNet-landmark re-ranking. Run `maqbool <command> --help` "
                    "for each command.",
    )
    parser.add_argument("--version", action="version", version=f"maqbool_ros {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    import maqbool_ros.tools as tools_pkg

    for info in sorted(pkgutil.iter_modules(tools_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "cli":
            continue
        module = importlib.import_module(f"maqbool_ros.tools.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    # the tools are the offline wing: a missing default model / decision layer is built on first
    # use here (never in the node: core/artifacts.py)
    from maqbool_ros.tools.build_defaults import install_builder

    install_builder()
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # user errors (bad input, unreadable files): one line, no traceback
        sub = getattr(args, "bag_command", None) or getattr(args, "models_command", None)
        command = " ".join(c for c in (args.command, sub) if c)
        print(f"maqbool {command}: error: {keyed_message(one_line(exc))[0]}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
