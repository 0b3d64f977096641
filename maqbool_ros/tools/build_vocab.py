"""`maqbool build-vocab`: visual-word vocabulary + IDF for the ConvNet-landmark re-ranker."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np

HELP = "Build a ConvNet-landmark vocabulary (k-means words + IDF weights) from training images."
DESCRIPTION = (
    "Mines the top-M landmark regions of every image with the descriptor model (one forward "
    "pass each), clusters their pooled vectors into N visual words with k-means (faiss) and "
    "computes IDF weights W_c = ln(K / n_c) (K images, n_c images holding word c). Use images "
    "that are NOT in your test set (e.g. a separate run of the deployment environment); the "
    "paper used 5000 images and 10000 words. Writes a pickle-free .npz for the vocab_path "
    "parameter (method: landmarks).")


def register(subparsers) -> None:
    p = subparsers.add_parser("build-vocab", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", required=True,
                   help="folder of images (searched recursively) or a ROS bag (.db3/.mcap/.bag or bag folder)")
    p.add_argument("--words", type=int, required=True, help="vocabulary size N (k-means clusters)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--model", default="", help="NetVLAD ONNX model; empty: the embedded default model")
    p.add_argument("--max-regions", type=int, default=200, help="regions M mined per image (landmarks_max_regions)")
    p.add_argument("--image-topic", default=None, help="image topic when --images is a bag with several")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images (0: all)")
    p.add_argument("--niter", type=int, default=20, help="k-means iterations")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "tensorrt"),
                   help="inference device for the descriptor model")
    p.add_argument("--width", type=int, default=640, help="network input width (image_width)")
    p.add_argument("--height", type=int, default=480, help="network input height (image_height)")
    p.add_argument("--resize-policy", default="keep_aspect", choices=("keep_aspect", "exact", "native"),
                   help="resize policy (resize_policy); use the deployment's settings")
    p.set_defaults(func=run)


def iter_images(source: str | Path, image_topic: str | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """(count, iterator of RGB images) from an image folder (recursive, sorted) or a bag."""
    from maqbool_ros.core.data.bags import is_bag
    from maqbool_ros.core.images.io import IMAGE_SUFFIXES, read_image

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"--images: {source} does not exist")
    if is_bag(source):
        from maqbool_ros.core.data import bags

        topics = bags.bag_topics(source)
        topic = bags.pick_topic(topics, image_topic, (bags.IMAGE_TYPE, bags.COMPRESSED_TYPE), "image")
        if topic is None:
            raise ValueError(f"--images: {source} has no sensor_msgs Image/CompressedImage topic")
        messages = [(msg, msgtype) for _, msgtype, _, msg in bags.read_messages(source, [topic])]
        return len(messages), (bags.image_msg_to_rgb(msg, msgtype) for msg, msgtype in messages)
    if not source.is_dir():
        raise ValueError(f"--images: {source} is neither an image folder nor a ROS bag")
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--images: {source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return len(files), (read_image(p) for p in files)


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from tqdm import tqdm

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.landmarks import LandmarkReranker, train_vocabulary

    if args.words < 2:
        raise ValueError(f"--words: need at least 2 words, got {args.words}")
    cfg = MaqboolConfig(landmarks_max_regions=args.max_regions)  # validates the range
    cfg.validate()
    count, images = iter_images(args.images, args.image_topic)
    if args.max_images > 0:
        count, images = min(count, args.max_images), islice(images, args.max_images)
    if args.model:
        model = args.model
    else:
        from maqbool_ros.core.descriptor.default_model import default_model_path

        model = default_model_path()
    engine = DescriptorEngine(model, device=args.device, image_size=(args.width, args.height),
                              resize_policy=args.resize_policy)
    miner = LandmarkReranker(cfg)
    vectors = []
    for image in tqdm(images, total=count, desc="mining regions", unit="img"):
        vectors.append(miner.regions(engine.compute(image))[1])
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
