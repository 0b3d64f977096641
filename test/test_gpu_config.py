"""GPU execution settings, checked without a GPU: onnxruntime provider options (TensorRT engine
cache, fp16, fixed profile), FAISS GPU selection with CPU fallback, the learned-verification
device and `maqbool doctor`."""
from __future__ import annotations

import json
import sys
import types

import pytest

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.descriptor.engine import choose_providers, provider_options, trt_cache_dir

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_tensorrt_options_carry_fp16_engine_cache_and_a_fixed_profile(tmp_path):
    opts = provider_options([TRT, CUDA, CPU], fp16=True, trt_cache=tmp_path / "trt", input_hw=(480, 640))
    trt, cuda, cpu = opts
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    assert trt["trt_engine_cache_path"] == str(tmp_path / "trt") == trt["trt_timing_cache_path"]
    assert trt["trt_profile_min_shapes"] == trt["trt_profile_max_shapes"] == "image:1x3x480x640"
    assert cuda == {} and cpu == {}
    # keep_aspect: the input size follows the camera, so no profile is pinned
    assert "trt_profile_min_shapes" not in provider_options([TRT], False, tmp_path, None)[0]
    assert provider_options([TRT], False, tmp_path, None)[0]["trt_fp16_enable"] is False


def test_cpu_gets_no_gpu_options_and_the_cache_defaults_to_the_model_cache(tmp_path, monkeypatch):
    assert provider_options(choose_providers("auto", [CPU]), fp16=True, trt_cache="") == [{}]
    monkeypatch.setenv("MAQBOOL_CACHE_DIR", str(tmp_path))
    assert trt_cache_dir("") == tmp_path / "tensorrt"
    assert trt_cache_dir("/x/engines").as_posix() == "/x/engines"
    assert MaqboolConfig().trt_engine_cache_path == ""


def test_engine_on_cpu_ignores_fp16_and_passes_the_cache_path(tmp_path, monkeypatch):
    from maqbool_ros.core.descriptor import engine as engine_mod
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    seen = {}
    real = engine_mod.provider_options

    def spy(providers, fp16, trt_cache, input_hw=None):
        seen.update(providers=providers, fp16=fp16, trt_cache=trt_cache, input_hw=input_hw)
        return real(providers, fp16, trt_cache, input_hw)

    monkeypatch.setattr(engine_mod, "provider_options", spy)
    cfg = MaqboolConfig(fp16=True, trt_engine_cache_path=str(tmp_path / "e"), resize_policy="exact",
                        image_width=96, image_height=64, device="cpu")
    engine = DescriptorEngine.from_config(cfg)
    assert engine.fp16 is False and engine.providers == [CPU]
    assert seen == {"providers": [CPU], "fp16": False, "trt_cache": str(tmp_path / "e"), "input_hw": (64, 96)}
    assert not (tmp_path / "e").exists()  # nothing is created on CPU


@pytest.mark.parametrize("build,gpus,device,expected", [
    (True, 1, "auto", True), (True, 1, "cpu", False), (True, 0, "auto", False), (False, 0, "auto", False)])
def test_faiss_gpu_index_only_with_a_gpu_build_and_a_gpu(monkeypatch, build, gpus, device, expected):
    from maqbool_ros.core.database import index

    fake = types.SimpleNamespace(get_num_gpus=lambda: gpus)
    if build:
        fake.StandardGpuResources = object
    monkeypatch.setitem(sys.modules, "faiss", fake)
    assert index.gpu_available(device) is expected


def test_learned_verification_runs_on_cuda_when_torch_sees_one(monkeypatch):
    import torch

    from maqbool_ros.core.verification.learned import _device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _device(torch, "auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _device(torch, "auto").type == "cpu"


def test_doctor_reports_live_back_ends_as_text_and_json(capsys):
    import faiss
    import onnxruntime as ort

    from maqbool_ros.tools.cli import main

    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["onnxruntime"]["providers"] == ort.get_available_providers()
    assert report["faiss"]["version"] == faiss.__version__
    assert report["faiss"]["gpus"] == (faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0)
    assert set(report["torch"]) >= {"version", "cuda_available", "auto_picks"}
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime" in text and "faiss" in text and "torch" in text
