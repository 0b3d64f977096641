"""Keyframe database benchmark: add and search (k=100) latency, HNSW recall, memory.

    python -m benchmarks.database            # 512-D 1k/10k/100k/1M, 4096-D 1k/10k/100k
    python -m benchmarks.database --quick    # skips 512-D 1M and 4096-D 100k
    python -m benchmarks.database --milvus 10000,100000,1000000   # FAISS vs Milvus side by side
    python -m benchmarks.database --backend milvus-server         # + a real Milvus server, 10k and 100k

Search uses the pipeline's default exclusion rules (same robot: last 20 keyframes or
10 s), 4 robots, clustered unit vectors (near neighbours exist, like a revisited map).
Latencies are medians after warm-up; recall@k is HNSW's overlap with the exact answer.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before numpy/faiss load their thread pools
import numpy as np  # noqa: E402

from maqbool_ros.core.evaluation.machine import machine_line  # noqa: E402

K = 100
ROBOTS = ("robot0", "robot1", "robot2", "robot3")


def fmt(x: float, spec: str) -> str:
    """A table cell; nan (not measured for this row) as a dash."""
    return "–" if x != x else format(x, spec)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine() -> str:
    import faiss

    gpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return f"{machine_line('numpy', 'faiss')} (GPUs visible to faiss: {gpu})"


def make_data(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(16, n // 50), dim), dtype=np.float32)
    x = centres[rng.integers(0, len(centres), n)]
    x += 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def build(data: np.ndarray, index_type: str, progress, device: str = "auto") -> tuple[object, np.ndarray]:
    from maqbool_ros.core.database.keyframes import KeyframeDatabase

    db = KeyframeDatabase(data.shape[1], index_type=index_type, device=device)
    times = np.empty(len(data))
    for i, vec in enumerate(progress(data, desc=f"add {index_type} {len(data)}x{data.shape[1]}", leave=False)):
        t = time.perf_counter()
        db.add(i, ROBOTS[i % len(ROBOTS)], 0.5 * i, vec)
        times[i] = time.perf_counter() - t
    return db, times


def time_search(db, queries: np.ndarray, stamp: float, warmup: int) -> tuple[np.ndarray, list]:
    """Per-query latencies (ms) and result ids, warm-up queries left out."""
    results, times = [], []
    for j, q in enumerate(queries):
        t = time.perf_counter()
        c = db.search(q, K, robot_id=ROBOTS[j % len(ROBOTS)], stamp=stamp, exclude_recent_keyframes=20,
                      exclude_recent_seconds=10.0)
        times.append(time.perf_counter() - t)
        results.append(c.keyframe_ids)
    return np.asarray(times[warmup:]) * 1e3, results[warmup:]


def median_search(db, queries: np.ndarray, stamp: float, warmup: int) -> tuple[float, list]:
    times, results = time_search(db, queries, stamp, warmup)
    return float(np.median(times)), results


def run_case(dim: int, n: int, index_types: list[str], n_queries: int, warmup: int, progress) -> list[dict]:
    data = make_data(n, dim)
    rng = np.random.default_rng(1)
    queries = data[rng.integers(0, n, n_queries + warmup)] + 0.05 * rng.standard_normal((n_queries + warmup, dim))
    rows, exact = [], None
    for index_type in index_types:
        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        db, add_times = build(data, index_type, progress)
        build_s = time.perf_counter() - t0
        mem = rss_mb() - before
        search_ms, ids = median_search(db, queries, 0.5 * n, warmup)
        if index_type == "flat":
            exact = ids
        recall = (np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ids, exact)])
                  if exact is not None else float("nan"))
        rows.append(dict(dim=dim, n=n, index=index_type, add_us=np.median(add_times) * 1e6, build_s=build_s,
                         search_ms=search_ms, recall=recall, mem_mb=mem,
                         payload_mb=db.bytes_per_keyframe() * n / 2**20))
        print(f"  {dim}-D {n:>8} {index_type:5}: add {rows[-1]['add_us']:.1f} us, search {search_ms:.2f} ms",
              file=sys.stderr)
        if index_type == "hnsw":  # the recall/latency trade-off of a wider search, same graph
            db._search.index.ef_search = 512
            ms, ids = median_search(db, queries, 0.5 * n, warmup)
            rec = np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ids, exact)])
            rows.append(dict(rows[-1], index="hnsw ef=512", search_ms=ms, recall=rec, add_us=float("nan"),
                             build_s=float("nan"), mem_mb=float("nan")))
        del db
    return rows


def gpu_vs_cpu(sizes: list[int], n_queries: int, warmup: int, progress) -> list[dict]:
    """Exact (flat) search k=100 at 512-D on the CPU scan and on the FAISS GPU index (device auto;
    the CPU scan again where FAISS has no GPU), the same keyframes and queries in one run. The
    database is built on the CPU, saved, and loaded with device auto (the GPU index is then
    filled in one bulk add, as a node's restart does)."""
    import tempfile

    from maqbool_ros.core.database.keyframes import KeyframeDatabase

    rows = []
    for n in sizes:
        data = make_data(n, 512)
        rng = np.random.default_rng(1)
        queries = data[rng.integers(0, n, n_queries + warmup)] + 0.05 * rng.standard_normal((n_queries + warmup, 512))
        cpu, _ = build(data, "flat", progress, device="cpu")
        cpu_ms, cpu_ids = median_search(cpu, queries, 0.5 * n, warmup)
        with tempfile.TemporaryDirectory() as tmp:
            cpu.save(Path(tmp) / "db")
            del cpu
            t0 = time.perf_counter()
            gpu = KeyframeDatabase.load(Path(tmp) / "db", device="auto")
            load_s = time.perf_counter() - t0
        on_gpu = bool(gpu._search.index.on_gpu)
        gpu_ms, gpu_ids = median_search(gpu, queries, 0.5 * n, warmup)
        same = float(np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(gpu_ids, cpu_ids)]))
        rows.append(dict(dim=512, n=n, k=K, cpu_ms=cpu_ms, gpu_ms=gpu_ms if on_gpu else None, gpu_index=on_gpu,
                         load_s=load_s, same_top_k=same))
        print(f"  512-D {n:>8}: cpu {cpu_ms:.2f} ms, {'gpu' if on_gpu else 'cpu again'} {gpu_ms:.2f} ms",
              file=sys.stderr)
        del gpu, data
        gc.collect()
    return rows


