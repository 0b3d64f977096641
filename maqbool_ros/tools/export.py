"""`maqbool export`: a NetVLAD checkpoint (or a shipped ImageNet backbone) to ONNX."""
from __future__ import annotations

import argparse

from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a Patch-NetVLAD / Nanne NetVLAD checkpoint to the engine's ONNX format",
        description="Export to ONNX (opset 17, dynamic H and W) with outputs descriptor, whitened, feature_map "
                    "(conv5_3 before ReLU, stride 16) and landmark_features (conv5_2 before ReLU), plus metadata "
                    "(backbone, dims, stride, mean/std, resize policy). Patch-NetVLAD *_WPCA4096/512.pth.tar hold "
                    "their whitening PCA; a Nanne pytorch-NetVLAD checkpoint may be given a separate --pca file. "
                    "Without --checkpoint, the embedded default model is exported.")
    p.add_argument("--checkpoint", default=None, help="Patch-NetVLAD or Nanne pytorch-NetVLAD checkpoint (.pth.tar)")
    p.add_argument("--pca", default=None,
                   help="separate whitening PCA for a Nanne checkpoint (.npz weight/bias or torch file)")
    p.add_argument("--out", required=True, help="output ONNX path")
    add_common_options(p, dim=True, dim_help="Here: 0 keeps the checkpoint PCA's dimension (the embedded "
                                             "default model: 512).")
    add_config_options(p, "image_width", "image_height", "resize_policy",
                       extra_help={"image_width": "Recorded in the model's metadata."})
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from maqbool_ros.core.descriptor.export import export_checkpoint

    cfg = config_from_args(args)
    if args.checkpoint is None:
        from maqbool_ros.core.descriptor.default_model import resolve_model_path
        src = resolve_model_path("", cfg.descriptor_dim, progress=not args.quiet)
        shutil.copyfile(src, args.out)
        print(f"wrote {args.out} (embedded default model)")
        return 0
    model = export_checkpoint(args.checkpoint, args.out,
                              f"checkpoint {args.checkpoint}" + (f" + PCA {args.pca}" if args.pca else ""),
                              pca=args.pca, descriptor_dim=cfg.descriptor_dim or None,
                              image_size=(cfg.image_width, cfg.image_height), resize_policy=cfg.resize_policy)
    print(f"wrote {args.out} (vgg16, K={model.num_clusters}, P={model.output_dim}, descriptor {model.descriptor_dim})")
    return 0
