"""Keyframe database: search vs numpy brute force (exclusions, robot filters), region
cache, remove/compact, persistence (atomic snapshots, append log, SIGKILL, corruption)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from maqbool_ros.core.database.index import HalfScan, exact_top_k, gpu_available
from maqbool_ros.core.database.keyframes import KeyframeDatabase
from maqbool_ros.core.database.storage import DatabaseFormatError

REPO = Path(__file__).resolve().parents[1]
ROBOTS = ["alpha", "bravo", "charlie"]


def make_keyframes(n: int, dim: int, seed: int = 0, clusters: int = 40):
    """Clustered unit vectors (so near neighbours exist), 3 robots interleaved."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    desc = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim))
    robots = [ROBOTS[i] for i in rng.integers(0, len(ROBOTS), n)]
    stamps = np.cumsum(rng.uniform(0.2, 1.5, n))
    return desc, robots, stamps


def fill(db, desc, robots, stamps, extras=True, start=0):
    for i, (d, r, s) in enumerate(zip(desc, robots, stamps)):
        kf = start + i
        ex = None
        if extras:
            ex = {"regions": np.full((4, 6), kf % 1000, np.float16), "areas": np.arange(4, dtype=np.float32) + kf}
        db.add(kf, r, float(s), d, ex)


def brute_force(desc, robots, stamps, alive, q, k, robot_id=None, stamp=None, n_recent=0, t_recent=0.0,
                robot_filter="all", max_distance=4.0):
    """Reference in float64 over the insertion-ordered list (loops, no shortcuts)."""
    unit = desc / np.linalg.norm(desc, axis=1, keepdims=True)
    q = np.asarray(q, np.float64) / np.linalg.norm(q)
    same_rows = [i for i in range(len(desc)) if robots[i] == robot_id]
    recent = set(same_rows[len(same_rows) - n_recent:]) if n_recent > 0 else set()
    picked = []
    for i in range(len(desc)):
        if not alive[i]:
            continue
        same = robots[i] == robot_id
        if robot_filter == "inter_robot" and same or robot_filter == "intra_robot" and not same:
            continue
        if same and (i in recent or (t_recent > 0 and stamp is not None and abs(stamps[i] - stamp) < t_recent)):
            continue
        d = float(np.sum((unit[i] - q) ** 2))
        if d <= max_distance:
            picked.append((d, i))
    picked.sort()
    return picked[:k]


@pytest.fixture(scope="module")
def synthetic():
    desc, robots, stamps = make_keyframes(3000, 32, seed=1)
    db = KeyframeDatabase(32)
    fill(db, desc, robots, stamps)
    return db, desc, robots, stamps


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def backend(request, synthetic, tmp_path_factory):
    """The same keyframes in each database backend: the search-contract tests run on both."""
    if request.param == "faiss":
        yield synthetic
        return
    pytest.importorskip("pymilvus", reason="pymilvus is not installed (requirements-python.txt pins it)")
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (requirements-python.txt pins it)")
    from maqbool_ros.core.database.milvus import MilvusKeyframeDatabase

    _, desc, robots, stamps = synthetic
    db = MilvusKeyframeDatabase(32, str(tmp_path_factory.mktemp("milvus") / "kf.db"))
    fill(db, desc, robots, stamps)
    yield db, desc, robots, stamps
    db.close()


def random_query_args(rng, desc, stamps):
    return dict(robot_id=ROBOTS[rng.integers(0, 3)] if rng.random() < 0.9 else None,
                stamp=(float(stamps[-1] + rng.uniform(0, 5)) if rng.random() < 0.8
                       else float(rng.uniform(0, stamps[-1]))),
                n_recent=int(rng.choice([0, 1, 20, 500])), t_recent=float(rng.choice([0.0, 10.0, 300.0])),
                robot_filter=str(rng.choice(["all", "inter_robot", "intra_robot"])),
                max_distance=float(rng.choice([4.0, 4.0, 1.2])))


