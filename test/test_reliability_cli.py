"""Hostile-input probe of the CLI and the core checks it relies on (issue #23 items 1, 5, 6):
a failed bag write leaves nothing, non-finite camera intrinsics are named, and CLI errors
name the file or option before any work is done."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maqbool_ros.core.verification.camera import Camera
from maqbool_ros.tools.cli import main


def _query_ref_folder(root: Path, corrupt: str | None = None) -> Path:
    """query/ (2 images), ref/ (3 images), ground_truth.csv; `corrupt` names one image to spoil."""
    rng = np.random.default_rng(0)
    for sub, n in (("ref", 3), ("query", 2)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(root / sub / f"{i:03d}.png")
    (root / "ground_truth.csv").write_text("query,positives\n0,0 1\n1,2\n")
    if corrupt:
        path = root / corrupt
        path.write_bytes(path.read_bytes()[:40])  # a PNG cut short: decoding fails mid-folder
    return root


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bag_from_images_leaves_nothing_when_an_image_is_corrupt(tmp_path, capsys):
    data = _query_ref_folder(tmp_path / "data", corrupt="query/001.png")
    out = tmp_path / "bags" / "b"
    out.parent.mkdir()
    assert main(["bag", "from-images", "--dataset", str(data), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys)
    assert list(out.parent.iterdir()) == [], "a half-written bag (or its temporary) was left behind"
    # the rerun, once the image is fixed, succeeds instead of saying "already exists"
    _query_ref_folder(tmp_path / "fixed")
    assert main(["bag", "from-images", "--dataset", str(tmp_path / "fixed"), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["b"]
    assert any(out.glob("*.db3")) and (out / "metadata.yaml").is_file()


def test_camera_names_non_finite_entries():
    K = np.array([500.0, 0, 320, 0, np.nan, 240, 0, 0, 1])
    with pytest.raises(ValueError, match=r"K\[1,1\]=nan"):
        Camera(K=K, width=640, height=480)
    K[2] = np.inf
    with pytest.raises(ValueError, match=r"K\[0,2\]=inf.*K\[1,1\]=nan"):
        Camera(K=K, width=640, height=480)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        Camera(K=np.ones(8), width=640, height=480)


def test_ground_truth_not_utf8_names_the_file(tmp_path, capsys):
    data = _query_ref_folder(tmp_path / "data")
    (data / "ground_truth.csv").write_bytes(b"query,positives\n0,\xff\xfe 1\n")
    assert main(["eval", "--dataset", str(data), "--quiet"]) == 2
    err = _one_line(capsys)
    assert "ground_truth.csv" in err and "UTF-8" in err, err


@pytest.mark.parametrize("flag", ["--json", "--csv", "--plots"])
def test_eval_checks_output_paths_before_the_work(tmp_path, capsys, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # the dataset does not exist: the output path must be refused first, naming the flag
    assert main(["eval", "--dataset", str(tmp_path / "absent"), flag, str(blocker / "dir" / "x.out")]) == 2
    err = _one_line(capsys)
    assert flag in err and str(blocker) in err and "absent" not in err, err


def test_export_checkpoint_that_is_text(tmp_path, capsys):
    text = tmp_path / "notes.pth.tar"
    text.write_text("hello, this is not a checkpoint\n")
    assert main(["export", "--checkpoint", str(text), "--out", str(tmp_path / "m.onnx"), "--quiet"]) == 2
    err = _one_line(capsys)
    assert str(text) in err and "not a torch checkpoint" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_printable_cuts_and_escapes_untrusted_text():
    from maqbool_ros.core.text import printable

    assert printable("ab\u202ecd\n\x1b[31m") == "ab\\u202ecd\\n\\x1b[31m"
    long = printable("r" * 10_000)
    assert long == "r" * 80 + "...(+9920 chars)"
    assert printable("caf\u00e9 \u6771\u4eac") == "caf\u00e9 \u6771\u4eac"  # printable non-ASCII stays readable
