"""The descriptor dimension is resolved in one place (DescriptorEngine.from_config):
descriptor_dim 0 (the default) takes the model's own dimension from its ONNX metadata, a
non-zero one picks the default model's size or must match the given model (issue #17.1,
issue #12.2). Tiny random-weight models keep this fast."""
from __future__ import annotations

import json

import pytest

from helpers.tiny_models import IMAGE_SIZE, small_config, tiny_model, tiny_query_ref
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.tools.cli import main


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {dim: tiny_model(root / f"tiny_{dim}.onnx", dim) for dim in (512, 4096)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_query_ref(tmp_path_factory.mktemp("tiny_ds"))


@pytest.fixture
def default_models(models, monkeypatch):
    """The embedded default model of each size is a tiny one; records which sizes were asked for."""
    from maqbool_ros.core import artifacts

    asked = []

    def fake_default_model_file(descriptor_dim=512, backbone="mobilenetv2"):
        asked.append(descriptor_dim)
        return models[descriptor_dim]

    monkeypatch.setattr(artifacts, "default_model_file", fake_default_model_file)
    return asked


def _cfg(**fields) -> MaqboolConfig:
    return MaqboolConfig(image_width=IMAGE_SIZE[0], image_height=IMAGE_SIZE[1], resize_policy="exact",
                         device="cpu", **fields)


def test_factory_takes_the_dimension_from_the_model(models):
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    assert MaqboolConfig().descriptor_dim == 0  # "the model's own"
    assert DescriptorEngine.from_config(_cfg(model_path=str(models[4096]))).descriptor_dim == 4096
    assert DescriptorEngine.from_config(_cfg(model_path=str(models[4096]), descriptor_dim=4096)).descriptor_dim == 4096
    with pytest.raises(ValueError, match="descriptor_dim: config asks for 512-D .* 4096-D"):
        DescriptorEngine.from_config(_cfg(model_path=str(models[4096]), descriptor_dim=512))


def test_factory_picks_the_default_model_size(default_models):
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    assert DescriptorEngine.from_config(_cfg()).descriptor_dim == 512
    assert DescriptorEngine.from_config(_cfg(descriptor_dim=4096)).descriptor_dim == 4096
    assert default_models == [512, 4096]


def test_pipeline_as_the_node_builds_it_uses_the_models_dimension(models):
    """The node builds LoopClosurePipeline(config): model_path alone is enough for a 4096-D model."""
    from maqbool_ros.core.pipeline import LoopClosurePipeline

    pipeline = LoopClosurePipeline(_cfg(model_path=str(models[4096]), method="netvlad"))
    assert pipeline.engine.descriptor_dim == 4096 and pipeline.database.dim == 4096
    with pytest.raises(ValueError, match="descriptor_dim"):
        LoopClosurePipeline(_cfg(model_path=str(models[4096]), descriptor_dim=512, method="netvlad"))


def test_eval_takes_the_dimension_from_the_model(models, dataset, tmp_path, capsys):
    cfg = small_config(tmp_path / "cfg.yaml", device="cpu")
    report = tmp_path / "report.json"
    assert main(["eval", "--dataset", str(dataset), "--model", str(models[4096]), "--config", str(cfg),
                 "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["model"]["descriptor_dim"] == 4096
    capsys.readouterr()
    # only a real conflict between an explicit --dim and the model is an error
    assert main(["eval", "--dataset", str(dataset), "--model", str(models[4096]), "--config", str(cfg),
                 "--dim", "512", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "descriptor_dim" in err and "4096" in err and len(err.strip().splitlines()) == 1


def test_train_pdl_with_a_4096_config_trains_on_the_4096_model(default_models, dataset, tmp_path):
    """Bug: train-pdl ignored descriptor_dim and trained the decision layer on the 512-D default model."""
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl

    cfg = small_config(tmp_path / "cfg4096.yaml", device="cpu", descriptor_dim=4096)
    out = tmp_path / "pdl.npz"
    assert main(["train-pdl", "--dataset", str(dataset), "--out", str(out), "--config", str(cfg), "--quiet",
                 "--top-k", "3", "--region-budget", "5"]) == 0
    assert load_pdl(out).meta["descriptor_dim"] == 4096
    assert default_models == [4096]


def test_train_pdl_and_build_vocab_take_the_dimension_from_the_model(models, dataset, tmp_path):
    from maqbool_ros.core.rerank.landmarks import Vocabulary
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl

    cfg = small_config(tmp_path / "cfg.yaml", device="cpu")
    pdl = tmp_path / "pdl.npz"
    assert main(["train-pdl", "--dataset", str(dataset), "--out", str(pdl), "--config", str(cfg), "--quiet",
                 "--model", str(models[4096]), "--top-k", "3", "--region-budget", "5"]) == 0
    assert load_pdl(pdl).meta["descriptor_dim"] == 4096
    vocab = tmp_path / "vocab.npz"
    assert main(["build-vocab", "--images", str(dataset), "--words", "4", "--out", str(vocab), "--quiet",
                 "--config", str(cfg), "--model", str(models[4096]), "--max-regions", "10", "--niter", "2"]) == 0
    assert Vocabulary.load(vocab).num_images == 8  # query/ and ref/: the folder is searched recursively
    assert main(["build-vocab", "--images", str(dataset), "--words", "4", "--out", str(tmp_path / "v2.npz"),
                 "--config", str(cfg), "--model", str(models[4096]), "--dim", "512"]) == 2
    assert not (tmp_path / "v2.npz").exists()


def test_demo_takes_the_dimension_from_the_model(models, dataset, tmp_path, capsys):
    cfg = small_config(tmp_path / "cfg.yaml", device="cpu")
    assert main(["demo", "--dataset", str(dataset), "--runner", "pipeline", "--model", str(models[4096]),
                 "--config", str(cfg), "--quiet"]) == 0
    assert "R@1" in capsys.readouterr().out
