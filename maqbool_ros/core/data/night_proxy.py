"""Write a "night proxy" copy of a dataset folder (offline dev data; docs/sequence.md, "night proxy").

* query_ref input (query/, ref/, ground_truth.csv): ``OUT/query_ref/`` with the queries transformed
  and the references and ground truth copied unchanged.
* sequence input (frames/ + loop_pairs.csv): ``OUT/sequence/``, the same run with frames
  ``from_frame``.. transformed (the second lap at "night"), loop_pairs.csv unchanged; and
  ``OUT/query_ref/``: refs = frames 0..from_frame-1 untouched, queries = frames from_frame.. transformed,
  ground_truth.csv = each query's loop pairs that are refs (:func:`query_ref_truth`).

``OUT/night_proxy.json`` records source, parameters, seed and counts. Everything is written into a
temporary sibling folder that is renamed to OUT only when complete: an unreadable image or any
other error leaves nothing behind. An existing OUT is refused.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from maqbool_ros.core.data.datasets import read_index_lists
from maqbool_ros.core.data.photometric import NightParams, image_rng, night_transform
from maqbool_ros.core.images.io import list_images, read_image

MANIFEST = "night_proxy.json"
NOTE = ("photometric night/dusk PROXY (gain, gamma, colour cast, blur, noise): a dev stand-in for appearance "
        "change, not real night imagery")
_QR_HEADER = "query_index,positive_ref_indices"


def first_revisit(positives: list[np.ndarray]) -> int:
    """The first frame that lists an earlier match: where the second lap starts."""
    for i, pos in enumerate(positives):
        if len(pos):
            return i
    raise ValueError("loop_pairs.csv lists no revisit: give --from-frame")


def query_ref_truth(positives: list[np.ndarray], from_frame: int) -> list[np.ndarray]:
    """Ground truth of the query_ref split of a sequence: query q is frame from_frame + q and its
    positives are its earlier matching frames below from_frame (matches inside the second lap are
    not refs and are dropped)."""
    return [np.asarray([j for j in pos if j < from_frame], dtype=np.int64) for pos in positives[from_frame:]]


def _encode(rgb: np.ndarray, suffix: str, path: Path) -> bytes:
    """The image in its source's format (JPEG at quality 95, PNG lossless); the name is kept so the
    datasets' sorted index order stays the same."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"{path}: cannot encode the transformed image as {suffix}")
    return buf.tobytes()


def _write_truth(path: Path, header: str, rows: list[np.ndarray]) -> None:
    lines = [header] + [f"{i},{' '.join(str(int(j)) for j in pos)}" for i, pos in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


class _Writer:
    """Reads, transforms and writes images into a temporary tree; counts them."""

    def __init__(self, params: NightParams, seed: int, bar, max_pixels: int | None) -> None:
        self.params, self.seed, self.bar, self.max_pixels = params, seed, bar, max_pixels
        self.transformed = self.copied = 0

    def night(self, src: Path, dests: list[Path]) -> None:
        out = night_transform(read_image(src, self.max_pixels), self.params, image_rng(self.seed, src.name))
        data = _encode(out, src.suffix, src)
        for d in dests:
            d.write_bytes(data)
        self.transformed += 1
        self.bar.update(1)

    def copy(self, src: Path, dests: list[Path]) -> None:
        read_image(src, self.max_pixels)  # refuse an unreadable image here rather than in a later eval
        for d in dests:
            shutil.copyfile(src, d)
        self.copied += 1
        self.bar.update(1)


def _sequence(src: Path, tmp: Path, w: _Writer, from_frame: int | None) -> dict:
    frames = list_images(src / "frames")
    if not (src / "loop_pairs.csv").is_file():
        raise FileNotFoundError(f"{src}: a sequence needs loop_pairs.csv beside frames/ (poses.csv is not supported "
                                "by night-proxy)")
    positives = read_index_lists(src / "loop_pairs.csv", len(frames))
    start = first_revisit(positives) if from_frame is None else int(from_frame)
    if not 1 <= start < len(frames):
        raise ValueError(f"--from-frame: {start} is outside [1, {len(frames) - 1}] ({len(frames)} frames)")
    seq, qr = tmp / "sequence", tmp / "query_ref"
    for d in (seq / "frames", qr / "ref", qr / "query"):
        d.mkdir(parents=True)
    for i, f in enumerate(frames):
        if i < start:
            w.copy(f, [seq / "frames" / f.name, qr / "ref" / f.name])
        else:
            w.night(f, [seq / "frames" / f.name, qr / "query" / f.name])
    shutil.copyfile(src / "loop_pairs.csv", seq / "loop_pairs.csv")
    truth = query_ref_truth(positives, start)
    _write_truth(qr / "ground_truth.csv", _QR_HEADER, truth)
    return {"kind": "sequence", "from_frame": start, "datasets": ["sequence", "query_ref"], "frames": len(frames),
            "queries_with_a_positive": sum(1 for p in truth if len(p))}


def _query_ref(src: Path, tmp: Path, w: _Writer) -> dict:
    refs, queries = list_images(src / "ref"), list_images(src / "query")
    read_index_lists(src / "ground_truth.csv", len(queries))  # refuse a bad ground truth before any work
    qr = tmp / "query_ref"
    for d in (qr / "ref", qr / "query"):
        d.mkdir(parents=True)
    for f in refs:
        w.copy(f, [qr / "ref" / f.name])
    for f in queries:
        w.night(f, [qr / "query" / f.name])
    shutil.copyfile(src / "ground_truth.csv", qr / "ground_truth.csv")
    return {"kind": "query_ref", "datasets": ["query_ref"], "refs": len(refs), "queries": len(queries)}


def _count(src: Path) -> int:
    if (src / "query").is_dir() and (src / "ref").is_dir():
        return len(list_images(src / "query")) + len(list_images(src / "ref"))
    return len(list_images(src / "frames"))


def write_night_proxy(dataset: str | Path, out: str | Path, params: NightParams | None = None, seed: int = 0,
                      from_frame: int | None = None, progress: bool = True, max_pixels: int | None = None) -> dict:
    """Write the night-proxy copy of ``dataset`` to ``out`` (module docstring); returns the manifest."""
    from tqdm import tqdm

    src, out = Path(dataset), Path(out)
    params = params or NightParams()
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"--out: {out} already exists (night-proxy never overwrites; remove it or pick another)")
    if not src.is_dir():
        raise FileNotFoundError(f"--dataset: {src} is not a dataset folder")
    is_qr = (src / "query").is_dir() and (src / "ref").is_dir()
    if not is_qr and not (src / "frames").is_dir():
        raise ValueError(f"--dataset: {src} is neither query/+ref/+ground_truth.csv nor frames/+loop_pairs.csv")
    if is_qr and from_frame is not None:
        raise ValueError("--from-frame applies to a sequence (frames/); a query_ref dataset transforms its queries")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tqdm(total=_count(src), desc="night proxy", unit="img", disable=not progress) as bar:
            w = _Writer(params, seed, bar, max_pixels)
            info = _query_ref(src, tmp, w) if is_qr else _sequence(src, tmp, w, from_frame)
        manifest = {"note": NOTE, "source": str(src), "seed": int(seed), "params": params.as_dict(), **info,
                    "images_transformed": w.transformed, "images_copied": w.copied}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.rename(tmp, out)  # refuses a non-empty OUT that appeared meanwhile
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
