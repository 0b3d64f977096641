"""DescriptorEngine, the embedded default model, fitting and image handling."""
from __future__ import annotations

import numpy as np
import pytest

from maqbool_ros.core.descriptor.engine import DescriptorEngine, choose_providers
from maqbool_ros.core.descriptor.fit import fit_model, pca_whitening
from maqbool_ros.core.images.io import as_rgb_uint8, list_images, read_image, resize_for_network


@pytest.fixture(scope="session")
def default_engine() -> DescriptorEngine:
    return DescriptorEngine(None, device="cpu")  # builds the default into MAQBOOL_CACHE_DIR (conftest)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_default_engine_outputs_and_head_reproduce_descriptor(default_engine):
    e = default_engine
    out = e.compute(_rgb(120, 160))
    assert out.image.shape == (480, 640, 3) and out.stride == 16 == e.metadata["stride"]
    assert out.descriptor.shape == (e.head.descriptor_dim,) == (512,)
    assert out.whitened.shape == (e.head.output_dim,)
    assert out.feature_map.shape == (e.head.feature_dim, 30, 40) == out.landmark_features.shape
    assert abs(np.linalg.norm(out.descriptor) - 1) < 1e-5 and abs(np.linalg.norm(out.whitened) - 1) < 1e-5
    h = e.head
    feats = out.feature_map.reshape(out.feature_map.shape[0], -1).T
    whitened = h.whiten(h.normalize_vlad(h.residual_sums(feats)[None]))
    np.testing.assert_allclose(whitened[0], out.whitened, atol=1e-5)
    np.testing.assert_allclose(h.global_from_whitened(whitened)[0], out.descriptor, atol=1e-5)
    assert e.metadata["backbone"] == "mobilenetv2" and "environment-agnostic" in e.metadata["fitted_on"]


def test_engine_input_handling(default_engine):
    e = default_engine
    gray = _rgb(60, 80)[:, :, 0]
    np.testing.assert_array_equal(e.compute(gray).descriptor, e.compute(np.repeat(gray[:, :, None], 3, 2)).descriptor)
    for bad, word in ((np.zeros((0, 10, 3), np.uint8), "empty"), (np.zeros((10, 10, 3), np.float32), "uint8"),
                      (np.full((10, 10, 3), np.nan, np.float32), "NaN"), (np.zeros((4, 10, 10), np.uint8), "shape"),
                      ([[1, 2]], "numpy")):
        with pytest.raises(ValueError, match=word):
            e.compute(bad)


def test_resize_policies():
    img = _rgb(120, 200)
    assert resize_for_network(img, (640, 480), "keep_aspect").shape == (384, 640, 3)
    assert resize_for_network(img, (640, 480), "exact").shape == (480, 640, 3)
    assert resize_for_network(img, (640, 480), "native") is img
    with pytest.raises(ValueError, match="resize_policy"):
        resize_for_network(img, (640, 480), "stretch")
    with pytest.raises(ValueError, match="smaller"):
        resize_for_network(_rgb(8, 8), (640, 480), "native")


def test_provider_choice():
    cpu = ["CPUExecutionProvider"]
    allp = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", cpu) == cpu
    assert choose_providers("auto", allp) == allp
    assert choose_providers("cuda", allp) == allp[1:]
    with pytest.raises(ValueError, match="CUDAExecutionProvider"):
        choose_providers("cuda", cpu)
    with pytest.raises(ValueError, match="device"):
        choose_providers("gpu", cpu)


def test_engine_rejects_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_path"):
        DescriptorEngine(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="model_path"):
        DescriptorEngine(tmp_path / "junk.onnx")


def test_pca_whitening_whitens_and_handles_rank_deficiency():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 32)) * np.linspace(5, 0.5, 32)
    w, b, rank = pca_whitening(x.astype(np.float32), 16, reg=0.0)
    y = x @ w.T + b
    assert rank == 16
    np.testing.assert_allclose(np.cov(y.T), np.eye(16), atol=1e-3)
    few = rng.normal(size=(10, 64)).astype(np.float32)
    w, b, rank = pca_whitening(few, 32)
    assert rank == 9 and np.all(w[9:] == 0) and np.isfinite(w).all()


