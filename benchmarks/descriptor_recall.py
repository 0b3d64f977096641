"""Recall@1/5 of NetVLAD descriptors on query/ref folders after fitting on the refs.

    python -m benchmarks.descriptor_recall [--data ../shared/data] [--datasets corridor gardens_point_sample]
        [--backbones mobilenetv2 efficientnet_lite0] [--dims 512 4096]

For each dataset and backbone, the backbone's feature maps of all query and reference
images are computed once (onnxruntime, keep_aspect 640x480, as DescriptorEngine does);
for each dim, K=64 centroids + WPCA are fitted on the reference maps exactly as
`maqbool fit --images <ref> --dim <P>` does (seed 0), and descriptors come from the
fitted NetVLADHead (the same arithmetic as the exported ONNX graph, tested to 1e-5).
References are ranked by squared L2 (exact). "default" rows use the embedded default
model's head without fitting. Chance: mean positives / references (R@1), and
min(1, 5 * positives / references) (R@5).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "2")


def read_ground_truth(path: Path) -> list[set[int]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        if line.strip():
            _, pos = line.split(",", 1)
            rows.append({int(v) for v in pos.split()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=["corridor", "gardens_point_sample"])
    ap.add_argument("--backbones", nargs="+", default=["mobilenetv2", "efficientnet_lite0"])
    ap.add_argument("--dims", nargs="+", type=int, default=[512, 4096])
    args = ap.parse_args()

    import onnx
    import torch

    from maqbool_ros.core.descriptor.default_model import default_model_path
    from maqbool_ros.core.descriptor.export import read_head_and_metadata
    from maqbool_ros.core.descriptor.fit import extract_feature_maps, fit_head
    from maqbool_ros.core.descriptor.models.checkpoints import load_imagenet_backbone
    from maqbool_ros.core.descriptor.models.netvlad import NetVLADModel
    from maqbool_ros.core.images.io import list_images

    torch.set_num_threads(2)
    from maqbool_ros.core.evaluation.machine import machine_line

    print(f"machine: {machine_line('onnxruntime', 'torch')}")
    print("| dataset | backbone | P | pca rank | R@1 (512-D global) | R@5 (512-D global) "
          "| R@1 / R@5 (all P dims) | chance R@1 | chance R@5 | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    default_head = read_head_and_metadata(onnx.load(str(default_model_path())))[0]

    def recall(dq: np.ndarray, dr: np.ndarray, gt: list[set[int]]) -> tuple[float, float]:
        order = np.argsort(((dq[:, None, :] - dr[None]) ** 2).sum(-1), axis=1, kind="stable")
        return (float(np.mean([order[i, 0] in gt[i] for i in range(len(dq))])),
                float(np.mean([bool(set(order[i, :5]) & gt[i]) for i in range(len(dq))])))

    for name in args.datasets:
        root = Path(args.data) / name
        queries, refs = list_images(root / "query"), list_images(root / "ref")
        gt = read_ground_truth(root / "ground_truth.csv")
        chance1 = np.mean([len(p) for p in gt]) / len(refs)
        chance5 = np.mean([min(1.0, 5 * len(p) / len(refs)) for p in gt])
        for backbone in args.backbones:
            model = NetVLADModel(backbone, 64, 512)
            load_imagenet_backbone(model, backbone)
            qm = extract_feature_maps(model, queries, progress=False)
            rm = extract_feature_maps(model, refs, progress=False)
            heads = [("default", default_head, 0.0, default_head.output_dim)] if backbone == "mobilenetv2" else []
            for dim in args.dims:
                t0 = time.perf_counter()
                head, info = fit_head(rm, dim, 64, seed=0, descriptor_dim=512)
                heads.append((str(dim), head, time.perf_counter() - t0, info["pca_rank"]))
            for label, head, fit_s, rank in heads:
                wq = np.stack([head.describe(f) for f in qm])
                wr = np.stack([head.describe(f) for f in rm])
                g1, g5 = recall(head.global_from_whitened(wq), head.global_from_whitened(wr), gt)
                w1, w5 = recall(wq, wr, gt)
                print(f"| {name} | {backbone} | {label} | {rank} | {g1:.3f} | {g5:.3f} | {w1:.3f} / {w5:.3f} "
                      f"| {chance1:.3f} | {chance5:.3f} | {fit_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
