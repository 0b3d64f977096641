"""Write a file (or a directory) so that readers see the old one or the whole new one, never half of it."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    Concurrent writers are safe: the last complete file wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a path (not yet existing) inside a temporary sibling folder of `path`; on
    success rename it to `path`, else delete everything written. `path` must not exist."""
    path = Path(path)
    if path.exists():
        raise ValueError(f"{path}: already exists (never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}-", suffix=".partial", dir=path.parent))
    try:
        yield scratch / path.name
        if path.exists():  # appeared meanwhile: os.rename would replace an empty folder
            raise ValueError(f"{path}: already exists (never overwritten)")
        os.rename(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