def check_against_brute_force(db, desc, robots, stamps, alive, rng, queries=40, exact=True):
    for _ in range(queries):
        q = desc[rng.integers(0, len(desc))] + 0.3 * rng.standard_normal(desc.shape[1])
        a = random_query_args(rng, desc, stamps)
        if a["robot_id"] is None:
            a["robot_filter"] = "all"
        k = int(rng.choice([1, 10, 100]))
        ref = brute_force(desc, robots, stamps, alive, q, k, **a)
        got = db.search(q, k, robot_id=a["robot_id"], stamp=a["stamp"], exclude_recent_keyframes=a["n_recent"],
                        exclude_recent_seconds=a["t_recent"], robot_filter=a["robot_filter"],
                        max_distance=a["max_distance"])
        ref_ids = [i for _, i in ref]
        if exact:
            assert got.keyframe_ids.tolist() == ref_ids, a
            np.testing.assert_allclose(got.distances, [d for d, _ in ref], atol=2e-5)
            assert got.robot_ids == [robots[i] for i in ref_ids]
            np.testing.assert_array_equal(got.stamps, stamps[ref_ids])
        else:  # approximate index: every answer admissible, count right, most of them found
            admissible = set(i for _, i in brute_force(desc, robots, stamps, alive, q, len(desc), **a))
            assert set(got.keyframe_ids.tolist()) <= admissible
            assert len(got) == len(ref) or a["max_distance"] < 4
        assert np.all(np.diff(got.distances) >= 0)


def test_flat_search_equals_brute_force(backend):
    db, desc, robots, stamps = backend
    check_against_brute_force(db, desc, robots, stamps, np.ones(len(desc), bool), np.random.default_rng(7))


def test_parallel_fp16_scan_and_fp32_path_equal_brute_force(synthetic, monkeypatch):
    db, desc, robots, stamps = synthetic
    monkeypatch.setattr(HalfScan, "PARALLEL_MIN_BYTES", 0)  # threads even for a small map
    fallbacks = db.scan_fallbacks
    check_against_brute_force(db, desc, robots, stamps, np.ones(len(desc), bool), np.random.default_rng(8), 15)
    assert db.scan_fallbacks == fallbacks  # clustered data: the fp16 bound settles every query
    plain = KeyframeDatabase(32)
    fill(plain, desc, robots, stamps, extras=False)
    plain._search.scan = None  # the fp32 full pass used for near-ties
    check_against_brute_force(plain, desc, robots, stamps, np.ones(len(desc), bool), np.random.default_rng(8), 15)


def test_near_ties_fall_back_to_fp32_and_stay_exact():
    rng = np.random.default_rng(9)
    base = rng.standard_normal(32)
    desc = base + 1e-4 * rng.standard_normal((400, 32))  # 400 near-identical keyframes
    desc = np.vstack([desc, rng.standard_normal((400, 32))])
    robots, stamps = ["alpha"] * 800, np.arange(800.0)
    db = KeyframeDatabase(32)
    fill(db, desc, robots, stamps, extras=False)
    got = db.search(base, 10)
    assert db.scan_fallbacks == 1
    ref = brute_force(desc, robots, stamps, np.ones(800, bool), base, 10)
    np.testing.assert_allclose(got.distances, [d for d, _ in ref], atol=1e-6)
    assert set(got.keyframe_ids) <= set(range(400))


