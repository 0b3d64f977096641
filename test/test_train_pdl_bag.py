"""`maqbool train-pdl --bag RUN`: decision-layer pairs labelled by geometric verification."""
from __future__ import annotations

import numpy as np
import pytest

from maqbool_ros.core.rerank.maqbool.training import QueryPairs


def test_label_by_verification_uses_verify_on_the_top_candidates(monkeypatch):
    import importlib

    from maqbool_ros.core.rerank.maqbool import bag_labels

    verify_mod = importlib.import_module("maqbool_ros.core.verification.verify")  # the module, not the function
    features_mod = importlib.import_module("maqbool_ros.core.verification.features")

    class Feats:
        def __init__(self, i):
            self.i = i

    class Extractor:
        def __init__(self, params=None):
            self.params = params

        def extract(self, image):
            return Feats(int(image[0, 0, 0]))

    class Result:
        def __init__(self, ok):
            self.verified = ok

    # frame i revisits frame j when they are congruent mod 5 (a stand-in for the geometry)
    monkeypatch.setattr(features_mod, "LocalFeatureExtractor", Extractor)
    monkeypatch.setattr(verify_mod, "verify", lambda q, c, cam, params=None: Result(q.i % 5 == c.i % 5))
    images = [np.full((2, 2, 3), i, np.uint8) for i in range(30)]
    pairs = [QueryPairs(25, np.array([20, 3, 15, 7, 10]), np.linspace(0.1, 0.5, 5), np.zeros(5, bool), False),
             QueryPairs(21, np.array([2, 4, 8]), np.linspace(0.1, 0.3, 3), np.ones(3, bool), True)]
    out = bag_labels.label_by_verification(images, pairs, top=3)
    assert len(out) == 2
    assert out[0].labelled.tolist() == [True, True, True, False, False]
    assert out[0].positive.tolist() == [True, False, True, False, False]  # 20, 15 verified; 3 rejected
    assert out[1].positive.tolist() == [False, False, False] and not out[1].has_positive  # old labels replaced
    with pytest.raises(ValueError, match="verify_top"):
        bag_labels.label_by_verification(images, pairs, top=0)


def test_train_pdl_bag_trains_on_verified_loops(tmp_path):
    """The synthetic loop written as a bag: train-pdl --bag labels pairs by verification only."""
    from maqbool_ros.core.data import bags
    from maqbool_ros.core.data.demo_sequence import demo_sequence
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl
    from maqbool_ros.tools.cli import main

    bag = tmp_path / "run"
    bags.write_dataset_bag(demo_sequence(), bag, storage="mcap", progress=False)
    out = tmp_path / "bag_pdl.npz"
    assert main(["train-pdl", "--bag", str(bag), "--verify-top", "3", "--out", str(out), "--quiet",
                 "--maqbool-mode", "paper", "--top-k", "20"]) == 0
    meta = load_pdl(out).meta
    assert meta["labels"] == "geometric verification of the top 3"
    assert 0 < meta["positives"] < meta["pairs"] and meta["pairs"] % 3 == 0  # 3 labelled rows per list



def test_train_pdl_needs_exactly_one_label_source(tmp_path, capsys):
    from maqbool_ros.tools.cli import main

    assert main(["train-pdl", "--out", str(tmp_path / "p.npz"), "--quiet"]) != 0
    assert "either --dataset" in capsys.readouterr().err
