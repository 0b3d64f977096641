"""Issue #15 acceptance: `maqbool train-pdl --bag` on a real looping run, judged on another real set.

rtabmap_loop (one indoor run with a real loop) is written as a ROS 2 bag; the decision layer
is trained from that bag alone (labels = geometric verification of each frame's top
candidates, no ground truth), then both it and the embedded default layer re-rank the
corridor set, which neither has seen. The adapted layer must not be worse there.
"""
from __future__ import annotations

import json


def _corridor_recall_at_1(corridor_dir, tmp_path, name: str, pdl_path: str = "") -> dict:
    from maqbool_ros.tools.cli import main

    cfg = tmp_path / f"{name}.yaml"
    # the longest deadline the schema allows: a loaded CI machine must not cut one run's re-ranking short
    cfg.write_text("rerank.deadline_ms: 60000\n" + (f"maqbool.pdl_path: '{pdl_path}'\n" if pdl_path else ""))
    out = tmp_path / f"{name}.json"
    assert main(["eval", "--dataset", str(corridor_dir), "--method", "maqbool", "--config", str(cfg),
                 "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


def test_layer_trained_from_a_bag_is_not_worse_than_the_default_elsewhere(rtabmap_loop_dir, corridor_dir,
                                                                          tmp_path):
    from maqbool_ros.core.data import bags
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl
    from maqbool_ros.tools.cli import main

    bag = tmp_path / "rtabmap_run"
    bags.write_dataset_bag(load_dataset(rtabmap_loop_dir), bag, storage="mcap", progress=False)
    layer = tmp_path / "bag_layer.npz"
    assert main(["train-pdl", "--bag", str(bag), "--verify-top", "5", "--out", str(layer), "--quiet"]) == 0

    meta = load_pdl(layer).meta
    assert meta["labels"] == "geometric verification of the top 5"
    assert meta["mode"] == "scale_free"
    # verification found loops and rejected candidates: both classes come from the bag alone
    assert 0 < meta["positives"] < meta["pairs"]

    default = _corridor_recall_at_1(corridor_dir, tmp_path, "default")
    adapted = _corridor_recall_at_1(corridor_dir, tmp_path, "adapted", str(layer))
    assert adapted["config"]["pdl_path"] == str(layer)
    assert adapted["num_queries"] == default["num_queries"] == 111
    assert adapted["recall@1"] >= default["recall@1"], (adapted["recall@1"], default["recall@1"])