def compare_exact(n: int, n_queries: int, warmup: int) -> list[tuple[str, float, float]]:
    """Exact search options at n x 512, interleaved query by query so that machine load
    hits all of them alike: (name, median ms, p10 ms)."""
    import faiss

    from maqbool_ros.core.database.index import HalfScan, exact_top_k
    from maqbool_ros.core.database.keyframes import KeyframeDatabase

    data = make_data(n, 512)
    db = KeyframeDatabase(512)
    for i, vec in enumerate(data):
        db.add(i, ROBOTS[i % len(ROBOTS)], 0.5 * i, vec)
    rng = np.random.default_rng(2)
    qs = data[rng.integers(0, n, n_queries + warmup)] + 0.05 * rng.standard_normal((n_queries + warmup, 512))
    qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
    ok = db.admissible(ROBOTS[1], 0.5 * n, 20, 10.0, "all")
    desc, excluded = db._rows.descriptors, int((~ok).sum())
    flat = faiss.IndexFlatIP(512)
    flat.add(desc)

    def numpy_sgemv(q):
        s = desc @ q
        s[~ok] = -np.inf
        return np.argpartition(-s, K - 1)[:K]

    def scan(min_bytes):
        def run(q):
            HalfScan.PARALLEL_MIN_BYTES = min_bytes
            return exact_top_k(desc, q, K, ok, db._search.scan)
        return run

    methods = {"numpy fp32 sgemv + mask": numpy_sgemv,
               "faiss IndexFlatIP (k + excluded)": lambda q: flat.search(q[None], K + excluded),
               "fp16 scan, 2 shards, 1 thread": scan(1 << 62),
               "fp16 scan, 2 shards, 2 threads": scan(0)}
    times: dict[str, list[float]] = {m: [] for m in methods}
    for j, q in enumerate(qs):
        for name, fn in methods.items():
            t = time.perf_counter()
            fn(q)
            if j >= warmup:
                times[name].append(time.perf_counter() - t)
    HalfScan.PARALLEL_MIN_BYTES = 32 << 20
    return [(m, float(np.median(t) * 1e3), float(np.percentile(t, 10) * 1e3)) for m, t in times.items()]


