"""`maqbool build-corpus` and `train-pdl --corpus` (issue #15 (a)): a declared source list becomes
dataset folders in this project's formats, with licences and provenance in corpus.json; held-out
sets are refused before anything is written. All data here is made by the tests."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.tiny_models import blocky_image, small_config, tiny_model, tiny_query_ref
from maqbool_ros.core.data.corpus_sources import check_not_held_out, load_source_list
from maqbool_ros.core.data.datasets import load_dataset
from maqbool_ros.core.data.utm_layout import UtmPosition, parse_utm_name, utm_positives
from maqbool_ros.tools.cli import main

REPO = Path(__file__).resolve().parents[1]


def utm_file_name(east: float, north: float, zone: int = 56, letter: str = "J", tag: str = "") -> str:
    """A name in VPR-datasets-downloader's convention (15 '@'-separated fields, then the extension)."""
    return f"@{east:.2f}@{north:.2f}@{zone:02d}@{letter}@-27.5@153.0@{tag}@@@@@@@@.png"


def write_utm_split(root: Path, queries: list, database: list, split: str = "test", size: int = 8) -> Path:
    """images/<split>/queries and database of tiny PNGs named by (east, north, zone, letter)."""
    for sub, items in (("queries", queries), ("database", database)):
        folder = root / "images" / split / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i, (e, n, z, letter) in enumerate(items):
            img = np.full((size, size, 3), (i * 37) % 256, np.uint8)
            cv2.imwrite(str(folder / utm_file_name(e, n, z, letter, tag=f"{sub}{i:04d}")), img)
    return root


def in_file_order(items: list, sub: str) -> list:
    """``items`` as write_utm_split names them, sorted by file name: the datasets' index order."""
    named = sorted((utm_file_name(*it, tag=f"{sub}{i:04d}"), it) for i, it in enumerate(items))
    return [it for _, it in named]


def brute_force(queries: list, database: list, radius: float) -> list[list[int]]:
    """Positives by the definition: same zone number and hemisphere, Euclidean distance <= radius."""
    out = []
    for qe, qn, qz, ql in queries:
        out.append([j for j, (e, n, z, letter) in enumerate(database)
                    if z == qz and (letter >= "N") == (ql >= "N") and np.hypot(e - qe, n - qn) <= radius])
    return out


def random_places(rng: np.random.Generator, count: int) -> list:
    zones = [(56, "J"), (56, "K"), (55, "J"), (56, "N"), (56, "M")]  # J/K: one grid; M/N: two hemispheres
    picks = rng.integers(0, len(zones), count)
    xy = rng.uniform([500_000, 6_950_000], [500_300, 6_950_300], size=(count, 2))
    return [(float(x), float(y), *zones[k]) for (x, y), k in zip(xy, picks)]


def write_sources(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"sources": entries}))
    return path


def entry(name: str, path: str, layout: str = "utm_named", **extra) -> dict:
    return {"name": name, "layout": layout, "path": path, "licence": "CC0-1.0 (test data)",
            "provenance": f"made by test_training_corpus ({name})", **extra}


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- utm_named ground truth -------------------------------------------------------------------------


def test_utm_positives_equal_brute_force():
    rng = np.random.default_rng(7)
    queries, database = random_places(rng, 120), random_places(rng, 400)
    for radius in (10.0, 25.0, 60.0):
        got = utm_positives([UtmPosition(*q) for q in queries], [UtmPosition(*d) for d in database], radius)
        assert [g.tolist() for g in got] == brute_force(queries, database, radius)
    assert sum(len(g) for g in got) > 100  # the case is not vacuous


def test_utm_zones_bands_and_hemispheres():
    q = [UtmPosition(500_000.0, 6_950_000.0, 56, "J")]
    db = [UtmPosition(500_000.0, 6_950_000.0, 55, "J"),   # same numbers, another zone: not a neighbour
          UtmPosition(500_010.0, 6_950_000.0, 56, "K"),   # another latitude band of the same grid: positive
          UtmPosition(500_000.0, 6_950_000.0, 56, "N"),   # other hemisphere: not a neighbour
          UtmPosition(500_030.0, 6_950_000.0, 56, "J")]   # 30 m: outside 25 m
    assert utm_positives(q, db, 25.0)[0].tolist() == [1]


