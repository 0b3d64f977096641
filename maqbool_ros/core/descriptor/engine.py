"""DescriptorEngine: one onnxruntime session computing the global NetVLAD descriptor and
the spatial maps (for region descriptors) in one forward pass.

Providers: TensorRT -> CUDA -> CPU from what onnxruntime offers (``device`` may force one;
an absent GPU provider is an error, not a silent CPU fallback). On GPU the input/outputs
go through IO binding and fp16 is optional; on CPU fp16 is ignored (no speed-up there).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from maqbool_ros.core.config import FIELDS
from maqbool_ros.core.descriptor.netvlad_head import NetVLADHead
from maqbool_ros.core.images.io import RESIZE_POLICIES, as_rgb_uint8, resize_for_network
from maqbool_ros.core.types import EngineOutput

DEVICES = FIELDS["device"].metadata["choices"]
_PROVIDER = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Ordered onnxruntime providers for ``device`` given the available ones."""
    if device not in DEVICES:
        raise ValueError(f"device: {device!r} is not one of {list(DEVICES)}")
    if device == "auto":
        order = ["tensorrt", "cuda", "cpu"]
    else:
        if _PROVIDER[device] not in available:
            raise ValueError(f"device: {device!r} needs onnxruntime's {_PROVIDER[device]}, which is not available "
                             f"(available: {available}; install onnxruntime-gpu for CUDA/TensorRT)")
        order = {"tensorrt": ["tensorrt", "cuda", "cpu"], "cuda": ["cuda", "cpu"], "cpu": ["cpu"]}[device]
    return [_PROVIDER[d] for d in order if _PROVIDER[d] in available]


def trt_cache_dir(path: str | Path | None) -> Path:
    """The TensorRT engine folder: ``path``, or ``tensorrt/`` in the model cache when empty."""
    if path:
        return Path(path)
    from maqbool_ros.core.descriptor.cache import cache_dir
    return cache_dir() / "tensorrt"


