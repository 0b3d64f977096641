"""How stable is the fitted alpha of MAQBOOL's scale_free update? Bootstrap on the default layer's pairs.

    OMP_NUM_THREADS=1 python -m benchmarks.alpha_stability [--config CFG.yaml] [--reps 100]

Builds the default decision layer's training lists exactly as default_pdl.build_default_pdl does
(embedded synthetic sequence, seeds SEQUENCE_SEEDS, the embedded default model, the config's
region source), gets their out-of-fold held-out lists from training.fit_scale_free, then refits
alpha on --reps bootstrap resamples of those lists with the old rule ("best" grid point) and the
one-standard-error rule ("one_se", the recipe). Prints the chosen alpha's spread per rule.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="YAML with region_source / region_min_area (default: defaults)")
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()

    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.data.demo_sequence import demo_sequence
    from maqbool_ros.core.descriptor.engine import DescriptorEngine
    from maqbool_ros.core.rerank.maqbool import default_pdl as dp
    from maqbool_ros.core.rerank.maqbool import training
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker
    from maqbool_ros.core.rerank.maqbool.update_fit import alpha_bootstrap, fit_update

    base = MaqboolConfig.from_yaml(args.config) if args.config else MaqboolConfig()
    cfg = MaqboolConfig(method="maqbool", region_budget=dp.BUDGET, top_k=dp.TOP_K,
                        exclude_recent_keyframes=dp.EXCLUDE_RECENT, region_source=base.region_source,
                        region_min_area=base.region_min_area, maqbool_mode="scale_free")
    engine = DescriptorEngine.from_config(cfg)
    reranker = MaqboolReranker(cfg, engine.head, UntrainedPdl())
    groups = []
    for seed in dp.SEQUENCE_SEEDS:
        ds = demo_sequence(seed)
        imgs, _ = training.load_images(ds)
        described = training.describe_images(engine, reranker, imgs, progress=False)
        pairs = training.candidate_lists(ds, described, described, cfg.top_k, cfg.exclude_recent_keyframes)
        groups += training.scale_free_groups(reranker, described, described, pairs, ds.name)
    heldout: list = []
    training.fit_scale_free(groups, dp.TREES, dp.SEED, heldout)
    print(f"{cfg.region_source} {cfg.region_min_area:g}: {len(groups)} training lists, {len(heldout)} held-out "
          f"lists (x {len(training.BUDGETS)} budgets)")
    for rule in ("best", "one_se"):
        fit = fit_update(heldout, rule)
        boot = alpha_bootstrap(heldout, args.reps, 0, rule)
        values, counts = np.unique(boot, return_counts=True)
        print(f"rule {rule}: alpha {fit['alpha']:g} {fit['p_map']} (held-out R@1 {fit['heldout_r1']:.4f}, best "
              f"{fit['heldout_r1_best']:.4f}, base {fit['heldout_r1_base']:.4f}, AUC {fit['heldout_auc']:.5f} vs base "
              f"{fit['heldout_auc_base']:.5f}); bootstrap x{args.reps}: 5/50/95 % {np.percentile(boot, [5, 50, 95])}, "
              f"std {boot.std():.3f}, counts {dict(zip(values.tolist(), counts.tolist()))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
