"""A training corpus assembled from a declared source list (`maqbool build-corpus`).

Each source (maqbool_ros.core.data.corpus_sources) becomes ``<out>/<name>/`` in a layout that
:func:`maqbool_ros.core.data.datasets.load_dataset` reads: ``query/`` + ``ref/`` +
``ground_truth.csv`` (query_ref and utm_named sources) or ``frames/`` + ``loop_pairs.csv``
(sequences). Images are symlinks to the source files (or copies); ``<out>/corpus.json``
records, per source, its licence, provenance, origin and counts.

Everything is checked before anything is written: the list (held-out guard included), every
image header (format and size, read as the node's decoder would: max_image_pixels), the
ground truth (indices in range, at least one positive). Each dataset is written to a hidden
temporary folder and renamed into place, so a failure never leaves half a dataset.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maqbool_ros.core.atomic import atomic_target
from maqbool_ros.core.data.corpus_sources import (
    SourceEntry,
    check_not_held_out,
    fetch_git,
    load_source_list,
)
from maqbool_ros.core.text import read_json

MANIFEST = "corpus.json"
CORPUS_FORMAT = 1
GIT_CACHE = ".sources"  # inside the output folder: symlinked images must outlive the build
LINK_MODES = ("symlink", "copy")
_GT = {"query_ref": ("ground_truth.csv", "query_index,positive_ref_indices"),
       "sequence": ("loop_pairs.csv", "frame_index,earlier_matching_frame_indices")}


@dataclass
class Plan:
    """One source, read and checked, ready to write."""

    entry: SourceEntry
    kind: str                          # "query_ref" or "sequence" (the written layout)
    parts: dict[str, list[Path]]       # sub folder -> image files in index order
    positives: list[np.ndarray]
    image_bytes: int = 0

    @property
    def positive_pairs(self) -> int:
        return int(sum(len(p) for p in self.positives))


def check_image_file(path: Path, max_pixels: int | None = None) -> int:
    """The file's size in bytes, once its header names a supported format within max_pixels."""
    from maqbool_ros.core.images.io import image_file_size

    image_file_size(path, max_pixels)
    return path.stat().st_size


def plan_source(entry: SourceEntry, folder: Path) -> Plan:
    """Read one source's file lists and ground truth (no pixel is decoded)."""
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.images.io import list_images

    if not folder.is_dir():
        raise FileNotFoundError(f"source '{entry.name}': {folder} is not a folder")
    if entry.layout == "utm_named":
        from maqbool_ros.core.data.utm_layout import read_utm_split

        queries, database, positives = read_utm_split(folder, entry.split, entry.radius())
        return Plan(entry, "query_ref", {"query": queries, "ref": database}, positives)
    ds = load_dataset(folder, radius=entry.radius())
    if ds.kind != entry.layout:
        raise ValueError(f"source '{entry.name}': layout is '{entry.layout}' but {folder} holds a {ds.kind} dataset")
    subs = ("query", "ref") if ds.kind == "query_ref" else ("frames",)
    return Plan(entry, ds.kind, {s: list_images(folder / s) for s in subs}, list(ds.positives))


def validate_plan(plan: Plan, max_pixels: int | None = None, progress: bool = True) -> None:
    """Image headers and ground truth of one plan; sets plan.image_bytes."""
    from tqdm import tqdm

    name = plan.entry.name
    files = [p for part in plan.parts.values() for p in part]
    total = 0
    for path in tqdm(files, desc=f"check {name}", unit="img", disable=not progress):
        total += check_image_file(path, max_pixels)
    num_refs = len(plan.parts["ref" if plan.kind == "query_ref" else "frames"])
    for i, pos in enumerate(plan.positives):
        if len(pos) and (pos.min() < 0 or pos.max() >= num_refs):
            raise ValueError(f"source '{name}': row {i} of the ground truth has an index outside [0, {num_refs})")
    if plan.positive_pairs == 0:
        hint = " (radius_m too small, or the split's queries lie away from its database?)"
        raise ValueError(f"source '{name}': no positive pair in the ground truth"
                         + (hint if plan.entry.layout == "utm_named" else ""))
    plan.image_bytes = total


