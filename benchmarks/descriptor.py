"""Descriptor engine speed: ms per image (median of --repeats after --warmup runs).

    python -m benchmarks.descriptor [--device cpu|cuda|tensorrt|auto] [--fp16] [--repeats 20]
        [--backbones mobilenetv2 efficientnet_lite0 vgg16] [--sizes 640x480 480x360] [--vgg-pca 4096]

Rows: the embedded default model (mobilenetv2), efficientnet_lite0 and VGG16 (K=64,
WPCA to --vgg-pca) with random NetVLAD/VGG weights (timing does not depend on values).
"network" is the onnxruntime run; "total" adds validation, resize and output copies
(DescriptorEngine.compute on a 640x480 RGB frame).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "2")


def model_for(backbone: str, tmp: Path, vgg_pca: int) -> Path:
    from maqbool_ros.core.descriptor.default_model import default_model_path
    from maqbool_ros.core.descriptor.export import export_onnx, model_metadata
    from maqbool_ros.core.descriptor.models.checkpoints import load_imagenet_backbone
    from maqbool_ros.core.descriptor.models.netvlad import NetVLADModel

    if backbone == "mobilenetv2":
        return default_model_path()
    out = tmp / f"{backbone}_{vgg_pca if backbone == 'vgg16' else 512}.onnx"
    if out.is_file():  # --model-dir: exported by an earlier call
        return out
    tmp.mkdir(parents=True, exist_ok=True)
    model = NetVLADModel(backbone, 64, vgg_pca if backbone == "vgg16" else 512).eval()
    if backbone != "vgg16":
        load_imagenet_backbone(model, backbone)
    return export_onnx(model, out, model_metadata(model, "benchmark (random head)"))


def time_engine(engine, w: int, h: int, warmup: int, repeats: int) -> tuple[float, float]:
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    net, total = [], []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        engine.compute(frame)
        if i >= warmup:
            total.append((time.perf_counter() - t) * 1e3)
            net.append(engine.last_timings_ms["network"])
    return statistics.median(net), statistics.median(total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "tensorrt"))
    ap.add_argument("--fp16", action="store_true", help="fp16 on GPU (ignored on CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backbones", nargs="+", default=["mobilenetv2", "efficientnet_lite0", "vgg16"])
    ap.add_argument("--sizes", nargs="+", default=["640x480", "480x360"])
    ap.add_argument("--vgg-pca", type=int, default=4096, choices=(512, 4096))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="keep the exported models here and reuse them (default: a temporary folder)")
    args = ap.parse_args()

    import onnxruntime as ort

    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.evaluation.machine import machine_line

    print(f"machine: {machine_line('onnxruntime', 'torch')}; providers: {', '.join(ort.get_available_providers())}")
    print(f"device={args.device} fp16={args.fp16} threads={args.threads} median of {args.repeats} after "
          f"{args.warmup} warm-up runs")
    print("| backbone | input | network ms | total ms | model MB | provider |")
    print("|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones:
            path = model_for(backbone, args.model_dir or Path(tmp), args.vgg_pca)
            size_mb = path.stat().st_size / 2**20
            for size in args.sizes:
                w, h = (int(v) for v in size.split("x"))
                engine = DescriptorEngine(path, device=args.device, fp16=args.fp16, image_size=(w, h),
                                          resize_policy="exact", threads=args.threads)
                net, total = time_engine(engine, w, h, args.warmup, args.repeats)
                print(f"| {backbone} | {w}x{h} | {net:.1f} | {total:.1f} | {size_mb:.0f} | "
                      f"{engine.providers[0]} |", flush=True)
                rows.append(dict(backbone=backbone, input=f"{w}x{h}", device=args.device, fp16=engine.fp16,
                                 provider=engine.providers[0], network_ms=net, total_ms=total))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
