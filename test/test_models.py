"""Torch models, ONNX export parity and the checkpoint loaders (synthesized checkpoints)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.checkpoints import VGG_CFG, patch_netvlad_checkpoint
from helpers.checkpoints import pool_state as _pool_state
from helpers.checkpoints import vgg_encoder_state as _vgg_encoder_state
from maqbool_ros.core.descriptor.export import INITIALIZER_NAMES, export_onnx, model_metadata
from maqbool_ros.core.descriptor.models.checkpoints import load_imagenet_backbone, load_netvlad_checkpoint
from maqbool_ros.core.descriptor.models.netvlad import NetVLADModel

torch.set_num_threads(2)


def _onnx_outputs(model, tmp_path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    path = export_onnx(model, tmp_path / "m.onnx", model_metadata(model, "test"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": x})


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (1, 3, h, w)).astype(np.float32)


def _random_head(model: NetVLADModel, seed: int = 0) -> None:
    """Parameters in realistic ranges (the random init makes the softmax nearly uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        c = F.normalize(torch.randn(model.centroids.shape, generator=g), dim=1)
        model.centroids.copy_(c)
        model.assign_weight.copy_(20 * c)


@pytest.mark.parametrize("backbone,weights", [("vgg16", "random"), ("mobilenetv2", "random"),
                                              ("mobilenetv2", "imagenet"), ("efficientnet_lite0", "imagenet")])
def test_onnx_matches_torch(tmp_path, backbone, weights):
    model = NetVLADModel(backbone, num_clusters=16 if backbone == "vgg16" else 64, pca_dim=256,
                         descriptor_dim=128).eval()
    _random_head(model)
    if weights == "imagenet":
        load_imagenet_backbone(model, backbone)
    for h, w in ((96, 128), (120, 80)):  # dynamic H and W: one file, two shapes
        x = _image(h, w, seed=h)
        onnx_out = _onnx_outputs(model, tmp_path, x) if (h, w) == (96, 128) else sess_again(tmp_path, x)
        with torch.no_grad():
            ref = [t.numpy() for t in model(torch.from_numpy(x))]
        assert [o.shape for o in onnx_out] == [r.shape for r in ref]
        assert ref[2].shape[2] in (h // 16, -(-h // 16)) and ref[2].shape[3] in (w // 16, -(-w // 16))
        for o, r in zip(onnx_out, ref):
            assert np.abs(o - r).max() <= 1e-4 * max(1.0, np.abs(r).max())


def sess_again(tmp_path, x):
    import onnxruntime as ort
    return ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})


def test_torch_head_matches_numpy_head():
    model = NetVLADModel("mobilenetv2", num_clusters=8, pca_dim=64, descriptor_dim=32, assign_bias=True).eval()
    _random_head(model, seed=3)
    with torch.no_grad():
        model.assign_bias.copy_(torch.linspace(-1, 1, 8))
        fmap = torch.randn(1, 96, 5, 7)
        whitened = model.aggregate(fmap)[0].numpy()
    head = model.head()
    np.testing.assert_allclose(head.describe(fmap[0].numpy()), whitened, atol=1e-5)


def test_exported_initializers_have_stable_names(tmp_path):
    import onnx

    model = NetVLADModel("mobilenetv2", num_clusters=8, pca_dim=64).eval()
    path = export_onnx(model, tmp_path / "m.onnx", model_metadata(model, "t"))
    proto = onnx.load(str(path))
    names = {i.name for i in proto.graph.initializer}
    assert {INITIALIZER_NAMES[k] for k in ("centroids", "assign_weight", "pca_weight", "pca_bias")} <= names
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["backbone"] == "mobilenetv2" and meta["stride"] == "16" and meta["pca_dim"] == "64"


# ---- synthesized real-world checkpoints ---------------------------------------------------

