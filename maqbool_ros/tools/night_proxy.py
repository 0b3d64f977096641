"""`maqbool night-proxy`: a photometric night/dusk copy of a dataset (dev proxy for appearance change)."""
from __future__ import annotations

import argparse

from maqbool_ros.tools.options import add_common_options, config_from_args

DESCRIPTION = (
    "Write a copy of a dataset folder with a seeded photometric night/dusk transform (blur, colour cast, gain, "
    "gamma, sensor noise; maqbool_ros/core/data/photometric.py) applied: to the queries of a query_ref dataset "
    "(OUT/query_ref/), or to frames --from-frame.. of a sequence (OUT/sequence/, the second lap at 'night') plus "
    "a query_ref split of it (OUT/query_ref/: refs = the untouched frames before --from-frame, queries = the "
    "transformed ones, ground truth from loop_pairs.csv). A PROXY for appearance change, not real night "
    "(docs/sequence.md, 'night proxy'). Deterministic per image for a --seed. OUT must not exist; it appears "
    "only when complete.")


def register(subparsers: argparse._SubParsersAction) -> None:
    from maqbool_ros.core.data.photometric import NIGHT

    p = subparsers.add_parser("night-proxy", help="write a photometric night/dusk copy of a dataset (dev proxy)",
                              description=DESCRIPTION)
    p.add_argument("--dataset", required=True, metavar="DIR",
                   help="query/+ref/+ground_truth.csv or frames/+loop_pairs.csv folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create (refused if it exists)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default %(default)s)")
    p.add_argument("--from-frame", type=int, default=None, metavar="N",
                   help="sequence: first transformed frame (default: the first frame with a loop pair in "
                        "loop_pairs.csv, i.e. where the second lap starts: 40 for rtabmap_loop)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="0 = identity, 1 = the night defaults below; each parameter moves linearly between them "
                        "(default %(default)s)")
    p.add_argument("--gain", type=float, default=None, help=f"exposure gain (strength 1: {NIGHT['gain']})")
    p.add_argument("--gamma", type=float, default=None, help=f"gamma exponent (strength 1: {NIGHT['gamma']})")
    p.add_argument("--noise-std", type=float, default=None,
                   help=f"Gaussian sensor noise, 8-bit units (strength 1: {NIGHT['noise_std']})")
    p.add_argument("--blur-sigma", type=float, default=None,
                   help=f"Gaussian blur sigma, pixels (strength 1: {NIGHT['blur_sigma']})")
    p.add_argument("--cast", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                   help=f"per-channel colour multipliers (strength 1: {' '.join(map(str, NIGHT['cast']))})")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maqbool_ros.core.data.night_proxy import write_night_proxy
    from maqbool_ros.core.data.photometric import NightParams

    cfg = config_from_args(args)  # max_image_pixels: images the node would refuse are refused here too
    params = NightParams.at_strength(args.strength, gain=args.gain, gamma=args.gamma, noise_std=args.noise_std,
                                     blur_sigma=args.blur_sigma, cast=args.cast)
    m = write_night_proxy(args.dataset, args.out, params, seed=args.seed, from_frame=args.from_frame,
                          progress=not args.quiet, max_pixels=cfg.max_image_pixels)
    where = f", from frame {m['from_frame']}" if "from_frame" in m else ""
    print(f"wrote {args.out}: {', '.join(m['datasets'])}; {m['images_transformed']} images transformed, "
          f"{m['images_copied']} copied{where}; params {m['params']} seed {m['seed']} (a proxy, not real night)")
    return 0
