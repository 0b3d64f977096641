"""The photometric night/dusk proxy (core/data/photometric.py) and `maqbool night-proxy`
(core/data/night_proxy.py): documented effect of each parameter, determinism, ground truth of the
query_ref split, refusals that leave nothing written."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.data.datasets import load_dataset
from maqbool_ros.core.data.night_proxy import MANIFEST, query_ref_truth, write_night_proxy
from maqbool_ros.core.data.photometric import NIGHT, NightParams, image_rng, night_transform
from maqbool_ros.tools.cli import main


def _grey(v: int, shape=(40, 50)) -> np.ndarray:
    return np.full((*shape, 3), v, np.uint8)


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return cv2.resize(small, (64, 48), interpolation=cv2.INTER_CUBIC)


def test_gain_and_gamma_darken_as_documented():
    p = NightParams(gain=0.5, gamma=2.0, noise_std=0.0, blur_sigma=0.0, cast=(1.0, 1.0, 1.0))
    for v in (40, 128, 200, 255):
        out = night_transform(_grey(v), p, image_rng(0, "x"))
        expect = round(255 * (0.5 * v / 255) ** 2.0)
        assert np.all(out == expect), (v, np.unique(out), expect)
    # the defaults darken a mid-grey frame to about (0.35 * 0.5) ** 1.6 of full scale
    out = night_transform(_grey(128), NightParams(noise_std=0.0, blur_sigma=0.0, cast=(1, 1, 1)), image_rng(0, "x"))
    assert out.mean() == pytest.approx(255 * (0.35 * 128 / 255) ** 1.6, abs=0.6)


def test_noise_has_the_documented_std_and_cast_tints_channels():
    p = NightParams(gain=1.0, gamma=1.0, noise_std=6.0, blur_sigma=0.0, cast=(0.8, 1.0, 1.2))
    out = night_transform(_grey(100, (200, 200)), p, image_rng(3, "a")).astype(float)
    means = out.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(means, [80, 100, 120], atol=0.5)
    assert out[..., 1].std() == pytest.approx(6.0, rel=0.05)  # rounding adds ~1/12 DN^2: negligible


def test_blur_smooths_and_strength_zero_is_the_identity():
    img = _texture(1)
    blurred = night_transform(img, NightParams(gain=1, gamma=1, noise_std=0, blur_sigma=2.0, cast=(1, 1, 1)),
                              image_rng(0, "t"))
    def roughness(a):
        return np.abs(np.diff(a.astype(float), axis=1)).mean()

    assert roughness(blurred) < 0.6 * roughness(img)
    assert np.array_equal(night_transform(img, NightParams.at_strength(0.0), image_rng(0, "t")), img)
    half = NightParams.at_strength(0.5, gamma=3.0)
    assert half.gain == pytest.approx(1 - 0.5 * (1 - NIGHT["gain"])) and half.gamma == 3.0
    assert half.noise_std == pytest.approx(NIGHT["noise_std"] / 2)


def test_same_seed_and_name_give_the_same_image_and_others_differ():
    img, p = _texture(2), NightParams()
    a = night_transform(img, p, image_rng(7, "0040.jpg"))
    assert np.array_equal(a, night_transform(img, p, image_rng(7, "0040.jpg")))
    assert not np.array_equal(a, night_transform(img, p, image_rng(8, "0040.jpg")))
    assert not np.array_equal(a, night_transform(img, p, image_rng(7, "0041.jpg")))


@pytest.mark.parametrize("field,value", [("gain", 0.0), ("gamma", 0.0), ("noise_std", -1.0), ("blur_sigma", 50.0),
                                         ("cast", (1.0, 0.0, 1.0))])
def test_out_of_range_parameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"night proxy {field}"):
        NightParams(**{field: value})
    with pytest.raises(ValueError, match="strength"):
        NightParams.at_strength(1.5)


def test_query_ref_truth_keeps_only_earlier_lap_refs():
    pos = [np.zeros(0, np.int64)] * 4 + [np.array([0, 1]), np.array([1, 2, 4]), np.array([3, 5]), np.zeros(0, np.int64)]
    truth = query_ref_truth(pos, 4)
    assert [t.tolist() for t in truth] == [[0, 1], [1, 2], [3], []]


def _sequence_dir(root, n=8, loop_from=5):
    (root / "frames").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "frames" / f"{i:04d}.png"), _texture(i % loop_from))
    rows = ["frame_index,earlier_matching_frame_indices"]
    rows += [f"{i},{i - loop_from} {max(i - loop_from - 1, 0)} {i - 1}" for i in range(loop_from, n)]
    (root / "loop_pairs.csv").write_text("\n".join(rows) + "\n")
    return root


def test_sequence_gives_a_sequence_and_a_query_ref_split(tmp_path):
    src = _sequence_dir(tmp_path / "seq")
    m = write_night_proxy(src, tmp_path / "out", seed=1, progress=False)
    assert m["from_frame"] == 5 and m["images_transformed"] == 3 and m["images_copied"] == 5
    seq, qr = load_dataset(tmp_path / "out" / "sequence"), load_dataset(tmp_path / "out" / "query_ref")
    orig = load_dataset(src)
    assert seq.kind == "sequence" and qr.kind == "query_ref" and len(qr.refs) == 5 and len(qr.queries) == 3
    assert all(np.array_equal(a, b) for a, b in zip(seq.positives, orig.positives))
    assert [p.tolist() for p in qr.positives] == [[0, 4], [0, 1], [1, 2]]  # frame 6 lists 5, frame 7 lists 6: not refs
    for i in range(5):  # the day lap is untouched, bytes and pixels
        assert (tmp_path / "out/sequence/frames" / f"{i:04d}.png").read_bytes() == \
            (src / "frames" / f"{i:04d}.png").read_bytes()
        assert np.array_equal(qr.refs[i], orig.frames[i])
    for q in range(3):  # the night lap is darker, identical in both variants
        assert qr.queries[q].mean() < 0.5 * orig.frames[5 + q].mean()
        assert np.array_equal(qr.queries[q], seq.frames[5 + q])
    # the same seed reproduces every byte
    write_night_proxy(src, tmp_path / "again", seed=1, progress=False)
    assert (tmp_path / "again/query_ref/query/0006.png").read_bytes() == \
        (tmp_path / "out/query_ref/query/0006.png").read_bytes()


def test_query_ref_dataset_transforms_queries_only(tmp_path):
    src = tmp_path / "qr"
    for sub in ("query", "ref"):
        (src / sub).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(src / sub / f"{i:03d}.png"), _texture(i))
    (src / "ground_truth.csv").write_text("query_index,positive_ref_indices\n0,0\n1,1 2\n2,2\n")
    write_night_proxy(src, tmp_path / "out", progress=False)
    out = load_dataset(tmp_path / "out" / "query_ref")
    orig = load_dataset(src)
    assert all(np.array_equal(out.refs[i], orig.refs[i]) for i in range(3))
    assert all(out.queries[i].mean() < 0.5 * orig.queries[i].mean() for i in range(3))
    assert (tmp_path / "out/query_ref/ground_truth.csv").read_text() == (src / "ground_truth.csv").read_text()
    assert "not real night" in (tmp_path / "out" / MANIFEST).read_text()


def test_existing_out_is_refused_and_kept(tmp_path, capsys):
    src = _sequence_dir(tmp_path / "seq")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["night-proxy", "--dataset", str(src), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_corrupt_image_names_the_file_and_writes_nothing(tmp_path, capsys):
    src = _sequence_dir(tmp_path / "seq")
    (src / "frames" / "0006.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert main(["night-proxy", "--dataset", str(src), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "0006.png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"]  # no OUT, no partial sibling


def test_bad_from_frame_is_refused(tmp_path, capsys):
    src = _sequence_dir(tmp_path / "seq")
    assert main(["night-proxy", "--dataset", str(src), "--out", str(tmp_path / "o"), "--from-frame", "8",
                 "--quiet"]) == 2
    assert "--from-frame" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_rtabmap_loop_second_lap(rtabmap_loop_dir, tmp_path):
    m = write_night_proxy(rtabmap_loop_dir, tmp_path / "night", progress=False)
    assert m["from_frame"] == 40 and m["images_transformed"] == 44
    qr = load_dataset(tmp_path / "night" / "query_ref")
    assert len(qr.refs) == 40 and len(qr.queries) == 44 and sum(len(p) > 0 for p in qr.positives) == 44
    assert load_dataset(tmp_path / "night" / "sequence").kind == "sequence"
