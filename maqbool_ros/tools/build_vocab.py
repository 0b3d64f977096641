"""`maqbool build-vocab`: visual-word vocabulary + IDF for the ConvNet-landmark re-ranker."""
from __future__ import annotations

import argparse
from pathlib import Path

from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args

HELP = "Build a ConvNet-landmark vocabulary (k-means words + IDF weights) from training images."
DESCRIPTION = (
    "Mines the top-M landmark regions of every image with the descriptor model (one forward "
    "pass each), clusters their pooled vectors into N visual words with k-means (faiss) and "
    "computes IDF weights W_c = ln(K / n_c) (K images, n_c images holding word c). Use images "
    "that are NOT in your test set (e.g. a separate run of the deployment environment); the "
    "paper used 5000 images and 10000 words. Writes a pickle-free .npz for the vocab_path "
    "parameter (method: landmarks). Use the node's config (--config) so model, image size and "
    "regions match the deployment.")


def register(subparsers) -> None:
    p = subparsers.add_parser("build-vocab", help=HELP, description=DESCRIPTION)
    p.add_argument("--images", required=True,
                   help="image folder (searched recursively, sorted by path) or a ROS bag (.bag, .db3, .mcap, or a "
                        "bag folder)")
    p.add_argument("--words", type=int, required=True, help="vocabulary size N (k-means clusters)")
    p.add_argument("--out", required=True, help="output .npz file")
    add_common_options(p, model=True, dim=True)
    add_config_options(p, "landmarks_max_regions", "device", "image_width", "image_height", "resize_policy",
                       aliases={"landmarks_max_regions": ("--max-regions",), "image_width": ("--width",),
                                "image_height": ("--height",)})
    p.add_argument("--image-topic", default=None, help="image topic when --images is a bag with several")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images (0: all)")
    p.add_argument("--niter", type=int, default=20, help="k-means iterations (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maqbool_ros.core.data.sources import image_loaders
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.landmarks import LandmarkReranker
    from maqbool_ros.core.rerank.landmarks.vocab_fit import train_vocabulary

    if args.words < 2:
        raise ValueError(f"--words: need at least 2 words, got {args.words}")
    cfg = config_from_args(args)
    images = image_loaders(args.images, args.image_topic, limit=args.max_images)
    engine = DescriptorEngine.from_config(cfg, progress=not args.quiet)
    miner = LandmarkReranker(cfg)
    vectors = []
    for load in tqdm(images, desc="mining regions", unit="img", disable=args.quiet):
        vectors.append(miner.regions(engine.compute(load()))[1])
    total = sum(len(v) for v in vectors)
    print(f"{len(vectors)} images, {total} region vectors of dim {vectors[0].shape[1]}; "
          f"k-means with {args.words} words ...")
    vocab = train_vocabulary(vectors, args.words, niter=args.niter, seed=args.seed, verbose=False)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocab.save(out)
    print(f"wrote {out}: {vocab.num_words} words x {vocab.dim} dims, IDF over {vocab.num_images} images "
          f"(weights {vocab.idf.min():.2f}..{vocab.idf.max():.2f})")
    return 0
