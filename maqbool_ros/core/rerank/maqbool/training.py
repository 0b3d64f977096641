"""Labelled MAQBOOL pairs from a dataset: for training the PDL and measuring recall.

Every image is described once (engine pass, proposals, region descriptors); the
NetVLAD top-K of each query is then an exact numpy search, and the 112-D features of
any region budget n come from the cached region descriptors, so a sweep over n costs
no extra network passes. Protocols match maqbool_ros.core.evaluation.protocol: query_ref
searches all refs; sequence searches the frames before i - exclude_recent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maqbool_ros.core.rerank.maqbool.features import (
    base_distances,
    correlation_distances,
    list_scale,
    pairwise_features,
    scale_free_features,
)

BUDGETS = (5, 10, 25, 50)  # scale_free layers are trained on every budget, so n is a trade-off, not a shift


@dataclass
class DescribedImages:
    """Per image: global descriptor, MAQBOOL query-side extras, database-side extras."""

    descriptors: np.ndarray          # (N, dim) float32
    query_extras: list[dict]         # keyframe_extras()[0] per image
    db_regions: np.ndarray           # (N, 10, P) float16
    db_areas: np.ndarray             # (N, 10) float32


@dataclass
class QueryPairs:
    """One query's NetVLAD top-K: candidate image indices, distances, positives."""

    query: int
    candidates: np.ndarray           # (K,) indices into the searched images
    distances: np.ndarray            # (K,) ascending squared L2
    positive: np.ndarray             # (K,) bool
    has_positive: bool               # any positive exists among all searchable images
    labelled: np.ndarray | None = None  # (K,) bool: rows with a known label (None: all; bag_labels)


def _rows(pair: QueryPairs) -> np.ndarray | slice:
    """The candidate rows that are trained on."""
    return slice(None) if pair.labelled is None else pair.labelled


def describe_images(engine, reranker, images, desc: str = "describe", progress: bool = True) -> DescribedImages:
    """Run engine + reranker.keyframe_extras on every image of an ImageList (or sequence)."""
    from tqdm import tqdm

    descs, queries, regions, areas = [], [], [], []
    for i in tqdm(range(len(images)), desc=desc, unit="img", disable=not progress):
        out = engine.compute(images[i])
        q, db = reranker.keyframe_extras(out)
        descs.append(np.asarray(out.descriptor, np.float32))
        queries.append(q)
        regions.append(db["maqbool_regions"])
        areas.append(db["maqbool_areas"])
    return DescribedImages(np.stack(descs), queries, np.stack(regions), np.stack(areas))


