"""The declared source list of a training corpus: parsing, the held-out guard, fetching.

A source list is comment-free JSON, ``{"sources": [entry, ...]}``. Each entry names one
public image set (fields in :data:`ENTRY_FIELDS`): ``name``, ``layout`` (``query_ref``,
``sequence`` or ``utm_named``), exactly one of ``path`` (a local folder; relative paths
resolve against the list file's folder or ``root``) and ``git`` (``{url, commit, subpath}``,
a pinned commit, fetched with a blobless sparse clone), ``licence`` and ``provenance``
(required), and per layout ``split`` and ``radius_m``.

Gardens Point Walking and Nordland are evaluation data of this project and never enter a
training corpus: :func:`check_not_held_out` refuses any entry that mentions them, when the
list is read, before anything is fetched or written.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maqbool_ros.core.text import read_json

LAYOUTS = ("query_ref", "sequence", "utm_named")
#: Lower-case words that mark a held-out set (gardenspoint / gardens_point contain "gardens").
HELD_OUT_WORDS = ("gardens", "nordland", "gardenspoint", "gardens_point")
DEFAULT_UTM_RADIUS_M = 25.0  # the usual VPR positive radius
DEFAULT_SPLIT = "test"
ENTRY_FIELDS = ("name", "layout", "path", "git", "split", "licence", "provenance", "radius_m", "size", "homepage")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class GitOrigin:
    """A repository at a pinned commit; the dataset lies at ``subpath`` inside it."""

    url: str
    commit: str
    subpath: str = ""


@dataclass(frozen=True)
class SourceEntry:
    """One validated entry of a source list."""

    name: str
    layout: str
    licence: str
    provenance: str
    path: Path | None = None          # resolved local folder (None for git sources)
    declared_path: str = ""           # the path as written in the list
    git: GitOrigin | None = None
    split: str = DEFAULT_SPLIT
    radius_m: float | None = None     # None: the layout's default
    extra: dict = field(default_factory=dict)  # size, homepage: copied to the manifest

    def radius(self) -> float:
        """Positive radius in metres: the entry's, else its layout's default."""
        from maqbool_ros.core.data.datasets import DEFAULT_RADIUS_M

        if self.radius_m is not None:
            return self.radius_m
        return DEFAULT_UTM_RADIUS_M if self.layout == "utm_named" else DEFAULT_RADIUS_M

    def origin(self) -> dict[str, str]:
        """Where the images come from, for the manifest and the layer's metadata."""
        if self.git is not None:
            return {"url": self.git.url, "commit": self.git.commit, "subpath": self.git.subpath}
        return {"path": str(self.path)}


def check_not_held_out(name: str, values: dict[str, str]) -> None:
    """Raise ValueError when any value (field -> text) mentions a held-out set."""
    for key, text in values.items():
        low = str(text).lower()
        squeezed = re.sub(r"[^a-z0-9]", "", low)  # "Gardens-Point", "Nord land" spellings too
        for word in HELD_OUT_WORDS:
            if word in low or word.replace("_", "") in squeezed:
                raise ValueError(f"source '{name}': refused: its {key} ({text!r}) mentions '{word}'; Gardens Point "
                                 "Walking and Nordland are held out of every training corpus (evaluation only)")


def _text(entry: dict, key: str, where: str, required: bool = True) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{where}: '{key}' must be a non-empty string" if required
                         else f"{where}: '{key}' must be a string")
    return value.strip()


