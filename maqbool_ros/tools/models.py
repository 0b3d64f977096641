"""`maqbool models list | info NAME | pull NAME`: the registry of place-trained checkpoints."""
from __future__ import annotations

import argparse
import json

from maqbool_ros.tools.options import add_common_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list, describe and pull place-trained NetVLAD checkpoints (docs/models.md)",
        description="The registry of public place-recognition checkpoints that `maqbool export` loads. `pull` "
                    "downloads one (resuming a cut transfer), checks its sha256 before anything reads it, and "
                    "exports the ONNX model into the cache; then set model_path: NAME (config, --model, ROS "
                    "parameter). The node never downloads. MAQBOOL_MODEL_REGISTRY may name an extra registry "
                    "file of the same format.")
    sub = p.add_subparsers(dest="models_command", metavar="<list|info|pull>", required=True)
    ls = sub.add_parser("list", help="the registry's models and whether each is pulled")
    ls.add_argument("--json", action="store_true", help="print the entries as JSON")
    add_common_options(ls)
    ls.set_defaults(func=run_list)
    info = sub.add_parser("info", help="every field of one model, and its local files")
    info.add_argument("name")
    add_common_options(info)
    info.set_defaults(func=run_info)
    pull = sub.add_parser("pull", help="download, verify and export one model into the cache")
    pull.add_argument("name")
    pull.add_argument("--sha256", default=None,
                      help="the checksum to require: needed for an entry whose sha256 is not confirmed; for a "
                           "confirmed entry it must equal the registry's")
    pull.add_argument("--force", action="store_true", help="export again even when the ONNX model exists")
    pull.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a transfer fails")
    add_common_options(pull)
    pull.set_defaults(func=run_pull)


def _size(entry) -> str:
    if entry.size_bytes:
        return f"{entry.size_bytes / 1e6:,.0f} MB"
    return str(entry.extra.get("size_text", "?"))


def run_list(args: argparse.Namespace) -> int:
    from maqbool_ros.core.descriptor.registry import load_registry

    entries = load_registry().values()
    if args.json:
        print(json.dumps([_as_dict(e) for e in entries], indent=2))
        return 0
    rows = [("NAME", "DIM", "TRAINED ON", "SIZE", "LICENCE", "SHA256", "PULLED")]
    for e in entries:
        sha = f"{e.sha256[:12]}... confirmed" if e.confirmed else "unconfirmed (pull --sha256)"
        rows.append((e.name, str(e.descriptor_dim), e.training_set, _size(e), e.licence, sha,
                     "yes" if e.pulled else "no"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _as_dict(entry) -> dict:
    d = {k: getattr(entry, k) for k in ("name", "title", "urls", "filename", "sha256", "confirmed", "licence",
                                         "training_set", "descriptor_dim", "layout", "size_bytes")}
    d["urls"] = list(d["urls"])
    d.update(entry.extra)
    d.update(pulled=entry.pulled, onnx_path=str(entry.onnx_path()), checkpoint_path=str(entry.checkpoint_path()))
    return d


def run_info(args: argparse.Namespace) -> int:
    from maqbool_ros.core.descriptor.registry import get_entry

    for key, value in _as_dict(get_entry(args.name)).items():
        print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from maqbool_ros.core.descriptor.download import download
    from maqbool_ros.core.descriptor.export import export_checkpoint
    from maqbool_ros.core.descriptor.registry import check_sha256, get_entry

    entry = get_entry(args.name)
    given = check_sha256(args.sha256, "--sha256") if args.sha256 else None
    if entry.sha256 and given and given != entry.sha256:
        raise ValueError(f"--sha256 {given} differs from the registry's {entry.sha256} for {entry.name}")
    sha = given or (entry.sha256 if entry.confirmed else None)
    if sha is None:
        raise ValueError(f"{entry.name}: the registry has no confirmed sha256 for this file (docs/models.md says "
                         "why); check it yourself and pass --sha256 HEX to pull it")
    if entry.pulled and not args.force:
        print(f"{entry.name}: already pulled ({entry.onnx_path()}); use model_path: {entry.name}")
        return 0
    ckpt = download(entry.urls, entry.checkpoint_path(), sha, entry.size_bytes, progress=not args.quiet,
                    timeout=args.timeout)
    print(f"{entry.name}: {ckpt} verified (sha256 {sha})")
    model = export_checkpoint(ckpt, entry.onnx_path(), f"registry model {entry.name} (sha256 {sha})")
    print(f"wrote {entry.onnx_path()} (K={model.num_clusters}, descriptor {model.descriptor_dim}); "
          f"use model_path: {entry.name}")
    return 0