def persistence_case(n: int, p: int, flush_interval_s: float, progress) -> dict:
    """Logged add latency (512-D + MAQBOOL extras at P), then save() and load() times."""
    import tempfile

    from maqbool_ros.core.database.keyframes import KeyframeDatabase

    data = make_data(n, 512)
    rng = np.random.default_rng(3)
    regions = rng.standard_normal((16, 10, p)).astype(np.float16)
    with tempfile.TemporaryDirectory(prefix="kfdb-bench-") as tmp:
        db = KeyframeDatabase.open(Path(tmp) / "db", dim=512, flush_interval_s=flush_interval_s)
        times = np.empty(n)
        for i, vec in enumerate(progress(data, desc=f"logged add P={p}", leave=False)):
            ex = {"maqbool_regions": regions[i % 16], "maqbool_areas": np.ones(10, np.float32)}
            t = time.perf_counter()
            db.add(i, ROBOTS[i % len(ROBOTS)], 0.5 * i, vec, ex)
            times[i] = time.perf_counter() - t
        t = time.perf_counter()
        db.save()
        save_s = time.perf_counter() - t
        db.close()
        t = time.perf_counter()
        KeyframeDatabase.load(Path(tmp) / "db")
        load_s = time.perf_counter() - t
        size = sum(f.stat().st_size for f in (Path(tmp) / "db").rglob("*") if f.is_file())
    return dict(n=n, p=p, flush=flush_interval_s, add_us=float(np.median(times) * 1e6),
                add_p99_us=float(np.percentile(times, 99) * 1e6), save_s=save_s, load_s=load_s,
                disk_mb=size / 2**20)


#: Index types compared on the Milvus server: the backend's own (flat, hnsw) and two IVF
#: variants an operator may pre-create the collection with (docs/milvus.md "Sizing"); the
#: backend sends no nprobe, so IVF runs with the server's default, as a node would.
SERVER_INDEXES = {"flat": None, "hnsw": None, "ivf_flat": ("IVF_FLAT", {"nlist": 1024}),
                  "ivf_sq8": ("IVF_SQ8", {"nlist": 1024})}


def wait_indexed(db, n: int, timeout_s: float = 1800.0) -> float:
    """Flush (seals the segments) and wait until the server's index covers n rows; seconds waited."""
    t0 = time.perf_counter()
    db.flush()
    client = db._client
    name = client.list_indexes(db.collection)[0]
    while time.perf_counter() - t0 < timeout_s:
        info = client.describe_index(db.collection, name)
        if int(info.get("indexed_rows", 0)) >= n and info.get("state", "Finished") == "Finished":
            return time.perf_counter() - t0
        time.sleep(1.0)
    raise TimeoutError(f"index of {db.collection} not built in {timeout_s} s: {info}")


def milvus_row(db, label: str, data, n: int, extra: int, queries, stamp: float, warmup: int, exact: list,
               progress, server: bool) -> dict:
    """Bulk load n keyframes, then `extra` single add()s as a node does, then the timed
    searches: insert rate, add latency, search p50/p95, agreement with FAISS exact."""
    t0 = time.perf_counter()
    for lo in progress(range(0, n, 10_000), desc=f"{label} bulk {n}", leave=False):
        hi = min(n, lo + 10_000)
        db.add_many(np.arange(lo, hi), [ROBOTS[i % len(ROBOTS)] for i in range(lo, hi)], 0.5 * np.arange(lo, hi),
                    data[lo:hi])
    bulk = n / (time.perf_counter() - t0)
    index_s = wait_indexed(db, n) if server else float("nan")
    single = []
    for i in range(n, n + extra):
        t = time.perf_counter()
        db.add(i, ROBOTS[i % len(ROBOTS)], 0.5 * i, data[i])
        single.append(time.perf_counter() - t)
    times, ids = time_search(db, queries, stamp, warmup)
    # a node's cycle: search right after this process's own add (Session consistency waits
    # until the server has applied that write)
    cycle = []
    for j, i in enumerate(range(n + extra, n + extra + 10)):
        db.add(i, ROBOTS[0], 0.5 * i, data[i])
        t = time.perf_counter()
        db.search(queries[j], K, robot_id=ROBOTS[0], stamp=0.5 * i, exclude_recent_keyframes=20,
                  exclude_recent_seconds=10.0)
        cycle.append(time.perf_counter() - t)
    assert db.search_failures == 0, "a search timed out: raise timeout_s"
    print(f"  {label} {n}: bulk {bulk:.0f}/s, add {np.median(single) * 1e3:.2f} ms, search "
          f"{np.median(times):.1f} ms", file=sys.stderr)
    return dict(n=n, backend=label, add_ms=np.median(single) * 1e3, bulk=bulk, index_s=index_s,
                p50=np.percentile(times, 50), p95=np.percentile(times, 95), cycle=np.median(cycle) * 1e3,
                recall=recall_at_k(ids, exact), same=np.mean([list(a) == list(b) for a, b in zip(ids, exact)]))