def parse_entry(entry: Any, index: int, base: Path) -> SourceEntry:
    """One list entry, checked field by field (errors name the entry and the field)."""
    where = f"sources[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    name = _text(entry, "name", where)
    where = f"source '{name}'"
    git = entry.get("git")
    mentions = {"name": name, **({"path": entry["path"]} if isinstance(entry.get("path"), str) else {})}
    if isinstance(git, dict):
        mentions.update({f"git.{k}": v for k, v in git.items() if isinstance(v, str)})
    check_not_held_out(name, mentions)  # before any other check: a held-out source is refused as such
    unknown = sorted(set(entry) - set(ENTRY_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} (known: {', '.join(ENTRY_FIELDS)})")
    if not _NAME.match(name):
        raise ValueError(f"{where}: 'name' may hold only letters, digits, '_', '.', '-' (it names a folder)")
    layout = _text(entry, "layout", where)
    if layout not in LAYOUTS:
        raise ValueError(f"{where}: 'layout' {layout!r} is not one of {list(LAYOUTS)}")
    licence, provenance = _text(entry, "licence", where), _text(entry, "provenance", where)
    if ("path" in entry) == (git is not None):
        raise ValueError(f"{where}: give exactly one of 'path' (a local folder) and 'git' ({{url, commit, subpath}})")
    path, declared, origin = None, "", None
    if git is not None:
        if not isinstance(git, dict) or set(git) - {"url", "commit", "subpath"}:
            raise ValueError(f"{where}: 'git' must be an object with url, commit and optional subpath")
        url, commit = _text(git, "url", f"{where}: git"), _text(git, "commit", f"{where}: git")
        if not _COMMIT.match(commit):
            raise ValueError(f"{where}: git.commit {commit!r} must be a full 40-digit lower-case hex commit (pinned)")
        subpath = _text(git, "subpath", f"{where}: git", required=False)
        if Path(subpath).is_absolute() or ".." in Path(subpath).parts:
            raise ValueError(f"{where}: git.subpath {subpath!r} must be a relative path inside the repository")
        origin = GitOrigin(url, commit, subpath)
    else:
        declared = _text(entry, "path", where)
        path = (base / Path(declared).expanduser()).resolve()
        check_not_held_out(name, {"resolved path": path.name})  # a link whose target is a held-out folder
    split = _text(entry, "split", where) if "split" in entry else DEFAULT_SPLIT
    radius = entry.get("radius_m")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, (int, float)) or radius <= 0):
        raise ValueError(f"{where}: 'radius_m' must be a positive number of metres, got {radius!r}")
    extra = {k: _text(entry, k, where) for k in ("size", "homepage") if k in entry}
    return SourceEntry(name, layout, licence, provenance, path, declared, origin, split,
                       None if radius is None else float(radius), extra)


def load_source_list(path: str | Path, root: str | Path | None = None) -> list[SourceEntry]:
    """Read and check a whole source list; relative paths resolve against ``root`` (default: the
    list file's folder). Every entry is checked (held-out guard included) before any is used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: source list not found")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list) or set(data) - {"sources"}:
        raise ValueError(f"{path}: expected an object with one key, 'sources' (a list of entries)")
    base = Path(root).resolve() if root is not None else path.resolve().parent
    entries = []
    for i, raw in enumerate(data["sources"]):
        try:
            entries.append(parse_entry(raw, i, base))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: source name(s) {dupes} appear more than once")
    if not entries:
        raise ValueError(f"{path}: the source list is empty")
    return entries


def _git(args: list[str], cwd: Path | None, what: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OSError(f"{what}: git is not installed") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ValueError(f"{what}: git {args[0]} failed: {last}")
    return proc.stdout.strip()


def fetch_git(entry: SourceEntry, cache: Path) -> Path:
    """The dataset folder of a git source: a blobless, sparse clone of ``subpath`` at the pinned
    commit under ``cache`` (reused when already there at that commit)."""
    assert entry.git is not None
    g, what = entry.git, f"source '{entry.name}'"
    dest = cache / f"{entry.name}-{g.commit[:12]}"
    if dest.is_dir() and _git(["rev-parse", "HEAD"], dest, what) == g.commit:
        return dest / g.subpath
    tmp = cache / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        _git(["clone", "--quiet", "--filter=blob:none", "--sparse", "--no-checkout", g.url, str(tmp)], None, what)
        if g.subpath:
            _git(["sparse-checkout", "set", g.subpath], tmp, what)
        _git(["checkout", "--quiet", "--detach", g.commit], tmp, what)
        if _git(["rev-parse", "HEAD"], tmp, what) != g.commit:
            raise ValueError(f"{what}: checkout did not reach commit {g.commit}")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    folder = dest / g.subpath
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: {g.subpath!r} is not a folder at commit {g.commit} of {g.url}")
    return folder
