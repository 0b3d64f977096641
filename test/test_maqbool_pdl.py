"""MAQBOOL decision layer: training, pickle-free save/load round trips, predictions."""
from __future__ import annotations

import numpy as np
import pytest

from maqbool_ros.core.rerank.maqbool.features import FEATURE_DIM
from maqbool_ros.core.rerank.maqbool.pdl import NumpyForest, OnnxForest, load_pdl
from maqbool_ros.core.rerank.maqbool.pdl_fit import to_pdl, train_forest

pytestmark = pytest.mark.filterwarnings("ignore:Some inputs do not have OOB scores")


@pytest.fixture(scope="module")
def forest_and_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, FEATURE_DIM)).astype(np.float32)
    y = 1.0 + (x[:, 0] + 0.5 * x[:, 5] - x[:, 40] > 0.3)
    model = train_forest(x, y, trees=12, seed=3)
    test = rng.normal(size=(100, FEATURE_DIM)).astype(np.float32)
    return model, test


def test_training_follows_treebagger_defaults(forest_and_data):
    model, test = forest_and_data
    assert model.max_features == pytest.approx(1 / 3) and model.min_samples_leaf == 5 and model.bootstrap
    p = model.predict(test)
    assert p.min() >= 1.0 and p.max() <= 2.0 and p.std() > 0.05


def test_npz_round_trip_equals_sklearn(forest_and_data, tmp_path):
    model, test = forest_and_data
    pdl = to_pdl(model, "pdl.npz", meta={"descriptor_dim": 512, "trees": 12})
    np.testing.assert_allclose(pdl.predict(test), model.predict(test), rtol=0, atol=1e-12)
    pdl.save(tmp_path / "pdl.npz")
    loaded = load_pdl(tmp_path / "pdl.npz")
    assert isinstance(loaded, NumpyForest) and loaded.meta == {"descriptor_dim": 512, "trees": 12}
    np.testing.assert_array_equal(loaded.predict(test), pdl.predict(test))


def test_onnx_round_trip_matches_sklearn(forest_and_data, tmp_path):
    model, test = forest_and_data
    pdl = to_pdl(model, "pdl.onnx", meta={"descriptor_dim": 4096})
    np.testing.assert_allclose(pdl.predict(test), model.predict(test), atol=1e-5)
    pdl.save(tmp_path / "pdl.onnx")
    loaded = load_pdl(tmp_path / "pdl.onnx")
    assert isinstance(loaded, OnnxForest) and loaded.meta == {"descriptor_dim": 4096}
    np.testing.assert_array_equal(loaded.predict(test), pdl.predict(test))


def test_bad_inputs_give_clear_errors(forest_and_data, tmp_path):
    model, test = forest_and_data
    with pytest.raises(ValueError, match="suffix"):
        to_pdl(model, "pdl.pkl")
    with pytest.raises(FileNotFoundError, match="pdl_path"):
        load_pdl(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError):  # np.load refuses the non-zip file as pickled data
        load_pdl(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a PDL"):
        load_pdl(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="112"):
        to_pdl(model, "x.npz").predict(test[:, :50])
