"""`maqbool fit`: adapt a NetVLAD model to your environment's images (unsupervised)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit", help="adapt a NetVLAD model to a set of images (k-means centroids + PCA whitening) and export ONNX",
        description="Unsupervised adaptation, as NetVLAD initialises: k-means centroids of the backbone's local "
                    "features for the NetVLAD layer, then whitening PCA to --dim learned on VLAD descriptors of the "
                    "images and of random sub-windows of their feature maps. Deterministic for a given --seed. "
                    "Backbone weights: the ImageNet weights shipped by the installed weight packages, or the "
                    "encoder of a NetVLAD --checkpoint (VGG16).")
    p.add_argument("--images", required=True, help="image directory (all images, sorted by name) or a ROS 1/2 bag")
    p.add_argument("--topic", default=None, help="image topic when --images is a bag (default: its only image topic)")
    p.add_argument("--out", required=True, help="output ONNX model path")
    p.add_argument("--backbone", default="mobilenetv2", choices=("mobilenetv2", "efficientnet_lite0", "vgg16"),
                   help="backbone (vgg16 needs --checkpoint: no ImageNet VGG16 weights ship on PyPI)")
    p.add_argument("--checkpoint", default=None, help="Patch-NetVLAD / Nanne checkpoint whose VGG16 encoder to use")
    p.add_argument("--dim", type=int, default=512, choices=(512, 4096), help="whitened (PCA) dimension P")
    p.add_argument("--descriptor-dim", type=int, default=None,
                   help="global descriptor dims kept from the P whitened ones (default: P)")
    p.add_argument("--clusters", type=int, default=64, help="NetVLAD clusters K")
    p.add_argument("--pca-reg", type=float, default=1.0,
                   help="whitening regulariser relative to the mean eigenvalue: 0 = full whitening (needs many "
                        "images), larger = closer to plain PCA (safer with few images)")
    p.add_argument("--seed", type=int, default=0, help="random seed (k-means, sub-windows, sampling)")
    p.add_argument("--image-width", type=int, default=640, help="network input width (keep_aspect box)")
    p.add_argument("--image-height", type=int, default=480, help="network input height (keep_aspect box)")
    p.add_argument("--resize-policy", default="keep_aspect", choices=("keep_aspect", "exact", "native"))
    p.add_argument("--step", type=int, default=1, help="use every N-th image / bag message")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images (0: all)")
    p.set_defaults(func=run)


def _bag_images(path: Path, topic: str | None, step: int, limit: int) -> list:
    from maqbool_ros.core.data.bags import image_msg_to_rgb, image_topic_of, read_messages

    topic, _ = image_topic_of(path, topic)
    images = []
    for i, (_, msgtype, _, msg) in enumerate(read_messages(path, [topic])):
        if i % step == 0:
            images.append(image_msg_to_rgb(msg, msgtype))
            if limit and len(images) >= limit:
                break
    if not images:
        raise ValueError(f"{path}: topic {topic} holds no images")
    return images


def run(args: argparse.Namespace) -> int:
    import torch

    from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
    from maqbool_ros.core.descriptor.fit import fit_model
    from maqbool_ros.core.images.io import list_images

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.step < 1:
        raise ValueError("--step must be >= 1")
    src = Path(args.images)
    if src.is_dir() and not (src / "metadata.yaml").is_file():
        images = list_images(src)[:: args.step]
        if args.max_images:
            images = images[: args.max_images]
    elif src.exists():
        images = _bag_images(src, args.topic, args.step, args.max_images)
    else:
        raise FileNotFoundError(f"--images {src} does not exist")
    base = None
    if args.checkpoint:
        from maqbool_ros.core.descriptor.models.checkpoints import load_netvlad_checkpoint
        base = load_netvlad_checkpoint(args.checkpoint)
    elif args.backbone == "vgg16":
        raise ValueError("--backbone vgg16 needs --checkpoint (no ImageNet VGG16 weights are shipped)")
    size = (args.image_width, args.image_height)
    model = fit_model(images, backbone=args.backbone, pca_dim=args.dim, num_clusters=args.clusters,
                      seed=args.seed, image_size=size, resize_policy=args.resize_policy,
                      descriptor_dim=args.descriptor_dim, model=base, pca_reg=args.pca_reg)
    info = model.fit_info
    meta = model_metadata(model, fitted_on=f"maqbool fit on {src} ({info['num_images']} images, seed {args.seed}, "
                                           f"pca_rank={info['pca_rank']}/{args.dim})", image_size=size,
                          resize_policy=args.resize_policy)
    out = export_onnx(model, args.out, meta)
    if info["pca_rank"] < args.dim:
        print(f"warning: only {info['pca_rank']} of {args.dim} whitened dims are learned (too little data); "
              "the rest are zero. Use more images or --dim 512.")
    print(f"wrote {out} ({model.backbone.name}, K={args.clusters}, P={args.dim}, "
          f"{info['num_images']} images, {info['num_pca_samples']} PCA samples)")
    return 0
