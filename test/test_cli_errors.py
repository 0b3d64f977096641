"""Bad input to any CLI path: exit status 2, one clear line on stderr, no traceback and no
output file (issue #11 defect 8)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.tiny_models import blocky_image
from maqbool_ros.core.data.bags import BagWriter, rgb_to_image_msg
from maqbool_ros.tools.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    """Truncated db3 and mcap files, random bytes named .bag, a missing path."""
    root = tmp_path_factory.mktemp("bad_bags")
    out = {}
    for storage, suffix in (("sqlite3", ".db3"), ("mcap", ".mcap")):
        bag = root / f"good_{storage}"
        with BagWriter(bag, storage) as writer:
            for i in range(3):
                writer.write("/cam/image", "sensor_msgs/msg/Image", (i + 1) * 10**9,
                             rgb_to_image_msg(blocky_image(i), float(i + 1), "cam"))
        data = next(bag.glob(f"*{suffix}")).read_bytes()
        out[f"truncated{suffix}"] = root / f"truncated{suffix}"
        out[f"truncated{suffix}"].write_bytes(data[: len(data) // 2])
    out["random.bag"] = root / "random.bag"
    out["random.bag"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out["missing"] = root / "does_not_exist"
    return out


COMMANDS = {
    "fit": lambda src, out: ["fit", "--images", str(src), "--out", str(out / "m.onnx")],
    "build-vocab": lambda src, out: ["build-vocab", "--images", str(src), "--words", "4",
                                     "--out", str(out / "v.npz")],
    "eval": lambda src, out: ["eval", "--dataset", str(src), "--json", str(out / "r.json")],
    "train-pdl": lambda src, out: ["train-pdl", "--dataset", str(src), "--out", str(out / "p.npz")],
    "build-corpus": lambda src, out: ["build-corpus", "--sources", str(src), "--out", str(out / "corpus")],
    "bag from-images": lambda src, out: ["bag", "from-images", "--dataset", str(src), "--out", str(out / "b")],
    "bag play": lambda src, out: ["bag", "play", str(src)],
}


def _assert_one_line_error(code: int, err: str, out_dir: Path, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles), lines[0]
    assert not any(out_dir.iterdir()), "an output was written"


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("bad", ["truncated.db3", "truncated.mcap", "random.bag", "missing"])
def test_bad_sources_give_one_line(bad_inputs, tmp_path, capsys, command, bad):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    source = bad_inputs[bad]
    code = main(COMMANDS[command](source, out_dir))
    _assert_one_line_error(code, capsys.readouterr().err, out_dir, f"maqbool {command}: error",
                           source.name)


def test_fit_refuses_too_few_images(tmp_path, capsys):
    import cv2

    folder = tmp_path / "one"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), blocky_image(0))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["fit", "--images", str(folder), "--out", str(out_dir / "m.onnx")])
    _assert_one_line_error(code, capsys.readouterr().err, out_dir, "1 image", "at least 2")


def test_console_script_prints_no_traceback(bad_inputs, tmp_path):
    """The installed entry point (a separate process) on a corrupt bag."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "maqbool_ros.tools.cli", "fit", "--images",
                           str(bad_inputs["random.bag"]), "--out", str(tmp_path / "m.onnx"), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a readable ROS bag" in proc.stderr and not (tmp_path / "m.onnx").exists()


def test_an_error_about_a_config_field_names_its_parameter_key(tmp_path, capsys):
    """Core components name their input by attribute (`model_path: ...`); the CLI shows the
    parameter key, as the node does (`descriptor.model_path: ...`)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["eval", "--dataset", "synthetic-rgbd", "--model", str(tmp_path / "absent.onnx"),
                 "--json", str(out_dir / "r.json"), "--quiet"])
    _assert_one_line_error(code, capsys.readouterr().err, out_dir, "maqbool eval: error: descriptor.model_path: ",
                           "absent.onnx")