def provider_options(providers: list[str], fp16: bool, trt_cache: str | Path | None,
                     input_hw: tuple[int, int] | None = None) -> list[dict]:
    """onnxruntime provider options, one dict per provider. TensorRT: fp16 and an engine +
    timing cache on disk (an engine build takes tens of seconds; a cached one loads in
    about a second); ``input_hw`` (a fixed network input, resize_policy exact) pins the
    optimisation profile so the engine is built once for that size."""
    out: list[dict] = []
    for p in providers:
        if p != _PROVIDER["tensorrt"]:
            out.append({})
            continue
        cache = str(trt_cache_dir(trt_cache))
        opts = {"trt_fp16_enable": bool(fp16), "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}
        if input_hw is not None:
            shape = f"image:1x3x{int(input_hw[0])}x{int(input_hw[1])}"
            opts.update(trt_profile_min_shapes=shape, trt_profile_max_shapes=shape, trt_profile_opt_shapes=shape)
        out.append(opts)
    return out


class DescriptorEngine:
    """NetVLAD descriptors + feature maps of RGB images via onnxruntime.

    model_path: ONNX file from `maqbool export` / `maqbool fit`, or a pulled registry name;
    empty or None: the default model, built beforehand by `maqbool build-defaults`.
    image_size: (width, height) used by resize_policy.
    threads: onnxruntime intra-op threads (CPU). spinning: let idle threads busy-wait
    (slightly lower latency on an otherwise idle CPU, much worse on a shared one).
    trt_engine_cache_path: where TensorRT engines are cached (empty: the model cache's).
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "auto", fp16: bool = False,
                 image_size: tuple[int, int] = (640, 480), resize_policy: str = "keep_aspect",
                 threads: int = 2, spinning: bool = False, trt_engine_cache_path: str | Path = "") -> None:
        import onnxruntime as ort

        from maqbool_ros.core.descriptor.onnx_contract import read_head_and_metadata

        if resize_policy not in RESIZE_POLICIES:
            raise ValueError(f"resize_policy: {resize_policy!r} is not one of {list(RESIZE_POLICIES)}")
        if len(image_size) != 2 or min(image_size) < 32:
            raise ValueError(f"image_size: expected (width, height) >= 32 px, got {image_size}")
        from maqbool_ros.core import artifacts

        self.model_path = artifacts.model_path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model_path: ONNX model {self.model_path} does not exist")
        model_bytes = self.model_path.read_bytes()
        self.head: NetVLADHead
        try:
            self.head, raw = read_head_and_metadata(model_bytes)
        except ValueError as exc:
            raise ValueError(f"model_path: {self.model_path} is not a readable ONNX model: {exc}") from exc
        self.metadata = _parse_metadata(raw)
        self.stride = int(self.metadata["stride"])
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.resize_policy = resize_policy
        self.providers = choose_providers(device, ort.get_available_providers())
        self.on_gpu = self.providers[0] != _PROVIDER["cpu"]
        self.fp16 = bool(fp16) and self.on_gpu
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep rather than busy-wait: the node shares the CPU with SLAM
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        fixed_hw = (self.image_size[1], self.image_size[0]) if resize_policy == "exact" else None
        options = provider_options(self.providers, self.fp16, trt_engine_cache_path, fixed_hw)
        if self.providers[0] == _PROVIDER["tensorrt"]:
            trt_cache_dir(trt_engine_cache_path).mkdir(parents=True, exist_ok=True)
        if self.fp16 and self.providers[0] == _PROVIDER["cuda"]:
            import onnx  # only here: 1-2 s of imports the CPU start-up does without
            from onnxruntime.transformers.float16 import convert_float_to_float16
            model_bytes = convert_float_to_float16(onnx.load_from_string(model_bytes),
                                                   keep_io_types=True).SerializeToString()
        self.session = ort.InferenceSession(model_bytes, opts, providers=self.providers,
                                            provider_options=options)
        self.output_names = [o.name for o in self.session.get_outputs()]
        if self.output_names[:3] != ["descriptor", "whitened", "feature_map"]:
            raise ValueError(f"model_path: {self.model_path} outputs {self.output_names}, expected "
                             "descriptor, whitened, feature_map[, landmark_features]")
        self.last_timings_ms: dict[str, float] = {}

    @classmethod
    def from_config(cls, config, progress: bool = False, **kwargs) -> DescriptorEngine:
        """The engine a MaqboolConfig describes: its model_path, or the embedded default model
        of its descriptor_dim (512-D when 0); descriptor_dim 0 takes the model's own dimension,
        a non-zero one must match the model's. kwargs: threads, spinning."""
        from maqbool_ros.core import artifacts

        path = artifacts.model_path(config.model_path, config.descriptor_dim, progress=progress)
        engine = cls(path, device=config.device, fp16=config.fp16,
                     image_size=(config.image_width, config.image_height), resize_policy=config.resize_policy,
                     trt_engine_cache_path=config.trt_engine_cache_path, **kwargs)
        check_descriptor_dim(config.descriptor_dim, engine)
        return engine

    @property
    def descriptor_dim(self) -> int:
        return int(self.metadata["descriptor_dim"])

    def prepare(self, image_rgb: np.ndarray) -> np.ndarray:
        """Validate and resize an image as `compute` does; returns (H, W, 3) uint8."""
        return resize_for_network(as_rgb_uint8(image_rgb, "image_rgb"), self.image_size, self.resize_policy,
                                  min_side=self.stride)

    def compute(self, image_rgb: np.ndarray) -> EngineOutput:
        """Descriptor, whitened descriptor and feature maps of one RGB uint8 image."""
        t0 = time.perf_counter()
        image = self.prepare(image_rgb)
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        t1 = time.perf_counter()
        outs = self._run(x)
        t2 = time.perf_counter()
        self.last_timings_ms = {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3}
        return EngineOutput(descriptor=outs[0][0], whitened=outs[1][0], feature_map=outs[2][0],
                            landmark_features=outs[3][0] if len(outs) > 3 else None,
                            image=image, stride=self.stride)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        if not self.on_gpu:
            return self.session.run(self.output_names, {"image": x})
        binding = self.session.io_binding()
        binding.bind_cpu_input("image", x)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return [np.asarray(o, dtype=np.float32) for o in binding.copy_outputs_to_cpu()]


def check_descriptor_dim(requested: int, engine) -> None:
    """Raise ValueError when an explicit descriptor_dim (non-zero) differs from the model's."""
    model_dim = int(engine.metadata["descriptor_dim"])
    if requested and int(requested) != model_dim:
        raise ValueError(f"descriptor_dim: config asks for {requested}-D but the model "
                         f"{getattr(engine, 'model_path', '')} produces {model_dim}-D descriptors "
                         "(set descriptor_dim 0 / leave --dim out to use the model's own)")


def _parse_metadata(raw: dict[str, str]) -> dict:
    """metadata_props strings -> typed values (ints, JSON lists)."""
    meta: dict = dict(raw)
    for key in ("descriptor_dim", "pca_dim", "feature_dim", "landmark_dim", "num_clusters", "stride"):
        if key in meta:
            meta[key] = int(meta[key])
    for key in ("mean", "std", "initializers"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    return meta