@pytest.mark.parametrize("name, needle", [
    ("img_0001.jpg", "does not follow the @-separated UTM convention"),
    ("@abc@6950000.00@56@J@@@@@@@@@@@.jpg", "field 1 (UTM_east) 'abc' is not a number"),
    ("@500000.00@nan@56@J@@@@@@@@@@@.jpg", "field 2 (UTM_north) 'nan' is not a finite number"),
    ("@500000.00@6950000.00@61@J@@@@@@@@@@@.jpg", "field 3 (UTM_zone_number) '61' is outside 1..60"),
    ("@500000.00@6950000.00@56@I@@@@@@@@@@@.jpg", "field 4 (UTM_zone_letter) 'I'"),
])
def test_parse_errors_name_the_file_and_the_field(name, needle):
    with pytest.raises(ValueError) as info:
        parse_utm_name(Path("/data/queries") / name)
    assert str(info.value).startswith(f"/data/queries/{name}: ") and needle in str(info.value)
    assert parse_utm_name(utm_file_name(1.5, 2.25, 7, "x")) == UtmPosition(1.5, 2.25, 7, "X")


# --- build-corpus ---------------------------------------------------------------------------------


@pytest.fixture
def utm_source(tmp_path):
    """A utm_named folder (seeded places) and its brute-force ground truth at 25 m."""
    rng = np.random.default_rng(3)
    queries, database = random_places(rng, 30), random_places(rng, 80)
    root = write_utm_split(tmp_path / "datasets_vg" / "town", queries, database)
    return root, brute_force(in_file_order(queries, "queries"), in_file_order(database, "database"), 25.0)


def test_build_corpus_utm_named_writes_our_format_and_manifest(utm_source, tmp_path, capsys):
    root, expected = utm_source
    sources = write_sources(tmp_path / "list.json", [entry("town", "datasets_vg/town", homepage="https://x.test")])
    out = tmp_path / "corpus"
    assert main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet"]) == 0
    assert "1 sources" in capsys.readouterr().out
    ds = load_dataset(out / "town")
    assert ds.kind == "query_ref" and [p.tolist() for p in ds.positives] == expected
    assert all((out / "town" / "ref" / n).is_symlink() for n in ds.refs.names)
    manifest = json.loads((out / "corpus.json").read_text())
    (rec,) = manifest["sources"]
    files = sorted((root / "images" / "test").rglob("*.png"))
    assert rec["counts"] == {"queries": 30, "refs": 80, "positive_pairs": sum(map(len, expected))}
    assert rec["image_bytes"] == sum(f.stat().st_size for f in files)
    assert rec["origin"] == {"path": str(root.resolve())} and rec["radius_m"] == 25.0 and rec["split"] == "test"
    assert rec["licence"] == "CC0-1.0 (test data)" and rec["homepage"] == "https://x.test"
    assert manifest["totals"] == {"sources": 1, "images": 110, "image_bytes": rec["image_bytes"],
                                  "positive_pairs": rec["counts"]["positive_pairs"]}
    assert manifest["format"] == 1 and "maqbool_ros" in manifest["tool"]
    # radius_m is per source; --link copy writes regular files
    sources = write_sources(tmp_path / "list.json", [entry("town", "datasets_vg/town", radius_m=60)])
    assert main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet", "--link", "copy"]) == 0
    ds = load_dataset(out / "town")
    assert sum(map(len, ds.positives)) > rec["counts"]["positive_pairs"]
    assert not any((out / "town" / "query" / n).is_symlink() for n in ds.queries.names)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_query_ref_and_sequence_sources_and_only(tmp_path, capsys):
    tiny_query_ref(tmp_path / "src" / "rooms", count=3)
    seq = tmp_path / "src" / "loop"
    (seq / "frames").mkdir(parents=True)
    for i in range(6):
        cv2.imwrite(str(seq / "frames" / f"{i:03d}.png"), blocky_image(i % 3))
    (seq / "loop_pairs.csv").write_text("frame_index,earlier_matching_frame_indices\n3,0\n4,1\n5,2\n")
    sources = write_sources(tmp_path / "list.json", [entry("rooms", "src/rooms", "query_ref"),
                                                      entry("loop", str(seq), "sequence")])
    out = tmp_path / "corpus"
    assert main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet", "--only", "loop"]) == 0
    assert main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet", "--only", "rooms"]) == 0
    manifest = json.loads((out / "corpus.json").read_text())
    assert [r["name"] for r in manifest["sources"]] == ["loop", "rooms"]  # --only kept the other record
    assert manifest["sources"][0]["counts"] == {"frames": 6, "positive_pairs": 3}
    loop = load_dataset(out / "loop")
    assert loop.kind == "sequence" and [p.tolist() for p in loop.positives] == [[], [], [], [0], [1], [2]]
    assert [p.tolist() for p in load_dataset(out / "rooms").positives] == [[0], [1], [2]]
    capsys.readouterr()
    # a layout that does not match the folder, and an unknown --only name: one line each
    bad = write_sources(tmp_path / "bad.json", [entry("rooms", "src/rooms", "sequence")])
    err = one_line_error(capsys, main(["build-corpus", "--sources", str(bad), "--out", str(tmp_path / "o2"),
                                       "--quiet"]))
    assert "layout is 'sequence'" in err and not (tmp_path / "o2").exists()
    err = one_line_error(capsys, main(["build-corpus", "--sources", str(sources), "--out", str(out), "--only", "x",
                                       "--quiet"]))
    assert "--only: no source named ['x']" in err


