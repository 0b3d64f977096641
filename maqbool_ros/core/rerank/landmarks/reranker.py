"""`landmarks` re-ranker: ConvNet-landmark matching of the FAISS top-K
(docs/method-reference.md, L7A).

Per keyframe (once): guidance A = ReLU(feature_map), local descriptors X =
landmark_features (the preceding conv layer; feature_map itself when the model does not
export it), top-M regions, pooled unit vectors, visual words and IDF weights. Per query:
mutual-NN matching against every candidate's stored regions, in chunks so that the
deadline is honoured; candidates are ordered by Q_mean, highest first, ties broken by
descriptor distance.

Scores (score_kind "landmarks_match"): Q_mean / w_max^2 clipped to [0, 1], where w_max is
the largest word weight (the vocabulary's largest IDF, 1 without vocabulary). A mutual
pair adds at most s_ij w_i w_j <= w_max^2 and Q_mean averages over the query's regions,
so Q_mean <= w_max^2: the division keeps the order and bounds the score by 1. Candidates
not reached before the deadline score 0.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from maqbool_ros.core.rerank.landmarks.matching import match_batch
from maqbool_ros.core.rerank.landmarks.mining import Regions, mine_regions, pool_regions
from maqbool_ros.core.rerank.landmarks.vocab import Vocabulary
from maqbool_ros.core.types import Candidates, EngineOutput, RerankResult

log = logging.getLogger(__name__)


class LandmarkReranker:
    """Implements the Reranker protocol (maqbool_ros.core.types) for method=landmarks.

    config: a MaqboolConfig (landmarks_max_regions, vocab_path) or None for defaults.
    vocabulary: overrides config.vocab_path; with neither, every region weighs 1.
    support: "rect" (authors' code) or "component" (pooling support, L3.4); None:
        config.landmarks_support.
    chunk_size: candidates matched per batch between deadline checks.
    """

    name = "landmarks"

    def __init__(self, config=None, engine=None, vocabulary: Vocabulary | None = None, *,
                 support: str | None = None, chunk_size: int = 25):
        from maqbool_ros.core.config import MaqboolConfig

        self.config = config or MaqboolConfig()
        if vocabulary is None:
            from maqbool_ros.core import artifacts

            path = artifacts.vocabulary_path(self.config)
            vocabulary = Vocabulary.load(path) if path else None
        self.vocabulary = vocabulary
        self.support = support or self.config.landmarks_support
        self.chunk_size = max(1, int(chunk_size))
        # The database needs fixed shapes per key, so the stored region count is fixed
        # when the re-ranker is built (landmarks_max_regions is read-only while running).
        self.max_regions = int(self.config.landmarks_max_regions)
        self._warned_fallback = False
        self.last_extras_timings_ms: dict[str, float] = {}  # stage -> ms of the last keyframe

    # --- per keyframe ------------------------------------------------------------
    def regions(self, out: EngineOutput) -> tuple[Regions, np.ndarray]:
        """Mine the top-M regions of one engine output: (regions, (m, D2) unit vectors)."""
        guidance = np.maximum(np.asarray(out.feature_map, dtype=np.float32), 0.0)
        features = out.landmark_features
        if features is None:
            if not self._warned_fallback:
                log.warning("model exports no landmark_features: pooling the NetVLAD feature "
                            "map itself (X = A's pre-ReLU map), not the preceding layer")
                self._warned_fallback = True
            features = out.feature_map
        # Exact energy ties beyond M are cut (keep_ties=False) so that query and database
        # sides have the same fixed region budget.
        regions = mine_regions(guidance, self.max_regions, keep_ties=False)
        return regions, pool_regions(regions, guidance, features, self.support)

    def keyframe_extras(self, out: EngineOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Query side: vectors (m, D2) float32, words (m,) int32 (-1 without vocabulary),
        weights (m,) float32, boxes (m, 4) int32 pixel x0, y0, x1, y1 (exclusive) in
        out.image, energies, channels. Database side (fixed shapes): lm_vectors (M, D2)
        float16 zero-padded, lm_weights (M,) float32 (0 on padding), lm_count (1,) int32.
        """
        t0 = time.perf_counter()
        regions, vectors = self.regions(out)
        t1 = time.perf_counter()
        m = len(regions)
        if self.vocabulary is not None:
            words, weights = self.vocabulary.weights(vectors)
        else:
            words, weights = np.full(m, -1, dtype=np.int32), np.ones(m, dtype=np.float32)
        self.last_extras_timings_ms = {"regions": (t1 - t0) * 1e3, "words": (time.perf_counter() - t1) * 1e3}
        stride = int(out.stride)
        img_h, img_w = np.asarray(out.image).shape[:2]
        r0, c0, r1, c1 = regions.rects.T
        boxes = np.stack([c0 * stride, r0 * stride, np.minimum((c1 + 1) * stride, img_w),
                          np.minimum((r1 + 1) * stride, img_h)], axis=1).astype(np.int32)
        query = {"vectors": vectors, "words": words.astype(np.int32), "weights": weights.astype(np.float32),
                 "boxes": boxes, "energies": regions.energies, "channels": regions.channels.astype(np.int32)}
        big_m, dim = self.max_regions, vectors.shape[1]
        lm_vectors = np.zeros((big_m, dim), dtype=np.float16)
        lm_vectors[:m] = vectors
        lm_weights = np.zeros(big_m, dtype=np.float32)
        lm_weights[:m] = weights
        database = {"lm_vectors": lm_vectors, "lm_weights": lm_weights,
                    "lm_count": np.array([m], dtype=np.int32)}
        return query, database

    @property
    def score_scale(self) -> float:
        """w_max^2, the largest score a region pair can add (1 without vocabulary)."""
        if self.vocabulary is None or not len(self.vocabulary.idf):
            return 1.0
        w_max = float(np.max(self.vocabulary.idf))
        return w_max * w_max if w_max > 0 else 1.0

    # --- per query ---------------------------------------------------------------
    def rerank(self, query: dict[str, np.ndarray], candidates: Candidates,
               candidate_extras: dict[str, np.ndarray], deadline: float) -> RerankResult:
        """Order candidates by Q_mean (highest first; ties: smaller descriptor distance).

        scores: Q_mean / w_max^2 clipped to [0, 1] (0 when the deadline stopped before it).
        reranked_distances: the ascending descriptor distances re-dealt in the new order
        (the candidate at rank r gets the r-th smallest distance), so they are monotone in
        rank and on the netvlad scale. Unscored candidates follow the scored ones in
        descriptor-distance order.
        """
        t0 = time.perf_counter()
        k = len(candidates)
        dist = np.asarray(candidates.distances, dtype=np.float32).reshape(k)
        m = int(len(query["vectors"]))
        q_mean = np.zeros(k, dtype=np.float32)
        done = 0
        if k:
            missing = {"lm_vectors", "lm_weights", "lm_count"} - set(candidate_extras)
            if missing:
                raise ValueError(f"candidate_extras: {sorted(missing)} missing (the database was built "
                                 "with another method; rebuild it with method landmarks)")
            vectors = candidate_extras["lm_vectors"]
            weights = candidate_extras["lm_weights"]
            counts = np.asarray(candidate_extras["lm_count"]).reshape(k)
            if vectors.shape[0] != k or vectors.shape[-1] != query["vectors"].shape[1]:
                raise ValueError(f"lm_vectors: candidates have shape {vectors.shape}, expected "
                                 f"({k}, M, {query['vectors'].shape[1]}) (database built with another model?)")
            while done < k and time.perf_counter() < deadline:
                stop = min(k, done + self.chunk_size)
                scores = match_batch(query["vectors"], query["weights"], vectors[done:stop],
                                     weights[done:stop], counts[done:stop])
                q_mean[done:stop] = np.nan_to_num(scores.q_mean, nan=0.0)
                done = stop
        scored = np.arange(k) < done  # candidates are matched in index (= descriptor) order
        # lexsort: last key is primary -> scored first, then -Q_mean, then distance.
        order = np.lexsort((dist, -q_mean, ~scored)).astype(np.int64)
        reranked = np.empty(k, dtype=np.float32)
        reranked[order] = np.sort(dist)
        # Clipping also covers weights above w_max in a database built with another vocabulary.
        scores = np.clip(q_mean / self.score_scale, 0.0, 1.0).astype(np.float32)
        return RerankResult(order=order, reranked_distances=reranked, scores=scores,
                            score_kind="landmarks_match", num_reranked=int(done), complete=done == k,
                            region_budget=m, timings_ms={"match": (time.perf_counter() - t0) * 1e3})