def test_fit_is_deterministic_and_learns_centroids(tmp_path):
    images = [_rgb(96, 128, seed=i) for i in range(4)]
    a = fit_model(images, pca_dim=64, num_clusters=8, seed=1, image_size=(128, 96), progress=False)
    b = fit_model(images, pca_dim=64, num_clusters=8, seed=1, image_size=(128, 96), progress=False)
    for name in ("centroids", "assign_weight", "pca_weight", "pca_bias"):
        np.testing.assert_array_equal(getattr(a, name).detach().numpy(), getattr(b, name).detach().numpy())
    assert a.fit_info["pca_rank"] == 64


def test_fit_cli_on_a_folder(tmp_path):
    import cv2

    from maqbool_ros.tools.cli import main

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), _rgb(64, 96, seed=i))
    (folder / "notes.txt").write_text("ignored")
    assert [p.name for p in list_images(folder)] == ["000.png", "001.png", "002.png"]
    out = tmp_path / "fitted.onnx"
    assert main(["fit", "--images", str(folder), "--out", str(out), "--dim", "512", "--clusters", "16",
                 "--image-width", "96", "--image-height", "64"]) == 0
    e = DescriptorEngine(out, device="cpu", image_size=(96, 64))
    assert e.metadata["num_clusters"] == 16 and "maqbool fit" in e.metadata["fitted_on"]
    assert e.compute(read_image(folder / "000.png")).descriptor.shape == (512,)
    assert main(["fit", "--images", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "x.png")
    (tmp_path / "bad.jpg").write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match="decoded"):
        read_image(tmp_path / "bad.jpg")
    assert as_rgb_uint8(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)


def test_default_model_ranks_real_revisits(default_engine, rtabmap_loop_dir):
    """On the real loop sequence (no fitting), revisit frames find their earlier place
    far more often than chance among frames at least 20 frames older."""
    files = list_images(rtabmap_loop_dir / "frames")
    pairs = {}
    for line in (rtabmap_loop_dir / "loop_pairs.csv").read_text().splitlines()[1:]:
        q, pos = line.split(",", 1)
        pairs[int(q)] = {int(v) for v in pos.split()}
    desc = np.stack([default_engine.compute(read_image(f)).descriptor for f in files])
    hits, chance = [], []
    for q, pos in pairs.items():
        older = np.arange(0, q - 20)
        if len(older) == 0 or not pos & set(older):
            continue
        best = older[np.argmin(((desc[older] - desc[q]) ** 2).sum(1))]
        hits.append(best in pos)
        chance.append(len(pos & set(older)) / len(older))
    assert len(hits) >= 20
    assert np.mean(hits) > 2 * np.mean(chance) and np.mean(hits) > 0.4


def test_fit_cli_on_a_ros2_bag(tmp_path):
    from maqbool_ros.core.data.bags import BagWriter, rgb_to_image_msg
    from maqbool_ros.tools.cli import main

    bag = tmp_path / "frames_bag"
    with BagWriter(bag) as writer:
        for i in range(3):
            writer.write("/cam/image", "sensor_msgs/msg/Image", (i + 1) * 10**9,
                         rgb_to_image_msg(_rgb(64, 96, seed=10 + i), float(i + 1), "cam"))
    out = tmp_path / "bag.onnx"
    assert main(["fit", "--images", str(bag), "--topic", "/cam/image", "--out", str(out), "--clusters", "8",
                 "--image-width", "96", "--image-height", "64"]) == 0
    assert DescriptorEngine(out, device="cpu").metadata["num_clusters"] == 8
    assert main(["fit", "--images", str(bag), "--topic", "/absent", "--out", str(out)]) == 2
