"""Dataset adapters: query/ref folders, sequences (loop pairs, poses), the synthetic demo."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.data.datasets import (
    ImageList,
    SequenceDataset,
    load_dataset,
    positives_from_poses,
    read_index_lists,
)


def _write_images(folder, n, seed=0, hw=(20, 30)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n):
        img = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img[..., ::-1])
        imgs.append(img)
    return imgs


def test_real_query_ref_datasets(corridor_dir, gardens_dir):
    cor = load_dataset(corridor_dir)
    assert cor.kind == "query_ref" and len(cor.queries) == 111 and len(cor.refs) == 111
    assert cor.positives[1].tolist() == [0, 1, 2, 3]
    assert cor.queries[0].shape == (120, 160, 3) and cor.queries[0].dtype == np.uint8
    gp = load_dataset(gardens_dir)
    assert [p.tolist() for p in gp.positives] == [[i] for i in range(10)]
    assert gp.refs.names == sorted(gp.refs.names)


def test_real_sequence_dataset(rtabmap_loop_dir):
    seq = load_dataset(rtabmap_loop_dir)
    assert seq.kind == "sequence" and len(seq.frames) == 84
    assert sum(1 for p in seq.positives if len(p)) == 44 and sum(len(p) for p in seq.positives) == 228
    assert all(len(p) == 0 or p.max() < i for i, p in enumerate(seq.positives))
    assert seq.frames[0].shape == (384, 512, 3)


def test_folder_round_trip_and_errors(tmp_path):
    root = tmp_path / "ds"
    refs = _write_images(root / "ref", 3, 1)
    _write_images(root / "query", 2, 2)
    (root / "ground_truth.csv").write_text("query_index,positive_ref_indices\n0,2 1\n1,\n")
    ds = load_dataset(root)
    assert [p.tolist() for p in ds.positives] == [[1, 2], []]
    np.testing.assert_array_equal(ds.refs[2], refs[2])
    with pytest.raises(IndexError):
        ds.refs[3]
    (root / "ground_truth.csv").write_text("query_index,positive_ref_indices\n0,5\n")
    with pytest.raises(ValueError, match="outside"):
        load_dataset(root)
    (root / "ground_truth.csv").write_text("query_index,positive_ref_indices\n0,a b\n")
    with pytest.raises(ValueError, match=r"ground_truth.csv:2"):
        load_dataset(root)
    (root / "ground_truth.csv").unlink()
    with pytest.raises(FileNotFoundError, match="ground_truth.csv"):
        load_dataset(root)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="not a dataset"):
        load_dataset(tmp_path / "junk")


def test_read_index_lists_row_range(tmp_path):
    p = tmp_path / "gt.csv"
    p.write_text("a,b\n3,1\n")
    with pytest.raises(ValueError, match="outside"):
        read_index_lists(p, 3)
    assert [x.tolist() for x in read_index_lists(p, 4)] == [[], [], [], [1]]


def test_positives_from_poses_brute_force():
    rng = np.random.default_rng(4)
    pos = rng.uniform(0, 10, size=(40, 2))
    stamps = np.sort(rng.uniform(0, 100, 40))
    got = positives_from_poses(pos, stamps, radius=2.0, min_gap_s=15.0)
    for i in range(40):
        want = [j for j in range(40) if stamps[i] - stamps[j] >= 15.0 and np.linalg.norm(pos[i] - pos[j]) <= 2.0]
        assert got[i].tolist() == want


def test_sequence_from_poses_csv(tmp_path):
    root = tmp_path / "run"
    _write_images(root / "frames", 4)
    # frame_index,stamp,x,y: frame 3 returns to frame 0's place 40 s later
    (root / "poses.csv").write_text("frame_index,stamp,x,y\n0,0,0,0\n1,10,5,0\n2,20,10,0\n3,40,0.5,0\n")
    ds = load_dataset(root, radius=1.0, min_gap_s=30.0)
    assert ds.kind == "sequence" and [p.tolist() for p in ds.positives] == [[], [], [], [0]]
    np.testing.assert_allclose(ds.stamps, [0, 10, 20, 40])
    with pytest.raises(ValueError, match="not earlier"):
        SequenceDataset("bad", ImageList.from_arrays([np.zeros((4, 4, 3), np.uint8)] * 2),
                        [np.array([1]), np.zeros(0, np.int64)], np.arange(2.0))


def test_demo_sequence_is_deterministic_with_true_revisits():
    from maqbool_ros.core.data.demo_sequence import camera_path, demo_sequence

    a, b = demo_sequence(), demo_sequence()
    _, legs = camera_path()
    assert len(a.frames) == len(legs) and "synthetic" in a.name
    np.testing.assert_array_equal(a.frames[45], b.frames[45])
    with_revisit = [i for i, p in enumerate(a.positives) if len(p)]
    assert with_revisit and all(legs[i] == 3 for i in with_revisit)  # only the return leg revisits
    assert all(legs[j] == 1 for i in with_revisit for j in a.positives[i])
    assert sum(legs == 3) == len(with_revisit)  # every return frame is a revisit
    # a revisit looks more like its place than like an unrelated frame of the same street
    i = with_revisit[3]
    same, other = a.frames[int(a.positives[i][0])].astype(float), a.frames[int(a.positives[i][0]) + 8].astype(float)
    assert np.abs(a.frames[i] - same).mean() < np.abs(a.frames[i] - other).mean()
