"""Generate docs/results.md: every method on every dataset in ../shared/data, both dims.

    python -m benchmarks.results_table                      # the whole table -> docs/results.md
    python -m benchmarks.results_table --datasets corridor --dims 512 --models default --out /tmp/r.md

Rows: dataset x model (embedded default / fitted on the dataset's map images / wide: the 4096-D
default searched at 512-D) x descriptor dim x method (netvlad; netvlad_full; maqbool at
n = 5, 10, 25, 50 in each --modes; landmarks at its configured M). Columns:
recall@1/5/10/20, PR-AUC, max recall at 100% precision, latency p50. The protocol is
`maqbool eval`'s (docs/evaluation.md). Each image is described once per (dataset, model,
dim) and reused by every method (descriptor latency is from that first pass); a method
that cannot run prints "n/a" with the reason instead of stopping the table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

BUDGETS = (5, 10, 25, 50)


def runs(modes) -> list[tuple[str, int | None, str | None]]:
    """(method, region budget, maqbool_mode) of every row, in table order."""
    out = [("netvlad", None, None), ("netvlad_full", None, None)]
    out += [("maqbool", n, mode) for mode in modes for n in BUDGETS]
    return out + [("landmarks", None, None)]


class CachingEngine:
    """Wraps a DescriptorEngine: one network pass per distinct image, shared by all methods."""

    def __init__(self, engine):
        self.engine, self._cache = engine, {}
        self.head, self.metadata = engine.head, engine.metadata
        self.first_pass_ms: list[float] = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def compute(self, image_rgb: np.ndarray):
        key = hashlib.blake2b(np.ascontiguousarray(image_rgb).data, digest_size=16).hexdigest()
        if key not in self._cache:
            t0 = time.perf_counter()
            self._cache[key] = self.engine.compute(image_rgb)
            self.first_pass_ms.append((time.perf_counter() - t0) * 1e3)
        return self._cache[key]


class TruncatedEngine(CachingEngine):
    """A P-D model searched at its first ``dim`` whitened dims, re-normalised (the paper's 512-D
    variant of a 4096-D model): the global descriptor shrinks, the whitened output (regions,
    netvlad_full) keeps all P dims."""

    def __init__(self, engine, dim: int):
        super().__init__(engine)
        self.dim = int(dim)
        self.metadata = {**engine.metadata, "descriptor_dim": str(self.dim)}
        self.head = replace(engine.head, descriptor_dim=self.dim)  # paper alpha, PDL metadata: D, not P
        path = Path(engine.model_path)
        self.model_path = str(path.with_name(f"{path.stem}_d{self.dim}{path.suffix}"))  # own default-PDL tag

    def compute(self, image_rgb: np.ndarray):
        from maqbool_ros.core.descriptor.netvlad_head import l2_normalize

        out = super().compute(image_rgb)
        w = np.asarray(out.whitened, np.float32)
        return replace(out, descriptor=l2_normalize(w[: self.dim].reshape(1, -1), axis=1)[0])


def fmt(x: float) -> str:
    return "—" if x is None or x != x else f"{x:.3f}"


def run_cell(dataset, cfg, engine) -> dict:
    from maqbool_ros.core.evaluation.protocol import evaluate_offline

    summary, _, _ = evaluate_offline(dataset, cfg, engine=engine, progress=False)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder of datasets")
    ap.add_argument("--datasets", nargs="+", default=None, help="dataset folder names (default: all)")
    ap.add_argument("--dims", nargs="+", type=int, default=[512, 4096])
    ap.add_argument("--models", nargs="+", choices=("default", "fitted", "wide"), default=["default", "fitted", "wide"],
                    help="wide: the default 4096-D model searched at --dims 512 (P = 4096 > D, where "
                         "netvlad_full and 4096-D regions differ from the 512-D search)")
    ap.add_argument("--methods", nargs="+", choices=("netvlad", "netvlad_full", "maqbool", "landmarks"),
                    default=["netvlad", "netvlad_full", "maqbool", "landmarks"])
    ap.add_argument("--modes", nargs="+", choices=("scale_free", "paper"), default=["scale_free", "paper"],
                    help="maqbool_mode rows (the decision layer is the default one for each mode)")
    ap.add_argument("--config", default=None, help="base YAML config (default: the schema's defaults)")
    ap.add_argument("--out", default=str(REPO / "docs" / "results.md"))
    args = ap.parse_args()

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.descriptor.default_model import default_model_path
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.evaluation import report as eval_report
    from maqbool_ros.core.evaluation.machine import machine_info
    from maqbool_ros.tools.eval import fit_model_on_refs

    base = MaqboolConfig.from_yaml(args.config) if args.config else MaqboolConfig()
    data = Path(args.data)
    names = args.datasets or sorted(p.name for p in data.iterdir() if p.is_dir())
    rows, notes = [], []
    fit_dir = Path(tempfile.mkdtemp(prefix="maqbool-results-"))
    for name in names:
        try:
            dataset = load_dataset(data / name)
        except (ValueError, FileNotFoundError) as exc:
            notes.append(f"{name}: skipped ({exc})")
            continue
        for model_kind in args.models:
            for dim in args.dims:
                cfg = base.replace(descriptor_dim=dim)
                label = f"{name} | {model_kind} | {dim}"
                try:
                    if model_kind == "wide":
                        if dim >= 4096:
                            continue
                        path = str(default_model_path(4096, progress=True))
                    elif model_kind == "default":
                        path = str(default_model_path(dim, progress=True))
                    else:
                        path = fit_model_on_refs(dataset, cfg, fit_dir)
                    cfg = cfg.replace(model_path=path)
                    raw = DescriptorEngine(path, device=cfg.device, image_size=(cfg.image_width, cfg.image_height),
                                           resize_policy=cfg.resize_policy)
                    engine = TruncatedEngine(raw, dim) if model_kind == "wide" else CachingEngine(raw)
                except Exception as exc:  # noqa: BLE001 - report and go on with the table
                    for method, n, mode in runs(args.modes):
                        if method in args.methods:
                            rows.append((label, method, n, mode, None, f"model unavailable: {exc}"))
                    continue
                for method, n, mode in runs(args.modes):
                    if method not in args.methods:
                        continue
                    t0 = time.perf_counter()
                    try:
                        run_cfg = cfg.replace(method=method, **({"region_budget": n} if n else {}),
                                              **({"maqbool_mode": mode} if mode else {}))
                        summary = run_cell(dataset, run_cfg, engine)
                        rows.append((label, method, n, mode, summary, ""))
                        status = f"R@1 {summary['recall@1']:.3f}"
                    except Exception as exc:  # noqa: BLE001
                        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
                        rows.append((label, method, n, mode, None, reason))
                        status = "n/a: " + reason
                    print(f"{label} | {method} {mode or ''} n={n or '-'}: {status} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
                desc = np.median(engine.first_pass_ms) if engine.first_pass_ms else float("nan")
                notes.append(f"{label}: descriptor p50 {desc:.1f} ms per image "
                             f"(first pass, {len(engine.first_pass_ms)} images)")
    write_markdown(Path(args.out), rows, notes, machine_info(), eval_report.git_commit(), base)
    print(f"wrote {args.out}")
    return 0


def write_markdown(out: Path, rows, notes, machine, commit, base) -> None:
    cmd = "python benchmarks/" + Path(__file__).name + (
        " " + " ".join(map(shlex.quote, sys.argv[1:])) if sys.argv[1:] else "")
    lines = [
        "# Results: recall and latency on the real datasets",
        "",
        "Generated by one command; do not edit by hand:",
        "",
        f"    {cmd}",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`, "
        f"on {machine['cpu']} ({machine['cores']} cores), Python {machine['python']}, "
        + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items()) + ".",
        "",
        "Protocol (docs/evaluation.md): query/ref datasets put every ref in the map and search every "
        "query; rtabmap_loop is a single sequence fed in order with the exclusion window "
        f"({base.exclude_recent_keyframes} keyframes / {base.exclude_recent_seconds:g} s). "
        f"Input {base.image_width}x{base.image_height} ({base.resize_policy}), top_k {base.top_k}. "
        "Model *default* is the embedded default model (no dataset images involved); *fitted* re-fits "
        "the NetVLAD centroids and whitening on the dataset's map images (refs, or the sequence's "
        "frames), unsupervised; *wide* is the default 4096-D model searched at 512-D (first 512 whitened dims, "
        "re-normalised), so P = 4096 > D and netvlad_full re-ranks with 4096 dims (with *default*, P = D and "
        "netvlad_full equals netvlad). maqbool (mode) rows use the default decision layer of that "
        "maqbool_mode, trained on the embedded synthetic sequence only: every number is out-of-sample. "
        "n is MAQBOOL's region budget; landmarks use their own M "
        f"(landmarks_max_regions = {base.landmarks_max_regions}). maxR@P100 = max recall at 100% precision. "
        "rerank p50 ms: median per query of the method's own work (per-keyframe extras such as region "
        "proposals + re-ranking); the descriptor pass is shared by all methods and listed under Notes. "
        f"cut by deadline: queries whose re-ranking hit rerank_deadline_ms ({base.rerank_deadline_ms:g} ms) "
        "and kept descriptor order for the rest.",
        "",
        "| dataset | model | dim | method | n | R@1 | R@5 | R@10 | R@20 | PR-AUC | maxR@P100 | rerank p50 ms "
        "| cut by deadline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, method, n, mode, s, reason in rows:
        ds, model, dim = [x.strip() for x in label.split("|")]
        method = f"{method} ({mode})" if mode else method
        n_txt = str(n) if n else ("M" if method == "landmarks" else "—")
        if s is None:
            why = reason.replace("|", "/")
            lines.append(f"| {ds} | {model} | {dim} | {method} | {n_txt} | n/a: {why} | | | | | | | |")
            continue
        lat = s["latency_ms"]
        rr = sum(lat.get(k, {}).get("p50", 0.0) for k in ("extras", "rerank"))
        cut = f"{s.get('num_incomplete_reranks', 0)}/{s.get('num_queries', 0)}"
        lines.append(f"| {ds} | {model} | {dim} | {method} | {n_txt} | " + " | ".join(
            fmt(s[k]) for k in ("recall@1", "recall@5", "recall@10", "recall@20", "pr_auc",
                                "max_recall_at_100_precision")) + f" | {rr:.1f} | {cut} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
