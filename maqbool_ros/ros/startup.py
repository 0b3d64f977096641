"""Start-up failures of the node: one line naming the input and what to do, exit status 2.

A bad model, a database folder that is a file, a map whose log file was deleted... are the
user's inputs, not bugs: like the CLI, the node then prints `maqbool-node: error: <field>:
<what> <advice>` on stderr with no traceback, and exits 2 before anything is written (the
database is only opened after every check of the directory has passed).
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from maqbool_ros.core.config import KEYS, MaqboolConfig, keyed_message
from maqbool_ros.core.text import one_line, printable
from maqbool_ros.ros.lifecycle import spin_until_signal

#: What to do, per input (attribute name) that can stop the node at start.
ADVICE = {
    "database_path": "nothing was changed; restore or repair that folder, point database.path elsewhere, or set "
                     "database.load_on_start:=false to move it aside (never deleted) and start an empty map",
    "model_path": "give an ONNX model written by `maqbool export` or `maqbool fit`, or leave descriptor.model_path "
                  "empty for the default model (built by `maqbool build-defaults`)",
}


class StartupError(RuntimeError):
    """The node cannot start because of one of its inputs; the text is the whole message."""


def explain(cfg: MaqboolConfig, exc: BaseException) -> str:
    """One line: the input (a parameter, ``section.short``) the failure is about, what happened,
    what to do. Core errors that start with a field's attribute name are shown with its key."""
    text = one_line(exc)
    if not isinstance(exc, (ValueError, OSError)):
        text = f"{type(exc).__name__}: {text}"
    text, name = keyed_message(text)
    if not name:
        name = next((f for f in ("database_path", "database_uri", "model_path")
                     if getattr(cfg, f) and str(getattr(cfg, f)) in text), "")
        text = f"{KEYS[name]}: {text}" if name else text
    advice = getattr(exc, "advice", None) or ADVICE.get(
        name, f"check {KEYS[name]} in the parameters" if name else "check the node's parameters")
    return f"{printable(text, 1000)} ({advice})"


def start_pipeline(cfg: MaqboolConfig):
    """LoopClosurePipeline(cfg), its input errors raised as StartupError."""
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    try:
        return LoopClosurePipeline(cfg)
    except (ValueError, OSError, RuntimeError) as exc:  # a lock held by another writer is a RuntimeError
        raise StartupError(explain(cfg, exc)) from exc


def run_node(make_node: Callable[[], object], args: list[str] | None = None, name: str = "maqbool-node") -> int:
    """spin_until_signal(make_node); a StartupError ends it with one line on stderr and status 2."""
    try:
        return spin_until_signal(make_node, args)
    except StartupError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr, flush=True)
        return 2