def test_sequence_poses_use_radius_m_and_the_old_gallery_folder_is_read(tmp_path, capsys):
    seq = tmp_path / "drive"
    (seq / "frames").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(seq / "frames" / f"{i:03d}.png"), blocky_image(i))
    # frame 3 comes back 4 m from frame 0, 100 s later: a loop at radius 5, none at the default 3
    (seq / "poses.csv").write_text("frame_index,stamp,x,y\n0,0,0,0\n1,40,50,0\n2,80,90,0\n3,100,4,0\n")
    old = write_utm_split(tmp_path / "old", [(0.0, 0.0, 56, "J")], [(2.0, 0.0, 56, "J")])
    (old / "images" / "test" / "database").rename(old / "images" / "test" / "gallery")
    out = tmp_path / "corpus"
    args = ["build-corpus", "--sources", str(tmp_path / "l.json"), "--out", str(out), "--quiet"]
    write_sources(tmp_path / "l.json", [entry("drive", "drive", "sequence"), entry("old", "old")])
    assert "source 'drive': no positive pair" in one_line_error(capsys, main(args)) and not out.exists()
    write_sources(tmp_path / "l.json", [entry("drive", "drive", "sequence", radius_m=5), entry("old", "old")])
    assert main(args) == 0 and (out / "drive" / "loop_pairs.csv").is_file()
    assert [p.tolist() for p in load_dataset(out / "drive").positives] == [[], [], [], [0]]
    assert [p.tolist() for p in load_dataset(out / "old").positives] == [[0]]


