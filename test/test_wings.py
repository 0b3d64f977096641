"""Two wings (docs/architecture.md): the runtime (the node, ~/detect, the pipeline and what it
runs) imports nothing that fits, trains, exports, evaluates or reads datasets; the offline
wing imports the runtime, never the reverse. Checked statically on the import graph (lazy
imports included) and live on sys.modules in a fresh process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from test_architecture import PACKAGE, REPO, _modules, import_graph

from helpers.imports import imported_top_levels

#: The offline wing: a module is offline when its name equals or starts with one of these.
OFFLINE = (
    "maqbool_ros.tools",
    "maqbool_ros.core.data",
    "maqbool_ros.core.evaluation",
    "maqbool_ros.core.devices",
    "maqbool_ros.core.descriptor.models",
    "maqbool_ros.core.descriptor.fit",
    "maqbool_ros.core.descriptor.export",
    "maqbool_ros.core.descriptor.default_model",
    "maqbool_ros.core.descriptor.download",
    "maqbool_ros.core.rerank.maqbool.training",
    "maqbool_ros.core.rerank.maqbool.bag_labels",
    "maqbool_ros.core.rerank.maqbool.default_pdl",
    "maqbool_ros.core.rerank.maqbool.pdl_fit",
    "maqbool_ros.core.rerank.maqbool.update_fit",
    "maqbool_ros.core.rerank.landmarks.vocab_fit",
    "maqbool_ros.ros.demo_runner",
    "maqbool_ros.ros.bag_player",
    "maqbool_ros.ros.online_eval",
    "maqbool_ros.ros.recorder",
)
#: Third-party packages only the offline wing may import.
TOOLS_ONLY = {"torch", "torchvision", "sklearn", "skl2onnx", "matplotlib", "rosbags", "h5py", "gtsam", "tqdm"}
#: Optional runtime features that need the [learned] extra (torch, h5py), imported only when enabled:
#: learned verification (ALIKED + LightGlue) and region_source hed_edge_boxes.
LEARNED = {"maqbool_ros.core.verification.aliked", "maqbool_ros.core.verification.aliked_sparse",
           "maqbool_ros.core.verification.lightglue",
           "maqbool_ros.core.verification.learned", "maqbool_ros.core.rerank.regions.hed"}
LEARNED_PACKAGES = {"torch", "h5py"}
NODES = ("maqbool_ros.ros.node", "maqbool_ros.ros.rtabmap_bridge")


def is_offline(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in OFFLINE)


def _with_parents(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ too: add those edges."""
    out = {}
    for name, targets in graph.items():
        full = set(targets)
        for t in targets:
            parts = t.split(".")
            full.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in graph)
        out[name] = full - {name}
    return out


def reach(graph: dict[str, set[str]], start) -> set[str]:
    seen, stack = set(), list(start)
    while stack:
        m = stack.pop()
        if m not in seen:
            seen.add(m)
            stack.extend(graph[m])
    return seen


def test_every_offline_entry_names_modules():
    modules = _modules()
    for prefix in OFFLINE:
        assert any(m == prefix or m.startswith(prefix + ".") for m in modules), f"{prefix} names no module"


def test_the_runtime_never_imports_the_offline_wing():
    graph = _with_parents(import_graph())
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if not is_offline(m) for t in ts if is_offline(t))
    assert bad == [], "runtime modules importing the offline wing:\n" + "\n".join(bad)


def test_the_nodes_reach_no_offline_module():
    graph = _with_parents(import_graph())
    reached = reach(graph, NODES)
    assert {"maqbool_ros.core.pipeline", "maqbool_ros.core.artifacts"} <= reached
    assert sorted(m for m in reached if is_offline(m)) == []


def test_the_direction_check_catches_a_planted_edge():
    graph = {"maqbool_ros.ros.node": {"maqbool_ros.core.pipeline"},
             "maqbool_ros.core.pipeline": {"maqbool_ros.core.descriptor.fit"},
             "maqbool_ros.core.descriptor.fit": set()}
    assert [m for m in reach(graph, ["maqbool_ros.ros.node"]) if is_offline(m)] == ["maqbool_ros.core.descriptor.fit"]


