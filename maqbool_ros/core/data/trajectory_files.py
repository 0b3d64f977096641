"""Text formats of posed datasets: whitespace/comma tables with errors that name file and line,
timestamp association (TUM's associate.py rule) and pose conversions.

Every reader here raises ValueError("<file>:<line>: <what>") on a bad row, so a user can open
the file at the right place; a missing file is a FileNotFoundError naming it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maqbool_ros.core.verification.geometry import make_T, transform_from_xyz_quat

#: TUM RGB-D's associate.py default: frames more than 20 ms apart are not the same instant.
DEFAULT_MAX_DIFFERENCE_S = 0.02


def read_rows(path: str | Path, min_columns: int, *, comma: bool = False) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every data row of a text table; ``#`` lines and blank lines skipped.
    Rows with fewer than ``min_columns`` fields raise ValueError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = [f.strip() for f in text.split(",")] if comma else text.split()
            if len(fields) < min_columns:
                raise ValueError(f"{path}:{line_no}: expected at least {min_columns} columns, got {len(fields)}")
            rows.append((line_no, fields))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return rows


def floats(path: str | Path, line_no: int, fields: list[str], what: str) -> np.ndarray:
    """The fields as finite float64; ValueError naming file, line and ``what`` otherwise."""
    try:
        out = np.asarray([float(f) for f in fields], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{path}:{line_no}: {what}: not numbers ({' '.join(fields)!r})") from None
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{path}:{line_no}: {what}: not finite ({' '.join(fields)!r})")
    return out


def pose_from_row(path: str | Path, line_no: int, xyz: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """4x4 pose from a translation and a quaternion, the quaternion checked (file:line in errors)."""
    if np.linalg.norm(quat_xyzw) < 1e-6:
        raise ValueError(f"{path}:{line_no}: quaternion is zero")
    return transform_from_xyz_quat(xyz, quat_xyzw)


def pose_from_matrix_row(path: str | Path, line_no: int, values: np.ndarray) -> np.ndarray:
    """4x4 pose from 12 row-major numbers of a 3x4 [R | t] (KITTI); the rotation is checked."""
    T = np.eye(4)
    T[:3, :] = values[:12].reshape(3, 4)
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-3) or np.linalg.det(R) <= 0:
        raise ValueError(f"{path}:{line_no}: the 3x3 block is not a rotation")
    u, _, vt = np.linalg.svd(R)  # re-orthonormalise the 7-digit text values
    return make_T(u @ vt, T[:3, 3])


def read_stamped_files(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """TUM ``timestamp filename`` list (rgb.txt, depth.txt): stamps and the paths, relative to the
    list's folder; a listed file that is absent is an error naming the list's line."""
    path = Path(path)
    stamps, names = [], []
    for line_no, fields in read_rows(path, 2):
        stamps.append(floats(path, line_no, fields[:1], "timestamp")[0])
        if not (path.parent / fields[1]).is_file():
            raise FileNotFoundError(f"{path}:{line_no}: listed image {path.parent / fields[1]} does not exist")
        names.append(fields[1])
    return np.asarray(stamps), names


def associate(stamps_a: np.ndarray, stamps_b: np.ndarray,
              max_difference: float = DEFAULT_MAX_DIFFERENCE_S) -> np.ndarray:
    """For each stamp of a, the index into b it is associated with, or -1.

    TUM RGB-D's associate.py rule: candidate pairs closer than max_difference, taken greedily
    from the closest, each stamp used at most once (so two colour frames never share one depth)."""
    a, b = np.asarray(stamps_a, float), np.asarray(stamps_b, float)
    out = np.full(len(a), -1, dtype=np.int64)
    if not len(a) or not len(b):
        return out
    order = np.argsort(b)
    sb = b[order]
    cand = []
    for i, t in enumerate(a):  # only the neighbours in time can be within max_difference
        k = np.searchsorted(sb, t)
        for j in range(max(k - 2, 0), min(k + 2, len(sb))):
            d = abs(sb[j] - t)
            if d < max_difference:
                cand.append((d, i, int(order[j])))
    used_b: set[int] = set()
    for _, i, j in sorted(cand):
        if out[i] < 0 and j not in used_b:
            out[i] = j
            used_b.add(j)
    return out


def interpolate_poses(stamps: np.ndarray, pose_stamps: np.ndarray, poses: np.ndarray,
                      max_gap_s: float) -> np.ndarray:
    """Poses at ``stamps`` from a trajectory: linear in translation, geodesic (slerp) in rotation,
    between the two neighbouring samples; NaN (whole 4x4) where a stamp lies outside the
    trajectory or its neighbours are more than max_gap_s apart."""
    from scipy.spatial.transform import Rotation, Slerp

    order = np.argsort(pose_stamps)
    ts, Ps = np.asarray(pose_stamps, float)[order], np.asarray(poses, float)[order]
    out = np.full((len(stamps), 4, 4), np.nan)
    k = np.searchsorted(ts, stamps)
    for i, (t, j) in enumerate(zip(stamps, k)):
        if j < len(ts) and ts[j] == t:
            out[i] = Ps[j]
            continue
        if j == 0 or j >= len(ts) or ts[j] - ts[j - 1] > max_gap_s:
            continue
        a = (t - ts[j - 1]) / (ts[j] - ts[j - 1])
        rot = Slerp([0.0, 1.0], Rotation.from_matrix(Ps[[j - 1, j], :3, :3]))([a]).as_matrix()[0]
        out[i] = make_T(rot, (1 - a) * Ps[j - 1, :3, 3] + a * Ps[j, :3, 3])
    return out
