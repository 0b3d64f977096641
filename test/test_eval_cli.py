"""Evaluation protocol, report files and `maqbool eval`.

The protocol tests use a tiny deterministic "thumbnail" engine (32x16 grey image as the
descriptor) through the real LoopClosurePipeline and KeyframeDatabase, and check the
resulting recall@N against a brute-force numpy computation on the same descriptors.
The end-to-end test runs the acceptance command with the real default model.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from helpers.configs import SINGLE_FRAME
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.data.datasets import load_dataset
from maqbool_ros.core.evaluation.metrics import recall_at_n
from maqbool_ros.core.types import EngineOutput


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (32, 16), interpolation=cv2.INTER_AREA)
    v = grey.astype(np.float32).ravel()
    v -= v.mean()
    return v / (np.linalg.norm(v) + 1e-12)


class ThumbnailEngine:
    """Engine stand-in: same interface as DescriptorEngine, a 512-D thumbnail descriptor (32x16 grey)."""

    metadata = {"descriptor_dim": 512, "backbone": "thumbnail"}
    head = None

    def compute(self, image_rgb: np.ndarray) -> EngineOutput:
        d = thumbnail(image_rgb)
        return EngineOutput(descriptor=d, whitened=d, feature_map=np.zeros((1, 1, 1), np.float32),
                            landmark_features=None, image=image_rgb, stride=16)


def _netvlad_config(**changes) -> MaqboolConfig:
    return MaqboolConfig(**SINGLE_FRAME).replace(method="netvlad", top_k=30, **changes)


@pytest.fixture(scope="session")
def corridor(corridor_dir):
    return load_dataset(corridor_dir)


@pytest.fixture(scope="session")
def corridor_thumbnail_run(corridor):
    from maqbool_ros.core.evaluation.protocol import evaluate_offline

    # the appearance ranking against brute force: no geometric re-ranking (verified candidates
    # first would reorder whichever queries verification confirms, docs/verification.md)
    return evaluate_offline(corridor, _netvlad_config(verification_enabled=False), engine=ThumbnailEngine(),
                            progress=False)


def test_query_ref_protocol_equals_brute_force(corridor, corridor_thumbnail_run):
    summary, records, pipeline = corridor_thumbnail_run
    refs = np.stack([thumbnail(corridor.refs[i]) for i in range(len(corridor.refs))])
    queries = np.stack([thumbnail(corridor.queries[i]) for i in range(len(corridor.queries))])
    dist = ((queries[:, None] - refs[None]) ** 2).sum(-1)
    ranked = [np.argsort(row, kind="stable")[:30] for row in dist]
    expected = recall_at_n(ranked, corridor.positives, (1, 5, 10, 20))
    for n in (1, 5, 10, 20):
        assert summary[f"recall@{n}"] == pytest.approx(expected[n])
    assert len(pipeline.database) == len(corridor.refs)  # queries were never added
    assert summary["num_queries"] == len(corridor.queries)
    assert 0.0 < summary["pr_auc"] <= 1.0
    assert {"descriptor", "search", "total"} <= set(summary["latency_ms"])
    # records hold ref indices, best first, in the brute-force order
    assert int(records[5].ranked[0]) == int(ranked[5][0])


def test_sequence_protocol_respects_exclusion_window(rtabmap_loop_dir):
    from maqbool_ros.core.evaluation.protocol import evaluate_offline

    seq = load_dataset(rtabmap_loop_dir)
    n_excl = 12
    # the appearance ranking against brute force: no geometric re-ranking (docs/verification.md)
    cfg = _netvlad_config(exclude_recent_keyframes=n_excl, exclude_recent_seconds=0.0, verification_enabled=False)
    summary, records, _ = evaluate_offline(seq, cfg, engine=ThumbnailEngine(), progress=False)
    desc = np.stack([thumbnail(seq.frames[i]) for i in range(len(seq.frames))])
    ranked = []
    for i in range(len(desc)):
        allowed = np.arange(0, max(0, i - n_excl))  # frames older than the last n_excl
        d = ((desc[allowed] - desc[i]) ** 2).sum(-1)
        ranked.append(allowed[np.argsort(d, kind="stable")][:30])
        assert set(records[i].ranked.tolist()) == set(ranked[-1].tolist())
    expected = recall_at_n(ranked, seq.positives, (1, 5))
    assert summary["recall@1"] == pytest.approx(expected[1])
    assert summary["num_queries"] == 84 and summary["num_queries_with_revisit"] == 44


def test_report_files(corridor, corridor_thumbnail_run, tmp_path):
    from maqbool_ros.core.evaluation import report as eval_report

    summary, records, _ = corridor_thumbnail_run
    report = eval_report.build_report(summary, dataset=corridor, method="netvlad", mode="offline",
                                      config=_netvlad_config().to_dict(), command="maqbool eval test")
    eval_report.write_json(report, tmp_path / "r.json")
    eval_report.write_csv(corridor, records, tmp_path / "r.csv")
    plots = eval_report.write_plots(report, records, tmp_path / "plots")
    data = json.loads((tmp_path / "r.json").read_text())
    for key in ("recall@1", "recall@5", "recall@10", "recall@20", "pr_auc", "max_recall_at_100_precision",
                "latency_ms", "num_queries", "method", "dataset", "config", "command", "git_commit", "version"):
        assert key in data, key
    assert data["config"]["method"] == "netvlad"
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert len(rows) == 1 + len(corridor.queries)
    correct = sum(int(r.split(",")[4]) for r in rows[1:])
    assert correct / len(corridor.queries) == pytest.approx(summary["recall@1"])
    for p in plots:
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"


def test_records_from_candidates_filters_non_refs(corridor):
    """Online scoring: a node stores queries too; candidates that are not refs are dropped."""
    from types import SimpleNamespace as NS

    from maqbool_ros.core.evaluation.protocol import records_from_candidates

    r = len(corridor.refs)
    msg = NS(query_keyframe_id=r + 3, candidates=[NS(keyframe_id=r + 1, score=0.9), NS(keyframe_id=4, score=0.5)],
             descriptor_ms=1.0, search_ms=2.0, rerank_ms=0.0, latency_ms=5.0, reranking_complete=True, region_budget=0)
    ref_msg = NS(**{**vars(msg), "query_keyframe_id": 2})
    records = records_from_candidates(corridor, [ref_msg, msg])
    assert len(records) == len(corridor.queries)
    assert records[3].ranked.tolist() == [4] and records[3].confidence == 0.5
    assert records[0].ranked.size == 0 and records[0].confidence == float("-inf")


def test_cli_errors(tmp_path, capsys):
    from maqbool_ros.tools.cli import main

    assert main(["eval", "--dataset", str(tmp_path / "nope"), "--method", "netvlad"]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--dataset", str(tmp_path / "empty")]) == 2
    assert "not a dataset" in capsys.readouterr().err


def test_cli_help_explains():
    from maqbool_ros.tools.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["eval"].format_help()
    for opt in ("--dataset", "--method", "--model", "--region-budget", "--json", "--plots", "--online"):
        assert opt in text


def test_cli_acceptance_command_on_corridor(corridor_dir, tmp_path):
    """`maqbool eval --dataset corridor --method netvlad --json --plots` with the real default
    model (native 160x120 input through --config, to keep the test short)."""
    from maqbool_ros.core.config import plain_yaml
    from maqbool_ros.tools.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(plain_yaml(MaqboolConfig(resize_policy="native")))
    out, plots = tmp_path / "out.json", tmp_path / "plots"
    assert main(["eval", "--dataset", str(corridor_dir), "--method", "netvlad", "--config", str(cfg),
                 "--json", str(out), "--plots", str(plots), "--csv", str(tmp_path / "q.csv"), "--quiet"]) == 0
    report = json.loads(out.read_text())
    for key in ("recall@1", "recall@5", "recall@10", "pr_auc"):
        assert 0.0 <= report[key] <= 1.0
    assert report["recall@1"] > 0.3  # far above chance (3/111) on this easy corridor set
    assert {"p50", "p95"} <= set(report["latency_ms"]["total"])
    assert report["model"]["backbone"] and report["config"]["resize_policy"] == "native"
    assert report["command"].startswith(f"maqbool eval --dataset {corridor_dir} --method netvlad")
    assert report["git_commit"] and report["version"] and report["mode"] == "offline"
    assert sorted(p.name for p in plots.iterdir()) == ["latency.png", "pr_curve.png", "recall_at_n.png"]


# The bag's images carry the keyframe id in header.frame_id: the node reads plain images.
ROUND_TRIP_CFG = MaqboolConfig(**SINGLE_FRAME, input_type="image", keyframe_id_source="frame_id", method="netvlad",
                               resize_policy="native", top_k=20, queue_size=50)


def test_round_trip_images_bag_node_eval(corridor_dir, corridor, tmp_path):
    """images -> bag (db3, mcap) -> the same frames and ground truth read back from both; then
    mcap (ROS 2's default storage) -> play -> maqbool-node -> recorded candidates -> eval gives
    the offline recall@1 (and recall@5). Player and recorder read and write both storages
    through the same rosbags calls, so one node pass covers them."""
    pytest.importorskip("maqbool_ros.ros.node", reason="the node module is not there yet")
    import signal
    import subprocess
    import sys
    import time

    from maqbool_ros.core.config import ros_params_yaml
    from maqbool_ros.core.evaluation.protocol import evaluate_offline, protocol_config
    from maqbool_ros.tools.cli import main

    for storage in ("sqlite3", "mcap"):
        bag = tmp_path / f"bag_{storage}"
        assert main(["bag", "from-images", "--dataset", str(corridor_dir), "--out", str(bag),
                     "--storage", storage]) == 0
        back = load_dataset(bag)
        assert back.kind == "query_ref" and len(back.refs) == len(corridor.refs)
        assert [p.tolist() for p in back.positives] == [p.tolist() for p in corridor.positives]
        for mine, read in ((corridor.refs, back.refs), (corridor.queries, back.queries)):
            assert all(np.array_equal(mine[i], read[i]) for i in range(len(mine))), storage
    cfg = protocol_config(corridor, ROUND_TRIP_CFG)
    offline, _, _ = evaluate_offline(corridor, cfg, progress=False)
    storage = "mcap"
    bag, rec = tmp_path / f"bag_{storage}", tmp_path / f"rec_{storage}"
    params, log = tmp_path / f"node_{storage}.yaml", tmp_path / f"node_{storage}.log"
    params.write_text(ros_params_yaml(cfg))
    node = subprocess.Popen([sys.executable, "-c",
                             "import sys; from maqbool_ros.ros.node import main; sys.exit(main())",
                             "--ros-args", "--params-file", str(params)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    recorder = subprocess.Popen([sys.executable, "-m", "maqbool_ros.tools.cli", "bag", "record-candidates",
                                 "--out", str(rec), "--count", str(len(corridor.refs) + len(corridor.queries)),
                                 "--storage", storage], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert recorder.stdout.readline().startswith("recording")
        time.sleep(2.0)  # let the recorder's subscription match the node's publisher
        online_json = tmp_path / f"online_{storage}.json"
        assert main(["eval", "--dataset", str(bag), "--online", "--json", str(online_json), "--quiet"]) == 0, \
            log.read_text()[-3000:]
        online = json.loads(online_json.read_text())
        assert online["mode"] == "online" and online["num_queries"] == len(corridor.queries)
        assert online["recall@1"] == pytest.approx(offline["recall@1"], abs=1e-9)
        assert online["recall@5"] == pytest.approx(offline["recall@5"], abs=1e-9)
        assert recorder.wait(timeout=60) == 0
        recorded_json = tmp_path / f"recorded_{storage}.json"
        assert main(["eval", "--dataset", str(bag), "--candidates", str(rec), "--json", str(recorded_json)]) == 0
        assert json.loads(recorded_json.read_text())["recall@1"] == pytest.approx(offline["recall@1"], abs=1e-9)
    finally:
        for proc in (recorder, node):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_demo_runs_on_embedded_sequence_through_the_node(capsys):
    """`maqbool demo` with no data: the synthetic sequence through the real node, labelled."""
    from maqbool_ros.tools.cli import main

    assert main(["demo", "--method", "netvlad"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "runner node" in out
    assert "truth [" in out and " ok " in out  # candidates printed against the ground truth
    recall_line = next(line for line in out.splitlines() if "R@1" in line)
    assert float(recall_line.split("R@1")[1].split()[0]) >= 0.8  # revisits of the synthetic loop are found


def test_results_table_marks_unavailable_methods(tmp_path):
    """benchmarks/results_table.py: a failing method becomes "n/a: reason", the rest stay."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    engine = mod.CachingEngine(ThumbnailEngine())
    img = np.full((8, 8, 3), 7, np.uint8)
    assert engine.compute(img) is engine.compute(img.copy()) and len(engine.first_pass_ms) == 1
    summary = {"recall@1": 0.5, "recall@5": 0.75, "recall@10": 1.0, "recall@20": 1.0, "pr_auc": 0.4,
               "max_recall_at_100_precision": 0.25, "latency_ms": {"rerank": {"p50": 3.0}},
               "num_incomplete_reranks": 1, "num_queries": 4}
    rows = [("corridor | default | 512", "netvlad", None, None, summary, ""),
            ("corridor | default | 512", "maqbool", 5, "paper", None, "FileNotFoundError: no | decision layer")]
    out = tmp_path / "results.md"
    mod.write_markdown(out, rows, ["a note"], {"cpu": "cpu", "cores": 2, "python": "3", "libraries": {}},
                       "abc", MaqboolConfig())
    text = out.read_text()
    assert ("| corridor | default | 512 | netvlad | — | 0.500 | 0.750 | 1.000 | 1.000 | 0.400 | 0.250 | 3.0 "
            "| 1/4 |") in text
    assert "n/a: FileNotFoundError: no / decision layer" in text
    assert "python benchmarks/results_table.py" in text


def test_cli_maqbool_with_conv_landmark_regions(gardens_dir, tmp_path):
    """`--method maqbool --regions conv_landmarks` (issue 6's interface) runs end to end."""
    import json

    from maqbool_ros.tools.cli import main

    out = tmp_path / "lm.json"
    assert main(["eval", "--dataset", str(gardens_dir), "--method", "maqbool", "--regions", "conv_landmarks",
                 "--region-budget", "10", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["config"]["region_source"] == "conv_landmarks" and report["config"]["method"] == "maqbool"
    assert report["num_queries"] == 10 and 0.0 <= report["recall@1"] <= report["recall@5"] <= 1.0
    assert report["region_budget_used"]["mean"] == 10