def _third_party(path) -> set[str]:
    return imported_top_levels([path])


def test_runtime_modules_import_no_tools_only_package():
    bad = []
    for name, path in _modules().items():
        if is_offline(name):
            continue
        allowed = LEARNED_PACKAGES if name in LEARNED else set()
        used = (_third_party(path) & TOOLS_ONLY) - allowed
        if used:
            bad.append(f"{name}: {sorted(used)}")
    assert bad == [], "runtime modules importing offline-only packages (lazy imports included):\n" + "\n".join(bad)


PROBE = r"""
import json, sys
from maqbool_ros.ros import node  # noqa: F401 - the node module, as maqbool-node imports it
from maqbool_ros.core.config import MaqboolConfig
from maqbool_ros.core.pipeline import LoopClosurePipeline
fields = json.loads(sys.argv[1])
p = LoopClosurePipeline(MaqboolConfig(**fields))
# onnx too: the runtime reads models with core/descriptor/onnx_reader (import onnx is 1-2 s of start-up)
heavy = ("torch", "sklearn", "skl2onnx", "matplotlib", "rosbags", "h5py", "gtsam", "tqdm", "onnx")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("maqbool_ros."))))
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The default model in the cache (as `make install` leaves it) and a small decision layer file."""
    import numpy as np

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.rerank.maqbool.pdl_fit import to_pdl, train_forest
    from maqbool_ros.tools.build_defaults import ensure_defaults

    ensure_defaults(MaqboolConfig())
    x = np.random.default_rng(0).normal(size=(60, 112)).astype(np.float32)
    pdl = tmp_path_factory.mktemp("pdl") / "pdl.onnx"
    to_pdl(train_forest(x, 1.0 + (x[:, 0] > 0), trees=3), str(pdl), {"mode": "scale_free"}).save(pdl)
    return pdl


@pytest.mark.parametrize("method", ["netvlad", "maqbool", "landmarks"])
def test_node_and_pipeline_load_no_offline_package(prepared, tmp_path, method):
    fields = {"method": method, "database_path": str(tmp_path / "db")}
    if method == "maqbool":
        fields["pdl_path"] = str(prepared)
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(fields)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr[-3000:]
    heavy, ours = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert heavy == []
    assert [m for m in ours if is_offline(m)] == []


def test_a_missing_default_stops_the_node_at_once_naming_the_command(tmp_path):
    """Nothing is built in the node: an empty cache ends it with one line and status 2."""
    env = dict(os.environ, MAQBOOL_CACHE_DIR=str(tmp_path / "empty-cache"), PYTHONPATH=str(REPO))
    params = tmp_path / "p.yaml"
    from maqbool_ros.core.config import MaqboolConfig, ros_params_yaml

    params.write_text(ros_params_yaml(MaqboolConfig(database_path=str(tmp_path / "db"))))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "maqbool_ros.ros.node", "--ros-args", "--params-file", str(params)],
                         capture_output=True, text=True, timeout=120, env=env)
    elapsed = time.monotonic() - t0
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("maqbool-node: error:")]
    assert len(lines) == 1 and "model_path:" in lines[0] and "`maqbool build-defaults`" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").iterdir())
    assert elapsed < 60  # building the model took longer than this before; measured ~2 s


def test_a_missing_default_decision_layer_names_the_command_with_the_config(prepared, tmp_path, monkeypatch):
    from maqbool_ros.core import artifacts
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    engine = DescriptorEngine.from_config(MaqboolConfig(), threads=1)
    # An empty cache: an earlier test of the same run may have built this layer already.
    monkeypatch.setenv("MAQBOOL_CACHE_DIR", str(tmp_path / "empty-cache"))
    previous = artifacts.set_builder(None)
    try:
        with pytest.raises(artifacts.MissingDefault, match="pdl_path: the default decision layer") as err:
            artifacts.pdl_path(MaqboolConfig(method="maqbool", image_width=64, image_height=48), engine)
    finally:
        artifacts.set_builder(previous)
    assert "maqbool build-defaults --config" in err.value.advice
    assert PACKAGE.name == "maqbool_ros"
