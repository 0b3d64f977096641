"""HTTP download with resume (Range) and sha256 verification, for `maqbool models pull`.

Bytes go to ``DEST.part``; an interrupted transfer keeps it, and the next call asks the
server for the rest (``Range: bytes=N-``). Only a file whose sha256 matches is renamed
onto DEST, so nothing unverified is ever read by a loader. A mismatch deletes the part
file (a resume cannot repair it) and raises ChecksumError.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class DownloadError(OSError):
    """The transfer failed (HTTP error, network, cut short); a partial file may be kept."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "download failed"


class ChecksumError(ValueError):
    """The downloaded bytes do not have the expected sha256."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(url: str, start: int, timeout: float):
    from maqbool_ros import __version__

    headers = {"User-Agent": f"maqbool_ros/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _resumed_at(resp, start: int) -> int:
    """Where the server's answer starts: ``start`` for a matching 206, else 0 (a full body)."""
    if start and resp.status == 206:
        m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == start:
            return start
    return 0


def _transfer(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    from tqdm import tqdm

    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:  # longer than the real file: it cannot be a prefix of it
        part.unlink()
        have = 0
    if size is not None and have == size:
        return
    try:
        resp = _open(url, have, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past what we hold: the part is complete (checked next)
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    with resp:
        start = _resumed_at(resp, have)
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else size
        done = start
        with open(part, "r+b" if start else "wb") as f, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=part.name[:-len(".part")], disable=not progress, leave=False) as bar:
            f.seek(start)
            f.truncate()
            try:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, OSError) as exc:
                f.flush()
                raise DownloadError(f"{url}: transfer interrupted after {done:,} of {total or '?'} bytes ({exc}); "
                                    f"{part} is kept: run the same command again to resume") from None
            f.flush()
            os.fsync(f.fileno())
    if total is not None and done < total:
        raise DownloadError(f"{url}: transfer interrupted after {done:,} of {total:,} bytes; {part} is kept: "
                            "run the same command again to resume")


def download(urls: list[str] | tuple[str, ...], dest: str | Path, sha256: str, size: int | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``dest`` from the first URL that answers, resuming a kept ``dest.part``; verify
    its sha256 (and size, when known) before renaming it onto ``dest``. An existing ``dest``
    with the right sha256 is kept without any network access."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            _transfer(url, part, size, progress, timeout)
            break
        except DownloadError as exc:
            errors.append(str(exc))
            if part.is_file() and part.stat().st_size:  # cut short: resume from this URL next time
                raise
    else:
        raise DownloadError("; ".join(errors) or "no URL to download from")
    got = sha256_file(part)
    real_size = part.stat().st_size
    if got != sha256 or (size is not None and real_size != size):
        part.unlink()
        raise ChecksumError(f"{dest.name}: sha256 mismatch (expected {sha256}, got {got}, {real_size:,} bytes); "
                            "the download was deleted and nothing was installed")
    os.replace(part, dest)
    return dest