def _reference(sd: dict[str, torch.Tensor], x: np.ndarray, pca: tuple | None) -> np.ndarray:
    """Independent forward pass straight from the state dict (Nanne/Patch-NetVLAD order)."""
    t = (torch.from_numpy(x) / 255.0 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    idx = 0
    for v in VGG_CFG:
        if v == "M":
            t = F.max_pool2d(t, 2)
            idx += 1
            continue
        t = F.conv2d(t, sd[f"encoder.{idx}.weight"], sd[f"encoder.{idx}.bias"], padding=1)
        idx += 2
        if idx < 29:
            t = F.relu(t)
    t = F.normalize(t, dim=1)
    a = F.softmax(F.conv2d(t, sd["pool.conv.weight"], sd.get("pool.conv.bias")).flatten(2), dim=1)  # (1,K,N)
    x_flat = t.flatten(2)
    vlad = torch.stack([(a[:, k:k + 1] * (x_flat - sd["pool.centroids"][k].view(1, -1, 1))).sum(-1)
                        for k in range(a.shape[1])], dim=1)
    vlad = F.normalize(F.normalize(vlad, dim=2).flatten(1), dim=1)
    if pca is not None:
        w, b = pca
        vlad = F.normalize(F.conv2d(vlad[:, :, None, None], w.reshape(w.shape[0], -1, 1, 1), b).flatten(1), dim=1)
    return vlad.numpy()


@pytest.fixture(scope="module")
def patch_netvlad_file(tmp_path_factory):
    k, p = 16, 512  # real files: K=64, P=4096/512; smaller K keeps the test file light
    path = tmp_path_factory.mktemp("ckpt") / "pitts30k_WPCA512.pth.tar"
    sd = patch_netvlad_checkpoint(path, k, p)
    return path, sd


def test_patch_netvlad_checkpoint(tmp_path, patch_netvlad_file):
    path, sd = patch_netvlad_file
    model = load_netvlad_checkpoint(path, descriptor_dim=256)
    x = _image(64, 96, seed=7)
    ref = _reference(sd, x, (sd["WPCA.0.weight"], sd["WPCA.0.bias"]))
    out = _onnx_outputs(model, tmp_path, x)
    np.testing.assert_allclose(out[1], ref, atol=1e-4)
    trunc = ref[:, :256] / np.linalg.norm(ref[:, :256])
    np.testing.assert_allclose(out[0], trunc, atol=1e-4)


def test_nanne_checkpoint_with_dataparallel_bias_and_separate_pca(tmp_path):
    import argparse

    k = 8
    sd = {**_vgg_encoder_state(4), **_pool_state(k, 5, bias=True)}
    saved = {k2.replace("encoder.", "encoder.module."): v for k2, v in sd.items()}  # DataParallel encoder
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 1, "state_dict": saved, "recalls": {1: 0.5}, "parsed args": argparse.Namespace(lr=1e-4)}, path)
    x = _image(48, 64, seed=9)
    model = load_netvlad_checkpoint(path)
    assert model.pca_weight is None and model.output_dim == k * 512
    np.testing.assert_allclose(_onnx_outputs(model, tmp_path, x)[0], _reference(sd, x, None), atol=1e-4)

    g = torch.Generator().manual_seed(6)
    w, b = torch.randn(512, k * 512, generator=g) / 64, torch.randn(512, generator=g) * 0.01
    np.savez(tmp_path / "pca.npz", weight=w.numpy(), bias=b.numpy())
    model = load_netvlad_checkpoint(path, tmp_path / "pca.npz")
    np.testing.assert_allclose(_onnx_outputs(model, tmp_path, x)[0], _reference(sd, x, (w, b)), atol=1e-4)


def test_bad_checkpoints_name_what_is_missing(tmp_path, patch_netvlad_file):
    path, sd = patch_netvlad_file
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot be read"):
        load_netvlad_checkpoint(truncated)
    no_centroids = tmp_path / "no_centroids.pth.tar"
    torch.save({"state_dict": {k: v for k, v in sd.items() if k != "pool.centroids"}}, no_centroids)
    with pytest.raises(ValueError, match="pool.centroids"):
        load_netvlad_checkpoint(no_centroids)
    no_conv5_3 = tmp_path / "no_conv5_3.pth.tar"
    torch.save({"state_dict": {k: v for k, v in sd.items() if not k.startswith("encoder.28.")}}, no_conv5_3)
    with pytest.raises(ValueError, match="encoder.28.weight"):
        load_netvlad_checkpoint(no_conv5_3)
    with pytest.raises(FileNotFoundError):
        load_netvlad_checkpoint(tmp_path / "absent.pth.tar")
    with pytest.raises(ValueError, match="already holds a WPCA"):
        load_netvlad_checkpoint(path, tmp_path / "pca.npz")


def test_export_cli_on_patch_netvlad_checkpoint(tmp_path, patch_netvlad_file):
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.tools.cli import main

    path, _ = patch_netvlad_file
    out = tmp_path / "vgg.onnx"
    assert main(["export", "--checkpoint", str(path), "--dim", "512", "--out", str(out)]) == 0
    engine = DescriptorEngine(out, device="cpu", image_size=(96, 64))
    res = engine.compute(np.full((64, 96, 3), 90, np.uint8))
    assert engine.metadata["backbone"] == "vgg16" and res.descriptor.shape == (512,)
    assert res.feature_map.shape == (512, 4, 6) and res.landmark_features.shape == (512, 4, 6)
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pth"), "--out", str(out)]) == 2


def test_fit_cli_starts_from_a_checkpoint_encoder(tmp_path, patch_netvlad_file):
    import cv2

    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.tools.cli import main

    path, _ = patch_netvlad_file
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    out = tmp_path / "vgg_fit.onnx"
    assert main(["fit", "--images", str(folder), "--out", str(out), "--checkpoint", str(path), "--clusters", "8",
                 "--image-width", "96", "--image-height", "64"]) == 0
    engine = DescriptorEngine(out, device="cpu", image_size=(96, 64))
    assert engine.metadata["backbone"] == "vgg16" and engine.head.centroids.shape == (8, 512)
    assert main(["fit", "--images", str(folder), "--out", str(out), "--backbone", "vgg16"]) == 2
