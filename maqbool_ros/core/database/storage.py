"""On-disk format of the keyframe database: snapshot directory + append log.

Layout of a database directory (format version 1, see docs/keyframe-database.md)::

    manifest.json              the commit point: format, version, generation g, dim,
                               robots, extras spec, file sizes + sha256
    snapshot-<g>/*.npy         columns (numpy .npy, never pickled)
    log-<g>.bin                records appended since snapshot g (adds and removes)

A snapshot is written to a temporary directory, fsynced, renamed, and only then made
current by atomically replacing manifest.json; the log of the new generation starts
empty. A crash at any point leaves either the old or the new generation complete.
No file is ever loaded with pickle.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "maqbool_ros.keyframe_database"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COLUMNS = ("descriptors", "keyframe_ids", "robot_codes", "stamps", "sequence")
LOG_MAGIC = b"MQKFLOG1"  # file header of an append log
_GENERATION_FILE = re.compile(r"^(snapshot-\d+|log-\d+\.bin|\.tmp-snapshot-.*)$")


class DatabaseFormatError(ValueError):
    """A database file is truncated, corrupt, or of another format version."""


def snapshot_dir(root: Path, generation: int) -> Path:
    return root / f"snapshot-{generation:06d}"


def log_path(root: Path, generation: int) -> Path:
    return root / f"log-{generation:06d}.bin"


def fsync_dir(path: Path) -> None:
    """Make a rename/creation inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write a small file atomically: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


LOCK_FILE = ".lock"


def lock_directory(root: Path):
    """Exclusive advisory lock (flock) on root/.lock: one writer per database. Returns
    the open lock file; closing it (or the process dying) releases the lock."""
    import fcntl

    f = open(root / LOCK_FILE, "a")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RuntimeError(f"{root}: the database is open for writing elsewhere ({root / LOCK_FILE} is "
                           "locked); close it first, or read it with KeyframeDatabase.load()") from None
    return f


def check_empty(root: Path) -> None:
    """Refuse to write a database into a directory holding someone else's files."""
    if root.exists() and any(p.name != LOCK_FILE for p in root.iterdir()):
        raise ValueError(f"{root}: directory is not empty and holds no manifest.json; "
                         "refusing to write a database into it")


# --- snapshot -----------------------------------------------------------------------
@dataclass
class Snapshot:
    """What a snapshot holds; column arrays are (n, ...) and extras may be memory-mapped."""

    manifest: dict[str, Any]
    columns: dict[str, np.ndarray]  # keyframe_ids, robot_codes, stamps, sequence, descriptors
    extras: dict[str, np.ndarray]


def write_snapshot(root: Path, generation: int, manifest: dict[str, Any],
                   columns: dict[str, Any], extras: dict[str, Any],
                   blobs: dict[str, bytes] | None = None) -> None:
    """Write snapshot `generation` and commit it by replacing manifest.json.

    columns / extras map a name to an array or to a callable(out_memmap) that fills a
    pre-shaped output (so multi-GB region caches are streamed, not copied in RAM):
    then the value is a tuple (shape, dtype, fill).
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-snapshot-{generation:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files: dict[str, dict[str, Any]] = {}
    final = snapshot_dir(root, generation)
    items = [(f"{k}.npy", v) for k, v in columns.items()] + [(f"extras.{k}.npy", v) for k, v in extras.items()]
    for name, value in items:
        target = tmp / name
        if isinstance(value, tuple):
            shape, dtype, fill = value
            out = np.lib.format.open_memmap(target, mode="w+", dtype=dtype, shape=shape)
            fill(out)
            out.flush()
            del out
        else:
            np.save(target, np.ascontiguousarray(value), allow_pickle=False)
        _fsync_file(target)
    for name, data in (blobs or {}).items():
        (tmp / name).write_bytes(data)
        _fsync_file(tmp / name)
    for p in sorted(tmp.iterdir()):
        files[f"{final.name}/{p.name}"] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    fsync_dir(tmp)
    if final.exists():  # left over by a save that crashed before its commit
        shutil.rmtree(final)
    os.replace(tmp, final)
    new_log = log_path(root, generation)
    with open(new_log, "wb") as f:
        f.write(LOG_MAGIC)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(root)
    manifest = dict(manifest, format=FORMAT_NAME, version=FORMAT_VERSION, generation=generation,
                    snapshot=final.name, log=new_log.name, files=files)
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=1).encode())
    # Committed: everything not referenced by the new manifest is an old generation.
    # Only generation files go: kept copies (log-<g>.bin.torn, .skipped) stay until the user removes them.
    for p in root.iterdir():
        if _GENERATION_FILE.match(p.name) and p.name not in (final.name, new_log.name):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no keyframe database here (manifest.json missing)")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatabaseFormatError(f"{path}: corrupt manifest ({e}); the database was left untouched") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatabaseFormatError(f"{path}: not a maqbool_ros keyframe database manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise DatabaseFormatError(f"{path}: format version {manifest.get('version')!r}, this code reads "
                                  f"version {FORMAT_VERSION}; convert or move it away (left untouched)")
    return manifest


def read_snapshot(root: Path, *, mmap_extras: bool = True, verify: bool = True) -> Snapshot:
    """Read and check the current snapshot (sizes always, sha256 when verify)."""
    manifest = read_manifest(root)
    for rel, info in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            raise DatabaseFormatError(f"{path}: missing (listed in {root / MANIFEST})")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise DatabaseFormatError(f"{path}: truncated or modified ({size} bytes, manifest says "
                                      f"{info['bytes']}); the database was left untouched")
        if verify and sha256_file(path) != info["sha256"]:
            raise DatabaseFormatError(f"{path}: checksum mismatch (corrupt); the database was left untouched")
    snap = root / manifest["snapshot"]
    columns, extras = {}, {}
    for p in sorted(snap.glob("*.npy")):
        try:
            if p.name.startswith("extras."):
                arr = np.load(p, mmap_mode="r" if mmap_extras else None, allow_pickle=False)
                extras[p.name[len("extras."):-len(".npy")]] = arr
            else:
                columns[p.stem] = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise DatabaseFormatError(f"{p}: unreadable .npy ({e})") from e
    missing = sorted(set(COLUMNS) - set(columns))
    if missing:
        raise DatabaseFormatError(f"{snap}: missing column file(s) {', '.join(missing)}")
    if columns["descriptors"].ndim != 2 or columns["descriptors"].shape[1] != int(manifest["dim"]):
        raise DatabaseFormatError(f"{snap / 'descriptors.npy'}: shape {columns['descriptors'].shape} "
                                  f"does not match dim {manifest['dim']}")
    n = int(manifest["num_keyframes"])
    for name, arr in list(columns.items()) + list(extras.items()):
        if len(arr) != n:
            raise DatabaseFormatError(f"{snap / name}: {len(arr)} rows, manifest says {n}")
    return Snapshot(manifest, columns, extras)