def recall_at_k(ids: list, exact: list) -> float:
    return float(np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ids, exact)]))


def milvus_case(n: int, n_queries: int, warmup: int, progress, workdir: Path, server_uri: str = "") -> list[dict]:
    """FAISS (flat) and Milvus (milvus-lite file FLAT; with server_uri, the Milvus server
    with each of SERVER_INDEXES) on the same 512-D data and queries."""
    from maqbool_ros.core.database import milvus_schema as ms
    from maqbool_ros.core.database.milvus import MilvusKeyframeDatabase

    dim, extra = 512, 200  # extra: keyframes added one by one after the bulk load (as a node does)
    data = make_data(n + extra + 10, dim)
    rng = np.random.default_rng(1)
    queries = data[rng.integers(0, n, n_queries + warmup)] + 0.05 * rng.standard_normal((n_queries + warmup, dim))
    stamp = 0.5 * (n + extra)
    t0 = time.perf_counter()
    faiss_db, add_times = build(data[:n + extra], "flat", progress)
    faiss_bulk = (n + extra) / (time.perf_counter() - t0)
    times, exact = time_search(faiss_db, queries, stamp, warmup)
    del faiss_db
    gc.collect()
    rows = [dict(n=n, backend="faiss flat (in process)", add_ms=np.median(add_times) * 1e3, bulk=faiss_bulk,
                 index_s=float("nan"), p50=np.percentile(times, 50), p95=np.percentile(times, 95),
                 cycle=float("nan"), recall=1.0, same=1.0)]
    # a long RPC timeout: milvus-lite searches at 1M take seconds (the node's default is 5 s)
    db = MilvusKeyframeDatabase(dim, str(workdir / f"bench-{n}.db"), timeout_s=300.0)
    rows.append(milvus_row(db, "milvus-lite FLAT (local file)", data, n, extra, queries, stamp, warmup, exact,
                           progress, server=False))
    db.close()
    for index, spec in SERVER_INDEXES.items() if server_uri else ():
        if spec is not None:  # a collection an operator created with this index: the backend uses it as is
            ms.INDEX.setdefault(index, spec)
        db = MilvusKeyframeDatabase(dim, server_uri, collection=f"bench_{n}_{index}", index_type=index,
                                    timeout_s=300.0)
        label = f"Milvus 2.3 server {ms.INDEX[index][0]}"
        rows.append(milvus_row(db, label, data, n, extra, queries, stamp, warmup, exact, progress, server=True))
        db._client.drop_collection(db.collection)  # frees the server's memory for the next index
        db.close()
    return rows