@pytest.mark.parametrize("bad", [
    {"name": "Nordland_summer"},
    {"name": "gp_day", "path": "data/GardensPoint/day_left"},
    {"name": "walk", "path": "data/gardens_point_walking"},
    {"name": "trains", "path": None, "git": {"url": "https://example.org/nord-land.git", "commit": "0" * 40}},
    {"name": "gp", "path": None, "git": {"url": "file:///x/repo", "commit": "0" * 40, "subpath": "Gardens Point"}},
])
def test_held_out_sources_are_refused_before_anything_is_written(utm_source, tmp_path, capsys, bad):
    held = entry("x", "datasets_vg/town")
    held.update(bad)
    if held.get("path") is None:
        held.pop("path")
    sources = write_sources(tmp_path / "list.json", [entry("town", "datasets_vg/town"), held])
    out = tmp_path / "corpus"
    err = one_line_error(capsys, main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet"]))
    assert f"source '{held['name']}': refused" in err and "held out" in err
    assert not out.exists()


def test_held_out_guard_covers_symlinked_folders_and_manifests(tmp_path):
    write_utm_split(tmp_path / "nordland_winter", [(0.0, 0.0, 56, "J")], [(1.0, 0.0, 56, "J")])
    (tmp_path / "harmless").symlink_to(tmp_path / "nordland_winter")
    with pytest.raises(ValueError, match="resolved path"):
        load_source_list(write_sources(tmp_path / "l.json", [entry("ok", "harmless")]))
    with pytest.raises(ValueError, match="origin.path"):
        check_not_held_out("ok", {"origin.path": "/data/Gardens_Point"})


@pytest.mark.parametrize("damage", ["corrupt image", "bad name"])
def test_a_bad_file_names_itself_and_nothing_is_written(utm_source, tmp_path, capsys, damage):
    root, _ = utm_source
    other = write_utm_split(tmp_path / "datasets_vg" / "village", [(0.0, 0.0, 56, "J")], [(1.0, 0.0, 56, "J")])
    queries = root / "images" / "test" / "queries"
    if damage == "corrupt image":
        bad = queries / utm_file_name(1.0, 2.0, tag="broken").replace(".png", ".jpg")
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
        needle = "not a readable image"
    else:
        bad = queries / "@500000.00@north@56@J@@@@@@@@@@@.png"
        cv2.imwrite(str(bad), np.zeros((8, 8, 3), np.uint8))
        needle = "field 2 (UTM_north) 'north'"
    # the good source comes first: it must not be written either
    sources = write_sources(tmp_path / "list.json", [entry("village", str(other)), entry("town", "datasets_vg/town")])
    out = tmp_path / "corpus"
    err = one_line_error(capsys, main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet"]))
    assert bad.name in err and needle in err
    assert not out.exists()


def test_no_positive_and_list_errors(tmp_path, capsys):
    far = write_utm_split(tmp_path / "far", [(0.0, 0.0, 56, "J")], [(100.0, 0.0, 56, "J")])
    cases = [
        ([entry("far", str(far))], "no positive pair"),
        ([{k: v for k, v in entry("far", str(far)).items() if k != "licence"}], "'licence' must be a non-empty"),
        ([entry("far", str(far), licence="  ")], "'licence' must be a non-empty"),
        ([entry("far", str(far), license="MIT")], "unknown field(s) ['license']"),
        ([entry("far", str(far), radius_m=-1)], "'radius_m' must be a positive"),
        ([entry("far", str(far)), entry("far", str(far))], "more than once"),
        ([{**entry("far", str(far)), "git": {"url": "file:///r", "commit": "a" * 40}}], "exactly one of 'path'"),
        ([entry("g", None) | {"git": {"url": "file:///r", "commit": "abc"}}], "full 40-digit"),
    ]
    for i, (entries, needle) in enumerate(cases):
        for e in entries:
            if e.get("path") is None:
                e.pop("path", None)
        sources = write_sources(tmp_path / f"l{i}.json", entries)
        err = one_line_error(capsys, main(["build-corpus", "--sources", str(sources), "--out", str(tmp_path / "o"),
                                           "--quiet"]))
        assert needle in err, (needle, err)
    (tmp_path / "bad.json").write_text("{\"sources\": [")
    assert "not valid JSON" in one_line_error(capsys, main(["build-corpus", "--sources", str(tmp_path / "bad.json"),
                                                            "--out", str(tmp_path / "o"), "--quiet"]))
    assert not (tmp_path / "o").exists()


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_git_source_is_cloned_at_its_pinned_commit(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "other").mkdir()
    (repo / "other" / "notes.txt").write_text("not part of the dataset\n")
    write_utm_split(repo / "sets" / "town", [(0.0, 0.0, 56, "J")], [(3.0, 4.0, 56, "J"), (90.0, 0.0, 56, "J")])
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "two refs")
    pinned = _git(repo, "rev-parse", "HEAD")
    write_utm_split(repo / "sets" / "town", [], [(1.0, 1.0, 56, "J")] * 3)  # a later commit adds refs
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "more refs")
    src = {"name": "town", "layout": "utm_named", "licence": "CC0-1.0", "provenance": "local test repository",
           "git": {"url": repo.as_uri(), "commit": pinned, "subpath": "sets/town"}}
    sources = write_sources(tmp_path / "list.json", [src])
    out = tmp_path / "corpus"
    assert main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet"]) == 0
    ds = load_dataset(out / "town")
    assert len(ds.refs) == 2 and [p.tolist() for p in ds.positives] == [[0]]  # the pinned commit, not HEAD
    (rec,) = json.loads((out / "corpus.json").read_text())["sources"]
    assert rec["origin"] == {"url": repo.as_uri(), "commit": pinned, "subpath": "sets/town"}
    clone = next((out / ".sources").iterdir())
    assert not (clone / "other").exists()  # sparse: only the subpath is checked out
    # rebuilt from the cached clone; a commit the repository lacks is one clear line
    assert main(["build-corpus", "--sources", str(sources), "--out", str(out), "--quiet"]) == 0
    src["git"]["commit"] = "f" * 40
    err = one_line_error(capsys, main(["build-corpus", "--sources", str(write_sources(tmp_path / "l2.json", [src])),
                                       "--out", str(tmp_path / "o2"), "--quiet"]))
    assert "source 'town': git checkout failed" in err and not (tmp_path / "o2" / "town").exists()


