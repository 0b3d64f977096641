"""The model registry: public place-recognition checkpoints `maqbool models pull` can fetch.

The list is data (``registry.json`` beside this module, versioned by its ``format`` and
``revision``); ``MAQBOOL_MODEL_REGISTRY`` may name one more JSON file of the same format
(a private mirror, a checkpoint of your own) whose entries are added to it, and replace
packaged entries of the same name.

A pulled model lives in the cache (:func:`cache.cache_dir`): the verified
checkpoint under ``checkpoints/`` and its ONNX export under ``models/NAME.onnx``. Resolving
a name never downloads: a name not yet pulled is an error naming the command to run.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maqbool_ros.core.text import read_json

FORMAT = 1
PACKAGED = Path(__file__).with_name("registry.json")
ENV = "MAQBOOL_MODEL_REGISTRY"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry (see docs/models.md for the meaning of each field)."""

    name: str
    title: str
    urls: tuple[str, ...]
    filename: str
    sha256: str | None
    confirmed: bool
    licence: str
    training_set: str
    descriptor_dim: int
    layout: str
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def onnx_path(self) -> Path:
        return models_dir() / f"{self.name}.onnx"

    def checkpoint_path(self) -> Path:
        return checkpoints_dir() / self.filename

    @property
    def pulled(self) -> bool:
        return self.onnx_path().is_file()


def models_dir() -> Path:
    from maqbool_ros.core.descriptor.cache import cache_dir
    return cache_dir() / "models"


def checkpoints_dir() -> Path:
    from maqbool_ros.core.descriptor.cache import cache_dir
    return cache_dir() / "checkpoints"


def check_sha256(value: str, what: str) -> str:
    """A lower-case 64-hex sha256, or ValueError naming ``what``."""
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise ValueError(f"{what}: {value!r} is not a sha256 (64 hexadecimal digits)")
    return value


def _entry(raw: dict[str, Any], source: Path) -> ModelEntry:
    def need(key: str, typ: type | tuple[type, ...]) -> Any:
        if key not in raw or not isinstance(raw[key], typ):
            raise ValueError(f"model registry {source}: entry {raw.get('name', '?')!r} lacks a valid {key!r}")
        return raw[key]

    name = need("name", str)
    if not _NAME.match(name):
        raise ValueError(f"model registry {source}: name {name!r} must be lower-case letters, digits, '.', '_', '-'")
    urls = need("urls", list)
    if not urls or not all(isinstance(u, str) and u.startswith(("https://", "http://")) for u in urls):
        raise ValueError(f"model registry {source}: entry {name!r} needs at least one http(s) URL")
    sha = raw.get("sha256")
    confirmed = bool(raw.get("confirmed", False))
    if sha is not None:
        sha = check_sha256(sha, f"model registry {source}: entry {name!r} sha256")
    if confirmed and sha is None:
        raise ValueError(f"model registry {source}: entry {name!r} is confirmed but has no sha256")
    filename = need("filename", str)
    if Path(filename).name != filename:
        raise ValueError(f"model registry {source}: entry {name!r} filename {filename!r} must be a plain file name")
    known = {"name", "title", "urls", "filename", "sha256", "confirmed", "licence", "training_set",
             "descriptor_dim", "layout", "size_bytes"}
    return ModelEntry(name=name, title=need("title", str), urls=tuple(urls), filename=filename, sha256=sha,
                      confirmed=confirmed, licence=need("licence", str), training_set=need("training_set", str),
                      descriptor_dim=int(need("descriptor_dim", int)), layout=need("layout", str),
                      size_bytes=raw.get("size_bytes"), extra={k: v for k, v in raw.items() if k not in known})


def read_registry(path: Path) -> tuple[dict[str, Any], list[ModelEntry]]:
    """(header, entries) of one registry file; ValueError on a wrong format."""
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 JSON (it names the file)
        raise ValueError(f"model registry: cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("models"), list):
        raise ValueError(f"model registry {path}: expected {{'format': {FORMAT}, 'models': [...]}}")
    header = {k: v for k, v in doc.items() if k != "models"}
    return header, [_entry(m, Path(path)) for m in doc["models"]]


def load_registry() -> dict[str, ModelEntry]:
    """The packaged entries plus those of ``$MAQBOOL_MODEL_REGISTRY`` (which win on a name clash)."""
    entries = {e.name: e for e in read_registry(PACKAGED)[1]}
    extra = os.environ.get(ENV)
    if extra:
        entries.update({e.name: e for e in read_registry(Path(extra))[1]})
    return entries


def get_entry(name: str) -> ModelEntry:
    entries = load_registry()
    if name not in entries:
        raise ValueError(f"model {name!r} is not in the registry (maqbool models list shows {len(entries)} names)")
    return entries[name]


def resolve_name(model_path: str) -> Path | None:
    """The pulled ONNX file when ``model_path`` is a registry name and not an existing path;
    None when it is not a registry name. A name not yet pulled raises FileNotFoundError
    naming ``maqbool models pull`` (nothing is ever downloaded here)."""
    text = str(model_path)
    if not _NAME.match(text) or Path(text).exists():
        return None
    entries = load_registry()
    if text not in entries:
        return None
    path = entries[text].onnx_path()
    if not path.is_file():
        raise FileNotFoundError(f"model_path: {text!r} is a registry model that has not been pulled into "
                                f"{models_dir()}; run `maqbool models pull {text}` first (nothing downloads "
                                "models at run time)")
    return path