def _write_dataset(plan: Plan, out: Path, link: str, progress: bool) -> None:
    """Write one dataset to a temporary folder, then rename it to ``out/<name>``."""
    from tqdm import tqdm

    final = out / plan.entry.name
    tmp = out / f".{plan.entry.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub, files in plan.parts.items():
            (tmp / sub).mkdir(parents=True)
            for src in tqdm(files, desc=f"{link} {plan.entry.name}/{sub}", unit="img", disable=not progress):
                if link == "symlink":
                    os.symlink(src.resolve(), tmp / sub / src.name)
                else:
                    shutil.copy2(src, tmp / sub / src.name)
        gt_name, header = _GT[plan.kind]
        rows = [header] + [f"{i},{' '.join(str(int(j)) for j in pos)}" for i, pos in enumerate(plan.positives)]
        (tmp / gt_name).write_text("\n".join(rows) + "\n")
        old = out / f".{plan.entry.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def manifest_entry(plan: Plan, link: str) -> dict:
    """The manifest's record of one written source."""
    e = plan.entry
    counts = ({"queries": len(plan.parts["query"]), "refs": len(plan.parts["ref"])} if plan.kind == "query_ref"
              else {"frames": len(plan.parts["frames"])})
    record = {"name": e.name, "layout": e.layout, "kind": plan.kind, "licence": e.licence,
              "provenance": e.provenance, "origin": e.origin(), "counts": {**counts,
              "positive_pairs": plan.positive_pairs}, "image_bytes": plan.image_bytes, "images": link}
    if e.layout == "utm_named":
        record.update(split=e.split, radius_m=e.radius())
    elif e.radius_m is not None:
        record["radius_m"] = e.radius_m
    return {**record, **e.extra}


def read_manifest(corpus: str | Path) -> dict:
    """``corpus.json`` of a built corpus, checked (format, fields, no held-out source)."""
    path = Path(corpus) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no corpus manifest (build one with `maqbool build-corpus`)")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != CORPUS_FORMAT or not isinstance(data.get("sources"), list):
        raise ValueError(f"{path}: not a corpus manifest of format {CORPUS_FORMAT}")
    for rec in data["sources"]:
        if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("name", "licence", "provenance")):
            raise ValueError(f"{path}: a source record lacks name, licence or provenance")
        check_not_held_out(rec["name"], {"name": rec["name"], **{f"origin.{k}": str(v) for k, v in
                                                                 dict(rec.get("origin") or {}).items()}})
    return data


def _totals(records: list[dict]) -> dict:
    images = sum(sum(v for k, v in r["counts"].items() if k != "positive_pairs") for r in records)
    return {"sources": len(records), "images": images, "image_bytes": sum(r["image_bytes"] for r in records),
            "positive_pairs": sum(r["counts"]["positive_pairs"] for r in records)}


def _write_manifest(out: Path, records: list[dict], previous: list[dict]) -> dict:
    """corpus.json: this build's records plus the previous manifest's records of other sources still
    on disk (a partial rebuild with --only keeps them)."""
    from maqbool_ros import __version__

    built = {r["name"] for r in records}
    kept = [r for r in previous if r["name"] not in built and (out / r["name"]).is_dir()]
    records = sorted(kept + records, key=lambda r: r["name"])
    data = {"format": CORPUS_FORMAT, "tool": f"maqbool build-corpus (maqbool_ros {__version__})",
            "sources": records, "totals": _totals(records)}
    with atomic_target(out / MANIFEST) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
    return data


def build_corpus(sources: str | Path, out: str | Path, only: list[str] | None = None, link: str = "symlink",
                 root: str | Path | None = None, max_pixels: int | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = print) -> dict:
    """Assemble the corpus declared in ``sources`` under ``out``; returns the manifest."""
    if link not in LINK_MODES:
        raise ValueError(f"--link: {link!r} is not one of {list(LINK_MODES)}")
    entries = load_source_list(sources, root)
    if only:
        unknown = sorted(set(only) - {e.name for e in entries})
        if unknown:
            raise ValueError(f"--only: no source named {unknown} in {sources} (sources: "
                             f"{', '.join(e.name for e in entries)})")
        entries = [e for e in entries if e.name in only]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a folder")
    for e in entries:
        if e.path is not None and (out.resolve() == e.path or e.path in out.resolve().parents):
            raise ValueError(f"source '{e.name}': --out {out} lies inside the source folder {e.path}")
    previous = read_manifest(out)["sources"] if (out / MANIFEST).is_file() else []
    plans = []
    for e in entries:  # read and check everything first
        folder = e.path if e.git is None else fetch_git(e, out / GIT_CACHE)
        plan = plan_source(e, folder)
        validate_plan(plan, max_pixels, progress)
        plans.append(plan)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for plan in plans:
        _write_dataset(plan, out, link, progress)
        records.append(manifest_entry(plan, link))
        if log is not None:
            c = records[-1]["counts"]
            log(f"{plan.entry.name}: {', '.join(f'{k} {v}' for k, v in c.items())}, "
                f"{plan.image_bytes / 1e6:.1f} MB of images ({plan.entry.licence})")
    return _write_manifest(out, records, previous)


def corpus_datasets(corpus: str | Path) -> tuple[list, list[dict]]:
    """(datasets, [{name, licence, origin}]) of a built corpus, for `maqbool train-pdl --corpus`."""
    from maqbool_ros.core.data.datasets import load_dataset

    corpus = Path(corpus)
    records = read_manifest(corpus)["sources"]
    if not records:
        raise ValueError(f"{corpus / MANIFEST}: the corpus lists no source")
    datasets = [load_dataset(corpus / r["name"]) for r in records]
    return datasets, [{"name": r["name"], "licence": r["licence"], "origin": r.get("origin", {})} for r in records]
