"""Text from outside and text that reaches a log line, a diagnostic or a one-line error.

JSON files users give (model registries, corpus source lists, manifests) are read with
:func:`read_json`, which names the file when it is not UTF-8 JSON.

Untrusted strings (robot ids, frame ids, map ids, encodings, anything from a message or a
service call) go through :func:`printable` wherever they are echoed: cut to a bounded
length and with every non-printable character (control characters, line breaks, the
right-to-left override U+202E and other format characters) escaped, so a peer can neither
flood the log nor forge or hide text in it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Characters of one untrusted value kept in a message (an id longer than this is cut).
MAX_ECHO_CHARS = 80
#: Characters of a whole logged problem (the last line of defence in the node's Counters).
MAX_LINE_CHARS = 500


def printable(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """str(value) cut to `limit` characters (noting how many were left out), non-printable
    characters escaped as Python does in repr (\\n, \\x1b, \\u202e)."""
    text = str(value)
    head = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    return head if len(text) <= limit else f"{head}...(+{len(text) - limit} chars)"


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (OSError: "filename: strerror" rather than its repr)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename and not isinstance(exc, FileNotFoundError):
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def read_json(path: str | Path) -> Any:
    """A JSON file's content; invalid JSON or UTF-8 is a ValueError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
