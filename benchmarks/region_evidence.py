"""Does a region source carry evidence beyond the whole-image distance? Leave-one-set-out diagnostic.

    OMP_NUM_THREADS=1 python -m benchmarks.region_evidence --data ../shared/data \
        --config cfg_a.yaml [cfg_b.yaml ...]

Per config (its region_source / region_min_area) and per evaluation set E of corridor,
rtabmap_loop and gardens_point_sample: a scale_free decision layer is trained exactly as
`maqbool train-pdl` trains it (training.fit_scale_free: DT-50, every n, alpha and the P map fitted
out-of-fold) on the OTHER two sets only, then applied to E's NetVLAD top-100 lists. Printed per n:

- AUC(P): within-list ranking AUC of the decision layer's P (positives above negatives), mean over
  E's queries that have both; AUC(-b): the same for the full-dim whole-image distance b alone
  (netvlad_full's order). AUC(P) > AUC(-b) would mean the regions add evidence.
- R@1 of b's order and of the layer's own update b + alpha s f(P) (its fitted alpha, never tuned on E).

Nothing is tuned on E: E only supplies the numbers. This is the training/eval recipe of the results
table with the pipeline replaced by the cached-feature path (training.py), so it is much faster.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SETS = ("corridor", "rtabmap_loop", "gardens_point_sample")


def auc(scores: np.ndarray, pos: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties count half."""
    p, n = scores[pos], scores[~pos]
    if not len(p) or not len(n):
        return float("nan")
    return float((p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean())


def groups_of(engine, reranker, ds, cfg):
    """Per query list: {n: (x, y)} at every budget, base distances 'd', positives (train_pdl's groups)."""
    from maqbool_ros.core.rerank.maqbool import training

    q_imgs, r_imgs = training.load_images(ds)
    refs = training.describe_images(engine, reranker, r_imgs, f"{ds.name} refs", progress=False)
    queries = refs if q_imgs is r_imgs else training.describe_images(engine, reranker, q_imgs, ds.name, progress=False)
    pairs = training.candidate_lists(ds, queries, refs, cfg.top_k, cfg.exclude_recent_keyframes)
    return training.scale_free_groups(reranker, queries, refs, pairs, ds.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--config", nargs="+", required=True, help="YAML configs, one per region source to compare")
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--bootstrap", type=int, default=0,
                    help="also print the chosen alpha over this many bootstrap resamples of each fold's held-out lists")
    ap.add_argument("--pdl", default=None,
                    help="evaluate this trained decision layer (e.g. `maqbool train-pdl --bag` output) on every --eval "
                         "set instead of leave-one-set-out layers (it must not have seen them)")
    ap.add_argument("--eval", nargs="+", default=list(SETS), choices=SETS, help="evaluation sets (default: all three)")
    args = ap.parse_args()

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.datasets import load_dataset
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.maqbool.features import list_scale
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl, load_pdl
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker
    from maqbool_ros.core.rerank.maqbool.training import BUDGETS, fit_scale_free
    from maqbool_ros.core.rerank.maqbool.update import updated_distances
    from maqbool_ros.core.rerank.maqbool.update_fit import alpha_bootstrap

    fixed = load_pdl(args.pdl) if args.pdl else None
    need = args.eval if fixed is not None else SETS
    datasets = {name: load_dataset(Path(args.data) / name) for name in need}
    print("| region source | min area | eval set | layer alpha, map | n | AUC(P) | AUC(-b) | R@1 b | R@1 maqbool |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.config:
        cfg = MaqboolConfig.from_yaml(path).replace(method="maqbool", maqbool_mode="scale_free")
        engine = DescriptorEngine.from_config(cfg)
        reranker = MaqboolReranker(cfg, engine.head, UntrainedPdl())
        groups = {name: groups_of(engine, reranker, ds, cfg) for name, ds in datasets.items()}
        for ev in args.eval:
            heldout: list = []
            if fixed is not None:
                src = (fixed.meta.get("region_source"), fixed.meta.get("region_min_area"))
                if src != (cfg.region_source, cfg.region_min_area) or fixed.meta.get("mode") != "scale_free":
                    raise SystemExit(f"--pdl {args.pdl}: trained for {src} mode {fixed.meta.get('mode')}, "
                                     f"not {cfg.region_source} {cfg.region_min_area:g} scale_free")
                forest, update = fixed, fixed.meta["update"]
            else:
                train = [g for name in SETS if name != ev for g in groups[name]]
                forest, update = fit_scale_free(train, args.trees, 0, heldout)
            if args.bootstrap and heldout:
                boot = alpha_bootstrap(heldout, args.bootstrap, 0)
                print(f"<!-- {cfg.region_source} {cfg.region_min_area:g} layer for {ev}: alpha {update['alpha']:g} "
                      f"(held-out R@1 {update['heldout_r1']:.3f}, best {update['heldout_r1_best']:.3f}, base "
                      f"{update['heldout_r1_base']:.3f}, SE {update['heldout_r1_se']:.3f}); bootstrap x{len(boot)}: "
                      f"alpha 5/50/95 % {np.percentile(boot, [5, 50, 95]).tolist()}, share 0: "
                      f"{np.mean(boot == 0):.2f} -->", flush=True)
            for n in BUDGETS:
                a_p, a_b, r_b, r_m = [], [], [], []
                for g in groups[ev]:
                    x, _ = g[n]
                    p = forest.predict(x)
                    a_p.append(auc(p, g["pos"]))
                    a_b.append(auc(-g["d"], g["pos"]))
                    if g["has"]:
                        new = updated_distances(g["d"], p, list_scale(g["d"]), update["alpha"], update["p_map"])
                        r_b.append(bool(g["pos"][np.argmin(g["d"])]))
                        r_m.append(bool(g["pos"][np.argsort(new, kind="stable")[0]]))
                print(f"| {cfg.region_source} | {cfg.region_min_area:g} | {ev} | {update['alpha']:g}, "
                      f"{update['p_map']} | {n} | {np.nanmean(a_p):.3f} | {np.nanmean(a_b):.3f} | "
                      f"{np.mean(r_b):.3f} | {np.mean(r_m):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