def test_the_shipped_source_list():
    entries = load_source_list(REPO / "config" / "training_corpus.json")  # parses, and the guard passes
    assert len(entries) >= 5 and len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert e.layout == "utm_named" and e.licence and e.provenance and e.git is None
        assert e.declared_path.startswith("datasets_vg/") and not Path(e.declared_path).is_absolute()
        check_not_held_out(e.name, {"licence": e.licence, "provenance": e.provenance, **e.extra})
    doc = (REPO / "docs" / "training-corpus.md").read_text()
    assert all(f"`{e.name}`" in doc for e in entries)  # every listed source is documented


def test_build_corpus_help():
    from maqbool_ros.tools.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["build-corpus"].format_help()
    for needle in ("--sources", "--out", "--only", "--link", "utm_named", "Nordland", "corpus.json"):
        assert needle in text


# --- train-pdl --corpus ---------------------------------------------------------------------------


def test_train_pdl_on_a_corpus_records_its_sources(tmp_path):
    from maqbool_ros.core.rerank.maqbool.pdl import load_pdl

    tiny_query_ref(tmp_path / "src" / "rooms", count=4)
    street = tmp_path / "src" / "street"
    for sub, n in (("queries", 3), ("database", 4)):
        (street / "images" / "test" / sub).mkdir(parents=True)
        for i in range(n):
            img = blocky_image(10 + i, noise=8.0 if sub == "queries" else 0.0)
            cv2.imwrite(str(street / "images" / "test" / sub / utm_file_name(100.0 * i, 0.0, tag=f"{sub}{i}")), img)
    sources = write_sources(tmp_path / "list.json", [entry("rooms", "src/rooms", "query_ref"),
                                                      entry("street", "src/street")])
    corpus = tmp_path / "corpus"
    assert main(["build-corpus", "--sources", str(sources), "--out", str(corpus), "--quiet"]) == 0
    model = tiny_model(tmp_path / "tiny.onnx", 512)
    cfg = small_config(tmp_path / "cfg.yaml", device="cpu")
    out = tmp_path / "pdl.npz"
    assert main(["train-pdl", "--corpus", str(corpus), "--out", str(out), "--config", str(cfg), "--model",
                 str(model), "--quiet", "--top-k", "3", "--region-budget", "5", "--maqbool-mode", "paper"]) == 0
    meta = load_pdl(out).meta
    assert meta["trained_on"] == ["rooms", "street"]
    assert meta["corpus"]["path"] == str(corpus.resolve())
    licence = "CC0-1.0 (test data)"
    assert meta["corpus"]["sources"] == [
        {"name": "rooms", "licence": licence, "origin": {"path": str((tmp_path / "src" / "rooms").resolve())}},
        {"name": "street", "licence": licence, "origin": {"path": str(street.resolve())}}]
    assert 0 < meta["positives"] < meta["pairs"]


def test_train_pdl_refuses_a_corpus_without_manifest_or_with_a_held_out_record(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["train-pdl", "--corpus", str(tmp_path), "--out", str(out / "p.npz")])
    assert "no corpus manifest" in one_line_error(capsys, code)
    (tmp_path / "corpus.json").write_text(json.dumps({"format": 1, "sources": [
        {"name": "nordland", "licence": "x", "provenance": "y", "origin": {"path": "/d"}}]}))
    code = main(["train-pdl", "--corpus", str(tmp_path), "--out", str(out / "p.npz")])
    assert "held out" in one_line_error(capsys, code) and not any(out.iterdir())
