"""benchmarks/gpu_suite.sh --dry-run: every step the GPU suite would take is checked here (CI)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dry_run(python: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MAQBOOL_PYTHON=python)
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=300)


def test_dry_run_checks_every_step_and_exits_0():
    proc = _dry_run(sys.executable)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)  # one JSON object, nothing else on stdout
    assert report["dry_run"] is True and report["ok"] is True
    steps = [p["step"] for p in report["plan"]]
    assert steps == ["doctor", "descriptor_cuda_fp32", "descriptor_cuda_fp16", "descriptor_tensorrt_fp16",
                     "faiss_k100", "aliked_lightglue", "node_latency_top3"]
    assert sum(int(p["limit_s"]) for p in report["plan"]) <= 450  # the default budget: under 8 minutes a call
    for step in steps:
        assert any(k.startswith(f"step {step}") and v == "ok" for k, v in report["checks"].items()), step


def test_dry_run_fails_when_a_module_does_not_import(tmp_path):
    fake = tmp_path / "python"  # a Python on which `import faiss` fails
    fake.write_text(f'#!/bin/sh\nexport PYTHONPATH="{tmp_path}/block:$PYTHONPATH"\nexec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "faiss.py").write_text("raise ImportError('blocked for the test')\n")
    proc = _dry_run(str(fake))
    assert proc.returncode != 0
    assert json.loads(proc.stdout)["checks"]["import faiss"] == "fails"
