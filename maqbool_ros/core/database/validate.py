"""Field checks of the keyframe database: everything is checked before anything is written.

Each check returns the value in its stored form or raises ValueError naming the field, so
an insert (or a log record being replayed) is refused as a whole, never half-applied.
"""
from __future__ import annotations

import math
import re
from numbers import Real

import numpy as np

from maqbool_ros.core.text import printable

INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
MAX_ROBOT_ID_CHARS = 256  # ROS namespaces are far shorter; the id goes into every log record
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # extras keys become file names
EXTRAS_KINDS = "biuf"  # bool, signed/unsigned int, float: what .npy and the log store exactly


def keyframe_id(value, field: str = "keyframe_id") -> int:
    """An integer (Python or numpy, not bool) inside int64 (ids are stored as int64)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{field}: expected an integer, got {value!r}")
    kf = int(value)
    if not INT64_MIN <= kf <= INT64_MAX:
        raise ValueError(f"{field}: {kf} is outside the int64 range [{INT64_MIN}, {INT64_MAX}]")
    return kf


def keyframe_ids(values, field: str = "keyframe_ids") -> np.ndarray:
    """A list/array of keyframe ids as int64 (each checked like keyframe_id)."""
    arr = np.atleast_1d(np.asarray(values, dtype=object if not isinstance(values, np.ndarray) else None))
    if arr.ndim != 1:
        raise ValueError(f"{field}: expected a 1-D list of ids, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and len(arr) and arr.max() > INT64_MAX:
            raise ValueError(f"{field}: {int(arr.max())} is outside the int64 range")
        return arr.astype(np.int64)
    return np.array([keyframe_id(v, field) for v in arr], dtype=np.int64)


def robot_id(value, field: str = "robot_id") -> str:
    """A non-empty string of printable characters, at most MAX_ROBOT_ID_CHARS long."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a string, got {value!r}")
    if not value:
        raise ValueError(f"{field}: must not be empty")
    if len(value) > MAX_ROBOT_ID_CHARS:
        raise ValueError(f"{field}: {len(value)} characters, at most {MAX_ROBOT_ID_CHARS} allowed")
    if not value.isprintable():
        raise ValueError(f"{field}: '{printable(value)}' contains control characters")
    return str(value)


def stamp(value, field: str = "stamp") -> float:
    """A finite real number of seconds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.floating, np.integer)):
        raise ValueError(f"{field}: expected a number of seconds, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{field}: {out} is not finite")
    return out


def unit_descriptor(value, dim: int, field: str = "descriptor", stored: bool = False) -> np.ndarray:
    """A real, finite, non-zero vector of dim values (shape (dim,) or (1, dim)), returned
    L2-normalised as float32. stored=True (log replay): a float32 vector that is already
    unit length is kept bit for bit, so a reloaded map answers exactly as before."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{field}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.shape not in ((dim,), (1, dim)):
        raise ValueError(f"{field}: shape {arr.shape} ({arr.size} values), the database is {dim}-D")
    v = arr.astype(np.float64).reshape(-1)
    peak = float(np.abs(v).max())  # NaN or inf anywhere makes it NaN or inf
    if not math.isfinite(peak):
        raise ValueError(f"{field}: contains NaN or inf")
    if peak == 0:
        raise ValueError(f"{field}: is all zeros")
    if not 1e-150 < peak < 1e150:  # the squared norm would over/underflow: rescale first
        v = v / peak
    norm = math.sqrt(float(v @ v))  # what np.linalg.norm computes, without its overhead
    if stored and arr.dtype == np.float32 and abs(norm - 1.0) < 1e-4:
        return arr.reshape(-1).copy()
    return (v / norm).astype(np.float32)


def extras(values, columns: dict, field: str = "extras") -> dict[str, np.ndarray]:
    """Per-keyframe arrays: names matching KEY_PATTERN, bool/int/float arrays, finite, and the
    stored (shape, dtype) of a key already in `columns` (name -> object with row_shape, dtype)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{field}: expected a dict of arrays, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise ValueError(f"{field} key {key!r} must match {KEY_PATTERN.pattern}")
        name = f"{field}[{key!r}]"
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:  # ragged nested lists
            raise ValueError(f"{name}: not an array ({e})") from None
        if arr.dtype.kind not in EXTRAS_KINDS:
            raise ValueError(f"{name}: dtype {arr.dtype} is not bool, integer or float")
        if key in columns:
            col = columns[key]
            if arr.shape != col.row_shape or arr.dtype != col.dtype:
                raise ValueError(f"{name}: is {arr.shape} {arr.dtype}, the database stores "
                                 f"{col.row_shape} {col.dtype} for this key")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or inf")
        out[key] = arr
    return out
