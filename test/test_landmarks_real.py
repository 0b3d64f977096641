"""ConvNet landmarks end to end on real images: default model, pipeline, database, CLI."""
from __future__ import annotations

import numpy as np
import pytest

from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.verification.temporal import strongest_first

NUM_REFS = 40
QUERIES = range(0, 36, 4)  # queries whose positives all lie in refs 0..39


@pytest.fixture(scope="session")
def landmark_engine():
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    return DescriptorEngine(None, device="cpu")


@pytest.fixture(scope="session")
def corridor_run(corridor_dir, landmark_engine):
    """Map refs 0..39 into a landmarks pipeline, then query a few corridor queries."""
    from maqbool_ros.core.data.datasets import load_query_ref_folder
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    data = load_query_ref_folder(corridor_dir)
    cfg = MaqboolConfig(method="landmarks", top_k=20, exclude_recent_keyframes=0,
                        exclude_recent_seconds=0.0, rerank_deadline_ms=60000.0)
    pipe = LoopClosurePipeline(cfg, engine=landmark_engine)
    for i in range(NUM_REFS):
        pipe.process(data.refs[i], i, "map", float(i), add_to_database=True, query=False)
    results = {q: pipe.process(data.queries[q], 1000 + q, "query", 0.0, add_to_database=False)
               for q in QUERIES}
    return data, results


def test_real_maps_give_regions(corridor_run, landmark_engine):
    from maqbool_ros.core.rerank.landmarks import LandmarkReranker, landmark_boxes

    data, _ = corridor_run
    out = landmark_engine.compute(data.refs[0])
    assert out.landmark_features is not None and out.landmark_features.shape[1:] == out.feature_map.shape[1:]
    query, db = LandmarkReranker(MaqboolConfig(method="landmarks")).keyframe_extras(out)
    assert len(query["vectors"]) == 200 and db["lm_count"].tolist() == [200]
    boxes = query["boxes"]
    assert np.all(boxes[:, 2] <= out.image.shape[1]) and np.all(boxes[:, 3] <= out.image.shape[0])
    cells, areas, _ = landmark_boxes(np.maximum(out.feature_map, 0), out.stride)
    assert cells.shape == (50, 4) and np.all(areas >= 4 * out.stride ** 2)


def test_landmark_reranking_finds_corridor_revisits(corridor_run):
    data, results = corridor_run
    hits = 0
    for q, res in results.items():
        assert res.complete and res.method == "landmarks" and res.num_reranked == len(res)
        # best first: the verified candidates by inliers (geometric re-ranking), then the ranking
        assert strongest_first(res.checks.verified, res.checks.num_inliers) == list(range(len(res)))
        assert np.all(np.diff(res.scores[~res.checks.verified]) <= 1e-7)
        hits += bool(set(res.keyframe_ids[:5].tolist()) & set(data.positives[q].tolist()))
    assert hits >= 0.6 * len(results)


def test_build_vocab_cli(rtabmap_loop_dir, tmp_path, landmark_engine):
    from maqbool_ros.core.rerank.landmarks import Vocabulary
    from maqbool_ros.tools.cli import main

    out = tmp_path / "vocab.npz"
    args = ["build-vocab", "--images", str(rtabmap_loop_dir / "frames"), "--words", "32",
            "--max-images", "5", "--max-regions", "50", "--niter", "5", "--out", str(out)]
    assert main(args) == 0
    vocab = Vocabulary.load(out)
    assert vocab.num_words == 32 and vocab.num_images == 5
    assert vocab.dim == int(landmark_engine.metadata["landmark_dim"])
    assert np.all(vocab.idf >= 0) and vocab.idf.max() > 0
    assert main(["build-vocab", "--images", str(tmp_path / "none"), "--words", "8", "--out", str(out)]) == 2