def milvus_main(sizes: list[int], n_queries: int, warmup: int, backend: str) -> None:
    import contextlib
    import tempfile

    import milvus_lite
    import pymilvus
    from tqdm import tqdm

    rows = []
    with tempfile.TemporaryDirectory(prefix="maqbool-bench-milvus-") as tmp, contextlib.ExitStack() as stack:
        uri, versions = "", f"pymilvus {pymilvus.__version__}, milvus-lite {milvus_lite.__version__}"
        if backend == "milvus-server":
            import milvus

            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
            from helpers.milvus_server import EmbeddedMilvusServer

            t0 = time.perf_counter()
            server = stack.enter_context(EmbeddedMilvusServer(Path(tmp) / "server"))
            uri = server.uri
            versions += (f", embedded Milvus server {milvus.__version__} (started in "
                         f"{time.perf_counter() - t0:.1f} s, binaries unpacked)")
        for n in sizes:
            rows += milvus_case(n, n_queries, warmup, tqdm, Path(tmp), uri)
    print(f"\nFAISS vs Milvus, 512-D, k={K}, exclusions: last 20 keyframes / 10 s of the query robot; {versions}")
    print(machine())
    print("| keyframes | backend | add one (ms, median) | bulk insert (keyframes/s) | index build (s) "
          "| search k=100 p50 (ms) | p95 (ms) | search after own add (ms, median) | recall@100 vs FAISS exact "
          "| same top-100 as FAISS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['backend']} | {r['add_ms']:.3f} | {r['bulk']:,.0f} | {fmt(r['index_s'], '.1f')} | "
              f"{r['p50']:.1f} | {r['p95']:.1f} | {fmt(r['cycle'], '.1f')} | {r['recall']:.3f} | {r['same']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip 512-D 1M and 4096-D 100k")
    ap.add_argument("--queries", type=int, default=30, help="timed queries per case (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up queries (default 5)")
    ap.add_argument("--hnsw-max", type=int, default=100_000,
                    help="largest map built as HNSW (one-by-one HNSW inserts are slow; default 100000)")
    ap.add_argument("--milvus", type=str, default=None, metavar="N,N,...",
                    help="only the FAISS vs Milvus comparison at these map sizes (e.g. 10000,100000,1000000)")
    ap.add_argument("--backend", choices=("milvus-lite", "milvus-server"), default="milvus-lite",
                    help="with --milvus: milvus-server adds the embedded Milvus 2.3 server (PyPI milvus), "
                         "FLAT/HNSW/IVF_FLAT/IVF_SQ8, to FAISS and milvus-lite (default sizes 10000,100000)")
    ap.add_argument("--gpu-vs-cpu", type=str, default=None, metavar="N,N,...",
                    help="only exact search k=100 on the CPU scan vs the FAISS GPU index at these sizes")
    ap.add_argument("--json", type=Path, default=None, help="with --gpu-vs-cpu: also write the rows here")
    args = ap.parse_args()
    if args.gpu_vs_cpu:
        import json

        from tqdm import tqdm

        rows = gpu_vs_cpu([int(x) for x in args.gpu_vs_cpu.split(",")], args.queries, args.warmup, tqdm)
        print(machine())
        for r in rows:
            print(r)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return
    if args.milvus or args.backend == "milvus-server":
        sizes = args.milvus or "10000,100000"
        milvus_main([int(x) for x in sizes.split(",")], args.queries, args.warmup, args.backend)
        return
    from tqdm import tqdm

    cases = [(512, 1_000), (512, 10_000), (512, 100_000), (4096, 1_000), (4096, 10_000)]
    if not args.quick:
        cases.insert(3, (512, 1_000_000))
        cases.append((4096, 100_000))
    rows = []
    for dim, n in cases:
        types = ["flat"] + (["hnsw"] if n <= args.hnsw_max else [])
        rows += run_case(dim, n, types, args.queries, args.warmup, tqdm)
    print(f"\nKeyframe database, k={K}, exclusions: last 20 keyframes / 10 s of the query robot; "
          "hnsw: M=32, efConstruction=40, efSearch=max(128, k')")
    print(machine())
    print("| dim | keyframes | index | add (us, median) | build (s) | search k=100 (ms, median) "
          "| recall@100 vs flat | RSS growth (MiB) | payload (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dim']} | {r['n']:,} | {r['index']} | {fmt(r['add_us'], '.1f')} | {fmt(r['build_s'], '.1f')} | "
              f"{r['search_ms']:.2f} | {r['recall']:.3f} | {fmt(r['mem_mb'], '.0f')} | {r['payload_mb']:.0f} |")
    print("\nPersistent database (append log; fsync every add when flush=0), 512-D + MAQBOOL extras:")
    print("| keyframes | P | flush_interval_s | add (us, median) | add p99 (us) | save (s) | load (s) "
          "| on disk (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for n, p, flush in ((2000, 512, 0.0), (2000, 512, 30.0), (500, 4096, 0.0), (500, 4096, 30.0)):
        r = persistence_case(n, p, flush, tqdm)
        print(f"| {r['n']:,} | {r['p']} | {r['flush']:g} | {r['add_us']:.0f} | {r['add_p99_us']:.0f} | "
              f"{r['save_s']:.2f} | {r['load_s']:.2f} | {r['disk_mb']:.0f} |")
    print(f"\nExact options at 100,000 x 512, k={K}, interleaved per query (median / p10 ms):")
    for name, med, p10 in compare_exact(100_000, args.queries, args.warmup):
        print(f"  {name:34s} {med:8.2f} {p10:8.2f}")
    print("\nRegion cache (MAQBOOL layout: maqbool_regions (10, P) float16 + maqbool_areas (10,) float32):")
    for p in (4096, 512):
        per = 10 * p * 2 + 10 * 4
        print(f"  P={p}: {per:,} B per keyframe, {per * 100_000 / 2**30:.2f} GiB per 100k keyframes "
              f"(+ {512 * 6 + 29} B per keyframe for the 512-D descriptor, its fp16 scan copy and ids)")


if __name__ == "__main__":
    main()