@pytest.mark.parametrize("dim", [64, 1024])
def test_fp16_scan_exact_on_dense_unclustered_scores(dim):
    """No clusters: the scores near the k-th place are densely packed (the hard case for
    the fp16 bound); every answer must still be the float64 brute-force top k."""
    rng = np.random.default_rng(dim)
    desc = rng.standard_normal((3000, dim)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    ok = rng.random(3000) > 0.2
    scan = HalfScan(dim)
    scan.rebuild(desc)
    settled = 0
    for k in (1, 50, 300):
        for _ in range(5):
            q = rng.standard_normal(dim).astype(np.float32)
            q /= np.linalg.norm(q)
            rows, sims, by_scan = exact_top_k(desc, q, k, ok, scan)
            exact = desc.astype(np.float64) @ q.astype(np.float64)
            exact[~ok] = -np.inf
            assert sorted(rows.tolist()) == sorted(np.argsort(-exact)[:k].tolist())
            np.testing.assert_allclose(sims, exact[rows], atol=1e-5)
            settled += by_scan
    assert settled >= 10  # the fast path settles most queries even here


def test_exclusions_still_return_k(backend):
    db, desc, robots, stamps = backend
    # Query with the robot's own latest keyframe: its nearest neighbours are all recent and excluded.
    last = max(i for i in range(len(desc)) if robots[i] == "alpha")
    got = db.search(desc[last], 25, robot_id="alpha", stamp=float(stamps[last]), exclude_recent_keyframes=200)
    assert len(got) == 25
    alpha_rows = [i for i in range(len(desc)) if robots[i] == "alpha"]
    assert not set(got.keyframe_ids.tolist()) & set(alpha_rows[-200:])
    inter = db.search(desc[last], 50, robot_id="alpha", robot_filter="inter_robot")
    assert len(inter) == 50 and "alpha" not in inter.robot_ids
    intra = db.search(desc[last], 50, robot_id="alpha", robot_filter="intra_robot", exclude_recent_keyframes=1)
    assert set(intra.robot_ids) == {"alpha"} and last not in intra.keyframe_ids
    assert intra.keyframe_ids[0] != last
    # unknown robot: nothing is "same robot"; intra_robot therefore yields nothing
    assert len(db.search(desc[0], 5, robot_id="zulu", robot_filter="intra_robot")) == 0


def test_hnsw_recall_and_exclusions(synthetic):
    _, desc, robots, stamps = synthetic
    db = KeyframeDatabase(32, index_type="hnsw")
    fill(db, desc, robots, stamps, extras=False)
    rng = np.random.default_rng(3)
    check_against_brute_force(db, desc, robots, stamps, np.ones(len(desc), bool), rng, queries=20, exact=False)
    flat = KeyframeDatabase(32)
    fill(flat, desc, robots, stamps, extras=False)
    hits = 0
    for _ in range(20):
        q = desc[rng.integers(0, len(desc))] + 0.3 * rng.standard_normal(32)
        hits += len(set(db.search(q, 10).keyframe_ids) & set(flat.search(q, 10).keyframe_ids))
    assert hits / 200 >= 0.9


def test_remove_and_compact_keep_extras_aligned():
    desc, robots, stamps = make_keyframes(3000, 16, seed=2)
    db = KeyframeDatabase(16)
    fill(db, desc, robots, stamps)
    alive = np.ones(len(desc), bool)
    gone = np.random.default_rng(0).choice(len(desc), 1200, replace=False)
    assert db.remove(gone[:600]) == 600  # any robot
    alive[gone[:600]] = False
    by_robot = {r: [int(i) for i in gone[600:] if robots[i] == r] for r in ROBOTS}
    for r, ids in by_robot.items():
        assert db.remove(ids + [10**9], robot_id=r) == len(ids)  # unknown id ignored
    alive[gone[600:]] = False
    assert db.remove([int(gone[0])]) == 0 and len(db) == alive.sum()
    for _ in ("tombstoned", "compacted"):
        check_against_brute_force(db, desc, robots, stamps, alive, np.random.default_rng(5), queries=10)
        got = db.search(desc[5], 50)
        ex = db.get_extras(got.rows)
        np.testing.assert_array_equal(ex["regions"][:, 0, 0], (got.keyframe_ids % 1000).astype(np.float16))
        np.testing.assert_array_equal(ex["areas"][:, 0], got.keyframe_ids.astype(np.float32))
        db.compact()
        assert db.num_rows == len(db)
    db.add(int(gone[0]), robots[gone[0]], 1e9, desc[gone[0]])  # a removed id may come back


def test_add_validation_errors():
    db = KeyframeDatabase(8)
    db.add(1, "r", 0.0, np.ones(8), {"regions": np.zeros((2, 3), np.float16)})
    with pytest.raises(ValueError, match="already"):
        db.add(1, "r", 1.0, np.ones(8))
    db.add(1, "other", 1.0, np.ones(8))  # same id, other robot: a different keyframe
    bad = np.ones(8)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="keyframe r/2.*NaN"):
        db.add(2, "r", 0.0, bad)
    with pytest.raises(ValueError, match="8-D"):
        db.add(2, "r", 0.0, np.ones(7))
    with pytest.raises(ValueError, match="all zeros"):
        db.add(2, "r", 0.0, np.zeros(8))
    with pytest.raises(ValueError, match="regions"):
        db.add(2, "r", 0.0, np.ones(8), {"regions": np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match="extras key"):
        db.add(2, "r", 0.0, np.ones(8), {"../x": np.zeros(2)})
    with pytest.raises(ValueError, match="robot_filter"):
        db.search(np.ones(8), 3, robot_filter="nope")
    with pytest.raises(ValueError, match="needs the query's robot_id"):
        db.search(np.ones(8), 3, robot_filter="inter_robot")
    assert len(db) == 2
    db.add(3, "r", 0.0, np.ones(8), {"new_key": np.ones(2, np.int32)})  # a key added later
    ex = db.get_extras([0, 2])
    assert ex["regions"].dtype == np.float16 and ex["new_key"].tolist() == [[0, 0], [1, 1]]


def maqbool_extras(kf: int, p: int = 64):
    rng = np.random.default_rng(kf)
    return {"maqbool_regions": rng.standard_normal((10, p)).astype(np.float16),
            "maqbool_areas": rng.random(10).astype(np.float32)}


def test_bytes_per_keyframe_reports_cache_layout():
    db = KeyframeDatabase(512)
    db.add(0, "r", 0.0, np.ones(512), maqbool_extras(0, 4096))
    assert db.bytes_per_keyframe() == 512 * 4 + 29 + 512 * 2 + 10 * 4096 * 2 + 40  # + fp16 scan copy


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_save_load_roundtrip_and_log_replay(tmp_path, index_type):
    desc, robots, stamps = make_keyframes(400, 16, seed=4)
    db = KeyframeDatabase.open(tmp_path / "db", dim=16, index_type=index_type, flush_interval_s=0)
    for i in range(300):
        db.add(i, robots[i], float(stamps[i]), desc[i], maqbool_extras(i))
    db.remove([5, 6, 7])
    db.save()  # snapshot 1: compacted, log restarts
    assert (tmp_path / "db" / json.loads((tmp_path / "db/manifest.json").read_text())["log"]).stat().st_size == 8
    for i in range(300, 400):
        db.add(i, robots[i], float(stamps[i]), desc[i], maqbool_extras(i))
    db.remove([300, 8])  # removes after the snapshot go through the log too
    rows, kf_ids, _ = db.keyframes()  # region cache now: memory-mapped snapshot + in-RAM tail
    assert isinstance(db._rows.extras_base("maqbool_regions"), np.memmap)
    np.testing.assert_array_equal(db.get_extras(rows)["maqbool_regions"],
                                  np.stack([maqbool_extras(int(k))["maqbool_regions"] for k in kf_ids]))
    db.close()
    for loaded in (KeyframeDatabase.load(tmp_path / "db"), KeyframeDatabase.open(tmp_path / "db", dim=16)):
        assert len(loaded) == len(db) == 395 and loaded.index_type in (index_type, "flat")
        for q in desc[::37]:
            a, b = db.search(q, 20, robot_id="alpha", exclude_recent_keyframes=10), loaded.search(
                q, 20, robot_id="alpha", exclude_recent_keyframes=10)
            assert a.keyframe_ids.tolist() == b.keyframe_ids.tolist()
            np.testing.assert_allclose(a.distances, b.distances, atol=1e-6)
            for key, arr in loaded.get_extras(b.rows).items():
                np.testing.assert_array_equal(arr, np.stack([maqbool_extras(int(k))[key] for k in b.keyframe_ids]))
        loaded.close()


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def small_db(path: Path, n: int = 30) -> None:
    db = KeyframeDatabase.open(path, dim=8)
    rng = np.random.default_rng(0)
    for i in range(n):
        db.add(i, "r", float(i), rng.standard_normal(8), maqbool_extras(i, 8))
    db.save()
    for i in range(n, n + 5):
        db.add(i, "r", float(i), rng.standard_normal(8), maqbool_extras(i, 8))
    db.close()


def test_truncated_and_corrupt_files_are_rejected_untouched(tmp_path):
    root = tmp_path / "db"
    small_db(root)
    snap = next(root.glob("snapshot-*"))
    target = snap / "extras.maqbool_regions.npy"
    target.write_bytes(target.read_bytes()[:-100])
    before = tree_digest(root)
    for call in (lambda: KeyframeDatabase.load(root), lambda: KeyframeDatabase.open(root, dim=8)):
        with pytest.raises(DatabaseFormatError, match="extras.maqbool_regions.npy.*truncated"):
            call()
    assert tree_digest(root) == before  # nothing rewritten or deleted
    small_db(tmp_path / "db2")
    (tmp_path / "db2" / "manifest.json").write_text(
        (tmp_path / "db2" / "manifest.json").read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(DatabaseFormatError, match="manifest.json: format version 99"):
        KeyframeDatabase.open(tmp_path / "db2", dim=8)
    small_db(tmp_path / "db3")
    f = next((tmp_path / "db3").glob("snapshot-*")) / "descriptors.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(DatabaseFormatError, match="descriptors.npy: checksum"):
        KeyframeDatabase.load(tmp_path / "db3")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        KeyframeDatabase.open(tmp_path / "junk", dim=8)


def test_log_torn_tail_recovered_but_mid_log_corruption_rejected(tmp_path):
    root = tmp_path / "db"
    small_db(root)
    logf = next(root.glob("log-*.bin"))
    good = logf.read_bytes()
    logf.write_bytes(good[:-7])  # the last add was torn by a crash
    assert len(KeyframeDatabase.load(root)) == 34
    db = KeyframeDatabase.open(root, dim=8)  # appending again cuts the torn tail (kept in .torn)
    assert len(db) == 34 and logf.with_name(logf.name + ".torn").exists()
    db.add(99, "r", 99.0, np.ones(8))
    db.close()
    assert len(KeyframeDatabase.load(root)) == 35
    data = bytearray(good)
    data[len(good) // 2] ^= 0xFF  # damage in the middle, valid records after it
    logf.write_bytes(bytes(data))
    with pytest.raises(DatabaseFormatError, match="corrupt record"):
        KeyframeDatabase.load(root)


def test_open_without_load_moves_old_database_aside(tmp_path):
    root = tmp_path / "db"
    small_db(root)
    db = KeyframeDatabase.open(root, dim=8, load=False)
    assert len(db) == 0
    db.close()
    aside = list(tmp_path.glob("db.prev-*"))
    assert len(aside) == 1 and len(KeyframeDatabase.load(aside[0])) == 35
    with pytest.raises(ValueError, match="16-D requested"):
        KeyframeDatabase.open(aside[0], dim=16)
    with pytest.raises(FileNotFoundError, match="create=False"):
        KeyframeDatabase.open(tmp_path / "missing", dim=8, create=False)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from maqbool_ros.core.database.keyframes import KeyframeDatabase
    db = KeyframeDatabase.open(sys.argv[1], dim=64, flush_interval_s=float(sys.argv[2]))
    rng = np.random.default_rng(0)
    ids = db.keyframes()[1]
    i = int(ids.max()) + 1 if len(ids) else 0
    while True:
        ex = {"maqbool_regions": rng.standard_normal((10, 512)).astype(np.float16),
              "maqbool_areas": np.full(10, i, np.float32)}
        db.add(i, "robot%d" % (i % 2), float(i), rng.standard_normal(64), ex)
        if i % 3 == 2:
            db.remove([i - 1], robot_id="robot%d" % ((i - 1) % 2))
        if i % 97 == 96:
            db.save()  # snapshot rotation while being killed
        if sys.argv[3] == "flush":
            db.flush()
        print(i, flush=True)
        i += 1
""")


@pytest.mark.parametrize("flush_interval_s,explicit", [(0.0, "flush"), (3600.0, "no-flush")])
def test_sigkill_writer_keeps_every_flushed_keyframe(tmp_path, flush_interval_s, explicit):
    """A killed writer loses nothing it reported as added: with fsync on every add, and
    also with a long fsync interval (records reach the OS with one write per add)."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "db"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    flushed: list[int] = []
    carried: set[tuple[int, str]] = set()  # in-flight keyframes of an earlier kill that survived it
    for target in (150, 330):  # kill, restart (reload + append), kill again
        proc = subprocess.Popen([sys.executable, str(script), str(root), str(flush_interval_s), explicit],
                                stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for line in proc.stdout:
            flushed.append(int(line))
            if flushed[-1] >= target:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        flushed += [int(x) for x in proc.stdout.read().split()]  # printed before the kill, unread
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        db = KeyframeDatabase.load(root)
        rows, kf_ids, robot_ids = db.keyframes()
        have = set(zip(kf_ids.tolist(), robot_ids))
        have_ids = set(kf_ids.tolist())
        done = set(flushed)
        removed = {j for j in done if j % 3 == 1 and (j + 1 in done or j + 1 in have_ids)}
        expected = {(j, f"robot{j % 2}") for j in done - removed}
        assert expected <= have  # every reported keyframe (and reported removal) survived
        # Beyond that, only the loop iteration in flight at the kill may show: its add (m+1)
        # and, when the kill fell between that add and the removal of m, keyframe m; a
        # restarted writer goes on after them, so they may still show after a later kill.
        m = max(done)
        in_flight = {(j, f"robot{j % 2}") for j in (m, m + 1)}
        assert have - expected <= in_flight | carried, sorted(have - expected)
        carried |= (have - expected) & in_flight
        ex = db.get_extras(rows)
        np.testing.assert_array_equal(ex["maqbool_areas"][:, 0], kf_ids.astype(np.float32))
    assert len(flushed) > 300


@pytest.mark.skipif(not gpu_available("auto"), reason="faiss has no GPU support or no GPU is visible here")
def test_gpu_flat_equals_cpu(synthetic):
    _, desc, robots, stamps = synthetic
    gpu = KeyframeDatabase(32, device="auto")
    assert gpu._search.index.on_gpu
    fill(gpu, desc, robots, stamps, extras=False)
    check_against_brute_force(gpu, desc, robots, stamps, np.ones(len(desc), bool), np.random.default_rng(7))


def test_gpu_code_path_with_a_cpu_stand_in(synthetic, monkeypatch):
    """Everything of the GPU path except the faiss GPU class: GpuIndexFlatIP replaced by
    IndexFlatIP (same interface, exact), so k + excluded, masking, the 2048 cap and the
    fallback are checked against brute force here."""
    import faiss

    from maqbool_ros.core.database import index as db_index

    monkeypatch.setattr(db_index, "gpu_available", lambda device: device != "cpu")
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
    monkeypatch.setattr(faiss, "GpuIndexFlatIP", lambda res, dim: faiss.IndexFlatIP(dim), raising=False)
    _, desc, robots, stamps = synthetic
    db = KeyframeDatabase(32, device="auto")
    assert db._search.index.on_gpu and db._search.scan is None
    fill(db, desc, robots, stamps, extras=False)
    check_against_brute_force(db, desc, robots, stamps, np.ones(len(desc), bool), np.random.default_rng(11), 20)


def test_cpu_device_never_uses_gpu():
    assert not gpu_available("cpu")
    assert not KeyframeDatabase(8, device="cpu")._search.index.uses_faiss


def test_flush_interval_fsyncs_a_pending_tail_without_further_adds(tmp_path):
    db = KeyframeDatabase.open(tmp_path / "db", dim=8, flush_interval_s=0.3)
    db.add(0, "r", 0.0, np.ones(8))  # first add after open: interval not yet elapsed
    db.add(1, "r", 1.0, np.ones(8))
    assert db._files.log.dirty  # written to the OS, not yet fsynced
    deadline = time.monotonic() + 5.0
    while db._files.log.dirty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not db._files.log.dirty
    db.close()
    assert len(KeyframeDatabase.load(tmp_path / "db")) == 2


def test_one_writer_per_directory(tmp_path):
    db = KeyframeDatabase.open(tmp_path / "db", dim=8)
    db.add(0, "r", 0.0, np.ones(8))
    with pytest.raises(RuntimeError, match="open for writing elsewhere"):
        KeyframeDatabase.open(tmp_path / "db", dim=8)
    with pytest.raises(RuntimeError, match="open for writing elsewhere"):
        KeyframeDatabase(8).save(tmp_path / "db")
    assert len(KeyframeDatabase.load(tmp_path / "db")) == 1  # reading is always allowed
    db.close()
    again = KeyframeDatabase.open(tmp_path / "db", dim=8)
    assert len(again) == 1
    again.close()


def test_crash_before_manifest_commit_keeps_previous_generation(tmp_path, monkeypatch):
    from maqbool_ros.core.database import storage as db_storage

    root = tmp_path / "db"
    small_db(root)  # 30 keyframes in the snapshot, 5 in the log
    db = KeyframeDatabase.open(root, dim=8)
    db.add(100, "r", 100.0, np.ones(8), maqbool_extras(100, 8))

    def crash(path, data):
        raise OSError("simulated crash before the manifest is replaced")

    monkeypatch.setattr(db_storage, "write_atomic", crash)
    with pytest.raises(OSError, match="simulated"):
        db.save()
    monkeypatch.undo()
    assert len(list(root.glob("snapshot-*"))) == 2  # the uncommitted generation is on disk
    assert len(KeyframeDatabase.load(root)) == 36  # ...but the manifest still names the old one
    db.add(101, "r", 101.0, np.ones(8))  # the old log is still the live one
    db.save()
    db.close()
    assert len(list(root.glob("snapshot-*"))) == 1 and len(list(root.glob("log-*"))) == 1
    assert len(KeyframeDatabase.load(root)) == 37


def test_dropping_an_open_database_releases_its_directory(tmp_path):
    db = KeyframeDatabase.open(tmp_path / "db", dim=8, flush_interval_s=60.0)
    db.add(0, "r", 0.0, np.ones(8))  # arms the deferred-flush timer
    del db  # e.g. the node's reset_database replacing it
    again = KeyframeDatabase.open(tmp_path / "db", dim=8)
    assert len(again) == 1
    again.close()


def test_real_sequence_loop_found_and_survives_reload(rtabmap_loop_dir, tmp_path):
    """rtabmap_loop frames in order as keyframes (query, then insert), with a crude but
    real descriptor (32x24 grey thumbnail, mean removed): the exclusion window holds on
    real data, the loop's revisits find earlier frames, and a reload answers the same."""
    import cv2

    frames = sorted((rtabmap_loop_dir / "frames").glob("*.jpg"))
    thumbs = []
    for f in frames:
        g = cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (32, 24), interpolation=cv2.INTER_AREA)
        thumbs.append(g.astype(np.float32).ravel() - g.mean())
    pairs = {}
    for line in (rtabmap_loop_dir / "loop_pairs.csv").read_text().splitlines()[1:]:
        if line.strip():
            frame, earlier = line.split(",")
            pairs[int(frame)] = {int(x) for x in earlier.split()}
    db = KeyframeDatabase.open(tmp_path / "db", dim=len(thumbs[0]), flush_interval_s=0)
    found = 0
    for i, d in enumerate(thumbs):
        if i:
            c = db.search(d, 5, robot_id="cam", stamp=0.5 * i, exclude_recent_keyframes=10, exclude_recent_seconds=2.0)
            assert len(c) == min(5, max(0, i - 10)) and np.all(c.keyframe_ids < i - 10)
            found += bool(set(c.keyframe_ids.tolist()) & pairs.get(i, set()))
        db.add(i, "cam", 0.5 * i, d)
    assert found >= 30 and len(pairs) == 44  # 36 of the 44 revisits with this descriptor
    before = [db.search(d, 5, robot_id="cam", stamp=100.0, exclude_recent_keyframes=10) for d in thumbs]
    db.close()
    again = KeyframeDatabase.load(tmp_path / "db")
    for d, b in zip(thumbs, before):
        assert again.search(d, 5, robot_id="cam", stamp=100.0, exclude_recent_keyframes=10).keyframe_ids.tolist() \
            == b.keyframe_ids.tolist()


def test_failed_log_write_leaves_no_partial_record(tmp_path, monkeypatch):
    db = KeyframeDatabase.open(tmp_path / "db", dim=8)
    db.add(0, "r", 0.0, np.ones(8))
    size = db.log_bytes
    real_write = os.write

    def short_then_fail(fd, data):
        if len(data) > 40:
            real_write(fd, bytes(data[:40]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(OSError, match="No space"):
        db.add(1, "r", 1.0, np.ones(8))
    monkeypatch.undo()
    assert len(db) == 1 and db.log_bytes == size == (tmp_path / "db" / "log-000001.bin").stat().st_size
    db.add(2, "r", 2.0, np.ones(8))  # the disk is back: later records stay readable
    db.close()
    assert sorted(KeyframeDatabase.load(tmp_path / "db").keyframes()[1].tolist()) == [0, 2]
