"""`maqbool build-corpus`: assemble a training corpus from a declared source list."""
from __future__ import annotations

import argparse

from maqbool_ros.tools.options import add_common_options, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build-corpus", help="assemble a training corpus (for train-pdl --corpus) from a declared source list",
        description="Read a source list (JSON, e.g. config/training_corpus.json; docs/training-corpus.md) and "
                    "write each source as a dataset folder under --out: query/ + ref/ + ground_truth.csv, or "
                    "frames/ + loop_pairs.csv. Layouts: query_ref and sequence (folders already in this "
                    "project's formats) and utm_named (gmberton/VPR-datasets-downloader: images/<split>/"
                    "database and queries, UTM position in each file name; positives within radius_m, "
                    "default 25 m). A source is a local path or a git repository at a pinned commit (blobless "
                    "sparse clone, kept under OUT/.sources). Gardens Point Walking and Nordland are refused "
                    "(held out for evaluation). Every image header and the ground truth are checked before "
                    "anything is written; each dataset is renamed into place only when complete. OUT/corpus.json "
                    "records licence, provenance, origin, counts and image bytes per source. Images are "
                    "symlinks to the sources unless --link copy.")
    p.add_argument("--sources", required=True, metavar="FILE", help="the source list (JSON)")
    p.add_argument("--out", required=True, metavar="DIR", help="corpus folder to write (created if missing)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None,
                   help="build only these sources (the manifest keeps the records of others already built)")
    p.add_argument("--link", choices=("symlink", "copy"), default="symlink",
                   help="how images enter the corpus (default %(default)s: links to the source files)")
    p.add_argument("--root", metavar="DIR", default=None,
                   help="resolve the list's relative paths against DIR (default: the list file's folder)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maqbool_ros.core.data.corpus import MANIFEST, build_corpus

    cfg = config_from_args(args)  # max_image_pixels: images the node would refuse are refused here too
    manifest = build_corpus(args.sources, args.out, only=args.only, link=args.link, root=args.root,
                            max_pixels=cfg.max_image_pixels, progress=not args.quiet)
    t = manifest["totals"]
    print(f"wrote {args.out}/{MANIFEST}: {t['sources']} sources, {t['images']} images, "
          f"{t['positive_pairs']} positive pairs, {t['image_bytes'] / 1e6:.1f} MB of images")
    return 0