def _top_k(query: np.ndarray, refs: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sum((refs[allowed] - query) ** 2, axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return allowed[order], d[order]


def candidate_lists(dataset, queries: DescribedImages, refs: DescribedImages, top_k: int = 100,
                    exclude_recent: int = 20) -> list[QueryPairs]:
    """NetVLAD top-K per query with labels (query_ref: all refs; sequence: frames < i - exclude_recent)."""
    pairs = []
    for qi, positives in enumerate(dataset.positives):
        if dataset.kind == "query_ref":
            allowed = np.arange(len(refs.descriptors))
        else:
            allowed = np.arange(max(0, qi - exclude_recent))
        if len(allowed) == 0:
            continue
        cand, d = _top_k(queries.descriptors[qi], refs.descriptors, allowed, top_k)
        pos = np.isin(cand, positives)
        pairs.append(QueryPairs(qi, cand, d, pos, bool(np.isin(positives, allowed).any())))
    return pairs


def pair_features(reranker, queries: DescribedImages, refs: DescribedImages, pair: QueryPairs,
                  region_budget: int, mode: str = "paper") -> np.ndarray:
    """(K, 112) features of one query's candidates at region budget n (mode paper / scale_free)."""
    rows, areas = reranker.query_rows(queries.query_extras[pair.query], region_budget)
    C = correlation_distances(rows, refs.db_regions[pair.candidates])
    if mode == "scale_free":
        return scale_free_features(C, pair.distances)
    return pairwise_features(C, areas, refs.db_areas[pair.candidates], pair.distances)


def whole_distances(reranker, queries: DescribedImages, refs: DescribedImages, pair: QueryPairs) -> np.ndarray:
    """(K,) full-dim whole-image distances (features.base_distances): scale_free's base distance."""
    rows, _ = reranker.query_rows(queries.query_extras[pair.query], 10)
    return base_distances(correlation_distances(rows[:1], refs.db_regions[pair.candidates][:, :1]))


def training_set(reranker, queries: DescribedImages, refs: DescribedImages, pairs: list[QueryPairs],
                 region_budget: int, mode: str = "paper") -> tuple[np.ndarray, np.ndarray]:
    """Stacked features and labels Y = 1 + isPos (docs/method-reference.md, M6)."""
    x = [pair_features(reranker, queries, refs, p, region_budget, mode)[_rows(p)] for p in pairs]
    y = [1.0 + p.positive[_rows(p)].astype(np.float64) for p in pairs]
    return np.concatenate(x).astype(np.float32), np.concatenate(y)


def scale_free_groups(reranker, queries: DescribedImages, refs: DescribedImages, pairs: list[QueryPairs],
                      name: str) -> list[dict]:
    """fit_scale_free's input for one set: per query list {n: (x, y)} at every n of BUDGETS (labelled
    rows only), base distances "d", positives "pos", "has" (a positive exists) and the set's "set" name.

    The one builder of `maqbool train-pdl` and benchmarks/region_evidence.py, so both fit on the
    same pairs."""
    out = []
    for p in pairs:
        rows = _rows(p)
        g = {n: (pair_features(reranker, queries, refs, p, n, "scale_free")[rows], 1.0 + p.positive[rows])
             for n in BUDGETS}
        g.update(d=whole_distances(reranker, queries, refs, p)[rows], pos=p.positive[rows], has=p.has_positive,
                 set=name)
        out.append(g)
    return out


def _folds(groups) -> tuple[list, list, list]:
    """(all lists in canonical order, fold 0, fold 1): sets sorted by name (stable within a set);
    each set's first half of lists is fold 0, its second half fold 1, so neighbouring frames of a
    sequence stay together and the split does NOT depend on the order the sets were given in."""
    ordered = sorted(groups, key=lambda g: str(g.get("set", "")))  # stable: a set keeps its list order
    by_set: dict[str, list] = {}
    for g in ordered:
        by_set.setdefault(str(g.get("set", "")), []).append(g)
    f0 = [g for gs in by_set.values() for g in gs[:len(gs) // 2]]
    f1 = [g for gs in by_set.values() for g in gs[len(gs) // 2:]]
    return ordered, f0, f1


def fit_scale_free(groups, trees: int, seed: int, heldout_out: list | None = None) -> tuple[object, dict]:
    """groups: per query list, {n: (x (K, 112), y (K,))} plus its base distances under key "d" and
    its set's name under "set" (scale_free_groups).

    Out-of-fold P (2 folds, _folds: per set, first / second half of its lists) picks alpha and the
    P map on pairs the forest never saw (update_fit.fit_update, one-standard-error rule); the returned
    forest is then fitted on everything. The result depends on the sets, not on their order.
    heldout_out: a list that receives the held-out (d, P, scale, positive) lists (for
    update_fit.alpha_bootstrap)."""
    from maqbool_ros.core.rerank.maqbool.pdl_fit import train_forest
    from maqbool_ros.core.rerank.maqbool.update_fit import fit_update

    def stack(gs):
        return (np.concatenate([g[n][0] for g in gs for n in BUDGETS]),
                np.concatenate([g[n][1] for g in gs for n in BUDGETS]))

    ordered, f0, f1 = _folds(groups)
    heldout = []
    for fit_part, held_part in ((f0, f1), (f1, f0)):
        if not fit_part or not held_part:
            continue
        x, y = stack(fit_part)
        if not len(y) or len(np.unique(y)) < 2:
            continue
        forest = train_forest(x, y, trees=trees, seed=seed)
        for g in held_part:
            for n in BUDGETS:
                heldout.append((g["d"], forest.predict(g[n][0]), list_scale(g["d"]), g[n][1] > 1.5))
    if heldout_out is not None:
        heldout_out.extend(heldout)
    update = fit_update(heldout)
    update["heldout_budgets"] = list(BUDGETS)
    x, y = stack(ordered)
    return train_forest(x, y, trees=trees, seed=seed), update


def load_images(dataset) -> tuple[object, object]:
    """(query images, searchable images) of a dataset (the same list for a sequence)."""
    if dataset.kind == "query_ref":
        return dataset.queries, dataset.refs
    return dataset.frames, dataset.frames


def train_pdl(engine, datasets, cfg, trees: int = 50, seed: int = 0, progress: bool = True,
              log=print, verify_top: int = 0, verification=None) -> tuple[object, dict]:
    """Train MAQBOOL's decision layer for ``engine``'s model on labelled datasets.

    One recipe for `maqbool train-pdl` and the embedded default PDL: each dataset's images
    are described once, each query's NetVLAD top ``cfg.top_k`` (sequences: frames older
    than ``cfg.exclude_recent_keyframes``) gives 112-D pair features at ``cfg.region_budget``
    (mode scale_free: at every n of BUDGETS, with alpha and the P map fitted out-of-fold, update.py)
    regions labelled 1 + isPos, and a bagged forest is fitted. Returns (forest, metadata).
    verify_top > 0: labels come from geometric verification of each list's first verify_top
    candidates (bag_labels.label_by_verification, VerificationParams ``verification``), not
    from the dataset's ground truth.
    """
    from maqbool_ros.core.rerank.maqbool.pdl import UntrainedPdl
    from maqbool_ros.core.rerank.maqbool.pdl_fit import train_forest
    from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

    reranker = MaqboolReranker(cfg.replace(method="maqbool"), engine.head, UntrainedPdl())
    mode = cfg.maqbool_mode
    xs, ys, names, groups = [], [], [], []
    for ds in datasets:
        q_imgs, r_imgs = load_images(ds)
        refs = describe_images(engine, reranker, r_imgs, f"{ds.name} refs", progress)
        queries = refs if q_imgs is r_imgs else describe_images(engine, reranker, q_imgs, f"{ds.name} queries",
                                                                progress)
        pairs = candidate_lists(ds, queries, refs, cfg.top_k, cfg.exclude_recent_keyframes)
        if verify_top > 0:
            from maqbool_ros.core.rerank.maqbool.bag_labels import label_by_verification

            if ds.kind != "sequence":
                raise ValueError(f"{ds.name}: verification labels need a single sequence (a recorded run)")
            pairs = label_by_verification(r_imgs, pairs, verification, verify_top, log)
        if mode == "scale_free":
            new = scale_free_groups(reranker, queries, refs, pairs, ds.name)
            groups += new
            x = np.concatenate([g[n][0] for g in new for n in BUDGETS]) if new else np.zeros((0, 112), np.float32)
            y = np.concatenate([g[n][1] for g in new for n in BUDGETS]) if new else np.zeros(0)
        else:
            x, y = training_set(reranker, queries, refs, pairs, cfg.region_budget)
        xs.append(x)
        ys.append(y)
        names.append(ds.name)
        if log is not None:
            log(f"{ds.name}: {len(pairs)} queries, {len(y)} pairs, {int((y > 1.5).sum())} positive")
    if not xs or not sum(len(y) for y in ys):
        raise ValueError("dataset: no query has a candidate to train on (too few images?)")
    x, y = np.concatenate(xs), np.concatenate(ys)
    update = None
    if mode == "scale_free":
        model, update = fit_scale_free(groups, trees, seed)
    else:
        model = train_forest(x, y, trees=trees, seed=seed)
    meta = {"descriptor_dim": int(engine.head.descriptor_dim), "region_dim": int(engine.head.output_dim),
            "backbone": str(engine.metadata.get("backbone", "")), "trees": trees, "seed": seed,
            "trained_on": names, "pairs": int(len(y)), "positives": int((y > 1.5).sum()),
            "top_k": cfg.top_k, "region_budget": cfg.region_budget, "region_source": cfg.region_source,
            "region_min_area": cfg.region_min_area,
            "oob_r2": float(getattr(model, "oob_score_", float("nan"))), "mode": mode,
            "labels": f"geometric verification of the top {verify_top}" if verify_top > 0 else "ground truth"}
    if update is not None:
        meta.update(update=update, region_budget=list(BUDGETS))
    return model, meta
