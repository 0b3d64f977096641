"""Which accelerators are live for each stage, read from the libraries themselves (`maqbool doctor`).

Nothing here changes a setting: it reports what onnxruntime, FAISS and torch offer in this
process and what ``device: auto`` therefore picks for the descriptor engine, the keyframe
index and learned verification (ALIKED + LightGlue).
"""
from __future__ import annotations

import importlib.metadata
from typing import Any

from maqbool_ros.core.evaluation.machine import machine_info


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def onnxruntime_report() -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not fatal
        return {"error": str(exc)}
    from maqbool_ros.core.descriptor.engine import choose_providers

    available = ort.get_available_providers()
    return {"version": ort.__version__, "device": ort.get_device(), "providers": available,
            "wheels": {d: v for d in ("onnxruntime", "onnxruntime-gpu") if (v := _dist_version(d))},
            "auto_picks": choose_providers("auto", available)}


def faiss_report() -> dict[str, Any]:
    try:
        import faiss
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)}
    gpu_build = hasattr(faiss, "StandardGpuResources")
    return {"version": faiss.__version__, "gpu_build": gpu_build,
            "gpus": int(faiss.get_num_gpus()) if gpu_build else 0,
            "wheels": {d: v for d in ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12") if (v := _dist_version(d))},
            "auto_picks": "GpuIndexFlatIP" if gpu_build and faiss.get_num_gpus() > 0 else "CPU exact scan"}


def torch_report() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)}
    cuda = bool(torch.cuda.is_available())
    return {"version": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
            "auto_picks": "cuda" if cuda else "cpu"}


def device_report() -> dict[str, Any]:
    """Versions and live accelerators: {machine, onnxruntime, faiss, torch}."""
    return {"machine": machine_info(), "onnxruntime": onnxruntime_report(), "faiss": faiss_report(),
            "torch": torch_report()}


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as short human-readable lines."""
    m, o, f, t = report["machine"], report["onnxruntime"], report["faiss"], report["torch"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}"]
    if "error" in o:
        lines.append(f"onnxruntime: does not import ({o['error']})")
    else:
        lines.append(f"onnxruntime {o['version']} ({', '.join(f'{k} {v}' for k, v in o['wheels'].items())}): "
                     f"providers {', '.join(o['providers'])}; descriptor device auto -> {o['auto_picks'][0]}")
    if "error" in f:
        lines.append(f"faiss: does not import ({f['error']})")
    else:
        lines.append(f"faiss {f['version']}: GPU build {'yes' if f['gpu_build'] else 'no'}, {f['gpus']} GPU(s); "
                     f"keyframe index (flat) -> {f['auto_picks']}")
    if "error" in t:
        lines.append(f"torch: does not import ({t['error']})")
    else:
        devs = f" ({', '.join(t['devices'])})" if t["devices"] else ""
        lines.append(f"torch {t['version']}: CUDA build {t['cuda_build'] or 'none'}, CUDA available "
                     f"{'yes' if t['cuda_available'] else 'no'}{devs}; ALIKED + LightGlue -> {t['auto_picks']}")
    return lines
