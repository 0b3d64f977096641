"""Checks on a keyframe message's header, before anything reaches the pipeline."""
from __future__ import annotations

import re

_INTEGER = re.compile(r"[+-]?[0-9]+")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class MalformedHeader(ValueError):
    """A keyframe whose header cannot be used (the message names the field)."""


def frame_id_keyframe_id(frame_id: str) -> int | None:
    """The integer keyframe id in header.frame_id; None when it is not an integer (the node
    then numbers the keyframe itself). An integer outside int64 raises MalformedHeader."""
    text = frame_id.strip()
    if not _INTEGER.fullmatch(text):
        return None
    if len(text.lstrip("+-")) > 19:  # also keeps int() away from huge digit strings
        raise MalformedHeader(f"header.frame_id: keyframe id {text[:40]} is outside the int64 range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise MalformedHeader(f"header.frame_id: keyframe id {text} is outside the int64 range")
    return value


def check_stamp(stamp) -> None:
    """builtin_interfaces/Time with nanosec in [0, 1e9), else MalformedHeader."""
    if not 0 <= stamp.nanosec < 1_000_000_000:
        raise MalformedHeader(f"header.stamp.nanosec: {stamp.nanosec} is not in [0, 1e9)")
