"""The loop-closure pipeline: image -> descriptor -> database search -> re-ranking.

The same object serves the ROS node (two worker threads call :meth:`describe` and
:meth:`query` / :meth:`insert`), offline evaluation and the demo (:meth:`process`).
Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from maqbool_ros.core.config import FIELDS, MaqboolConfig
from maqbool_ros.core.database.map_ids import MAP_ID_KEY, decode_map_ids, encode_map_id
from maqbool_ros.core.pipeline.results import Keyframe, QueryResult  # noqa: F401 - re-exported: the node and tools import them here
from maqbool_ros.core.sequence.stage import Ranked, SequenceStage, single_frame
from maqbool_ros.core.types import Candidates
from maqbool_ros.core.verification.temporal import strongest_first

#: Config fields that may change while the pipeline runs (the node's live parameters):
#: every field the schema does not mark read-only.
LIVE_FIELDS = tuple(name for name, f in FIELDS.items() if not f.metadata["read_only"])


class LoopClosurePipeline:
    """Descriptor engine + keyframe database + re-ranker, configured by one MaqboolConfig."""

    def __init__(self, config: MaqboolConfig | None = None, engine=None, database=None, reranker=None):
        self._config = config or MaqboolConfig()
        self._config.validate()
        _check_backend_supports(self._config)
        from maqbool_ros.core.descriptor.engine import DescriptorEngine, check_descriptor_dim

        if engine is None:
            engine = DescriptorEngine.from_config(self._config)
        self.engine = engine
        check_descriptor_dim(self._config.descriptor_dim, engine)  # an injected engine too
        if reranker is None:
            from maqbool_ros.core.rerank.factory import make_reranker

            reranker = make_reranker(self._config, engine)
        self.reranker = reranker
        if database is None:
            database = self._make_database()
        self.database = database
        self.sequence = SequenceStage()
        self.verifier = None
        if self._config.verification_enabled:
            from maqbool_ros.core.verification.stage import VerificationStage

            self.verifier = VerificationStage(self._config, database)

    # --- configuration -----------------------------------------------------------
    @property
    def sequence_note(self) -> str:
        """Why sequence matching is off although sequence_length asks for it ("" when it is not)."""
        if self._config.sequence_length > 1 and self._config.database_backend != "faiss":
            return (f"sequence.length {self._config.sequence_length}: sequence matching needs database.backend "
                    f"faiss; single-frame ranking on {self._config.database_backend} (docs/sequence.md)")
        return ""

    def sequence_length_used(self) -> int:
        """The window length queries use: sequence_length, or 1 where the backend has no runs."""
        return 1 if self.sequence_note else self._config.sequence_length

    @property
    def config(self) -> MaqboolConfig:
        return self._config

    def update_config(self, **changes) -> MaqboolConfig:
        """Apply live parameter changes (validated); they take effect on the next keyframe."""
        frozen = sorted(k for k in changes if k not in LIVE_FIELDS)
        if frozen:
            raise ValueError(f"cannot change {', '.join(frozen)} while running (restart the node)")
        new = self._config.replace(**changes)
        _check_backend_supports(new)
        self._config = new
        if "save_interval_s" in changes:
            self.database.flush_interval_s = float(new.save_interval_s)
        if hasattr(self.reranker, "config"):
            self.reranker.config = new
        if self.verifier is not None:
            self.verifier.configure(new)
        return new

    def _make_database(self):
        from maqbool_ros.core.database.backend import make_database

        return make_database(self._config, int(self.engine.metadata["descriptor_dim"]))

    # --- stages ------------------------------------------------------------------
    def describe(self, image_rgb: np.ndarray, keyframe_id: int, robot_id: str, stamp: float,
                 received: float | None = None, camera=None, depth: np.ndarray | None = None) -> Keyframe:
        """Stage 1 (descriptor worker): one network pass, and the local features when
        verification is enabled. The id must fit int64 and the stamp be finite (ValueError
        naming the field): checked before any work is done. camera: verification.Camera of the
        image (None: the camera_* parameters); depth: registered depth image (uint16 mm or
        float32 m). A malformed depth image or mismatched camera is dropped and noted in
        Keyframe.notes: the keyframe goes on with 2-D verification or none."""
        if isinstance(keyframe_id, bool) or not isinstance(keyframe_id, (int, np.integer)) \
                or not -(2**63) <= int(keyframe_id) <= 2**63 - 1:
            raise ValueError(f"keyframe_id: {keyframe_id!r} is not an int64")
        if not np.isfinite(stamp):
            raise ValueError(f"stamp: {stamp!r} is not finite")
        t0 = time.perf_counter()
        out = self.engine.compute(image_rgb)
        kf = Keyframe(int(keyframe_id), str(robot_id), float(stamp), out,
                      received=received if received is not None else t0)
        kf.timings_ms["descriptor"] = (time.perf_counter() - t0) * 1e3
        if self.verifier is not None:
            t1 = time.perf_counter()
            kf.local_features, kf.camera, kf.notes = self.verifier.describe(image_rgb, depth, camera)
            kf.timings_ms["local_features"] = (time.perf_counter() - t1) * 1e3
        return kf

    def query(self, kf: Keyframe, add_to_database: bool | None = None, query: bool = True,
              excluded_ids=()) -> QueryResult | None:
        """Stage 2 (re-rank worker): per-keyframe extras, search, re-rank, then insert.

        add_to_database: None follows config.insert_keyframes. excluded_ids: keyframe ids of
        the query's own robot that are never candidates (e.g. ORB-SLAM3's covisible ones);
        top_k is still filled from the others. The re-ranking deadline
        (rerank_deadline_ms) counts from the start of this stage, so region proposals and
        geometric verification of the top-N are inside it.
        """
        cfg = self._config
        if add_to_database is None:
            add_to_database = cfg.insert_keyframes
        t0 = time.perf_counter()
        deadline = t0 + cfg.rerank_deadline_ms / 1e3
        stream = (kf.robot_id, kf.map_id)
        # A local copy, never written back to kf: an engine may cache its outputs, and a keyframe
        # queried twice (two pipelines, a retry) must not be standardised twice.
        output = kf.output
        if cfg.standardize_window > 0:  # before search and storage: both see the same descriptor
            output = dataclasses.replace(output, descriptor=self.sequence.standardizer.apply(
                stream, output.descriptor, cfg.standardize_window))
        query_extras, db_extras = self.reranker.keyframe_extras(output)
        if kf.local_features is not None and self.verifier is not None:
            db_extras = {**db_extras, **self.verifier.db_extras(kf.local_features)}
        if kf.map_id:
            db_extras = {**db_extras, MAP_ID_KEY: encode_map_id(kf.map_id)}
        kf.timings_ms["extras"] = (time.perf_counter() - t0) * 1e3
        result = None
        if query:
            t1 = time.perf_counter()
            rules = dict(robot_id=kf.robot_id, stamp=kf.stamp, exclude_recent_keyframes=cfg.exclude_recent_keyframes,
                         exclude_recent_seconds=cfg.exclude_recent_seconds, robot_filter=cfg.robot_filter,
                         max_distance=cfg.max_descriptor_distance)
            if cfg.map_filter != "all":  # only the FAISS backend knows it (_check_backend_supports)
                rules.update(map_id=kf.map_id, map_filter=cfg.map_filter)
            # One call: the database's own lock keeps a compaction from renumbering the rows in between.
            excluded = {int(i) for i in excluded_ids}
            cands, cand_extras = self.database.search_with_extras(output.descriptor, cfg.top_k + len(excluded),
                                                                  **rules)
            if excluded or len(cands) > cfg.top_k:
                cands, cand_extras = _without(cands, cand_extras, kf.robot_id, excluded, cfg.top_k)
            kf.timings_ms["search"] = (time.perf_counter() - t1) * 1e3
            t2 = time.perf_counter()
            rr = self.reranker.rerank(query_extras, cands, cand_extras, deadline)
            kf.timings_ms["rerank"] = (time.perf_counter() - t2) * 1e3
            kf.timings_ms.update({f"rerank.{k}": v for k, v in rr.timings_ms.items()})
            if self.sequence_length_used() > 1:
                ranked = self.sequence.rank(cfg, self.database, stream, kf.stamp, output.descriptor, cands,
                                            cand_extras, rr, rules, kf.timings_ms,
                                            frozenset((kf.robot_id, i) for i in excluded))
            else:
                ranked = single_frame(cands, cand_extras, rr)
            result = self._result(kf, ranked, rr)
            if self.verifier is not None and kf.local_features is not None:
                t3 = time.perf_counter()
                final = ranked.candidates
                keys = list(zip(final.robot_ids, (int(k) for k in final.keyframe_ids)))
                result.checks = self.verifier.verify(kf.local_features, kf.camera, keys, ranked.extras,
                                                     np.arange(len(final)), deadline, also=ranked.single_best)
                # geometric re-ranking: a verified candidate outranks an unverified one, and among
                # verified ones the most inliers win (the loop a back end should take first)
                order = strongest_first(result.checks.verified, result.checks.num_inliers)
                if order != list(range(len(order))):
                    result.take(order)
                kf.timings_ms["verify"] = (time.perf_counter() - t3) * 1e3
        if add_to_database:
            self.database.add(kf.keyframe_id, kf.robot_id, kf.stamp, output.descriptor, db_extras)
        kf.timings_ms["total"] = (time.perf_counter() - kf.received) * 1e3
        if result is not None:
            result.timings_ms = dict(kf.timings_ms)
        return result

    def process(self, image_rgb: np.ndarray, keyframe_id: int, robot_id: str = "robot0",
                stamp: float = 0.0, add_to_database: bool | None = None, query: bool = True,
                camera=None, depth: np.ndarray | None = None) -> QueryResult | None:
        """Both stages in the calling thread (offline evaluation, demo); add_to_database None
        follows config.insert_keyframes; camera/depth as in describe()."""
        kf = self.describe(image_rgb, keyframe_id, robot_id, stamp, camera=camera, depth=depth)
        return self.query(kf, add_to_database=add_to_database, query=query)

    def _result(self, kf: Keyframe, ranked: Ranked, rr) -> QueryResult:
        cfg = self._config
        c = ranked.candidates
        return QueryResult(
            keyframe_id=kf.keyframe_id, robot_id=kf.robot_id, stamp=kf.stamp,
            keyframe_ids=np.asarray(c.keyframe_ids), robot_ids=list(c.robot_ids), stamps=np.asarray(c.stamps),
            descriptor_distances=np.asarray(c.distances), reranked_distances=ranked.reranked_distances,
            scores=ranked.scores, method=cfg.method,
            region_source=cfg.region_source if cfg.method == "maqbool" else "",
            region_budget=int(rr.region_budget), num_reranked=int(rr.num_reranked),
            complete=bool(rr.complete), timings_ms={}, score_kind=ranked.score_kind, map_id=kf.map_id,
            map_ids=decode_map_ids(ranked.extras, len(c)), sequence_length=ranked.sequence_length,
            sequence_scores=ranked.sequence_scores, sequence_aligned=ranked.sequence_aligned)

    # --- database management -----------------------------------------------------
    def save_database(self, path: str | None = None) -> str:
        """Write a snapshot of the database (to path, or the configured database_path)."""
        if self._config.database_backend == "milvus":  # the server holds the map: flush it there
            self.database.save()
            return self._config.database_uri
        target = path or self._config.database_path
        if not target:
            raise ValueError("database_path: no path configured and none given")
        self.database.save(target)
        return target

    def close(self) -> None:
        """Flush and release a persistent database (its file lock)."""
        self.database.close()

    def reset_database(self) -> None:
        """Empty the database in place (same object, under its own lock). A persistent one
        has its files moved aside to ``<database_path>.prev-<time>`` (never deleted)."""
        self.database.reset()
        self.sequence.reset()  # windows refer to keyframes that are gone
        if self.verifier is not None:
            self.verifier.temporal.reset()  # chains refer to keyframes that are gone


def _check_backend_supports(cfg: MaqboolConfig) -> None:
    """map_filter reads the FAISS map's rows; ValueError naming the parameter on another backend."""
    if cfg.database_backend != "faiss" and cfg.map_filter != "all":
        raise ValueError(f"database.map_filter: {cfg.map_filter!r} needs database.backend faiss "
                         f"(not yet on {cfg.database_backend}; docs/sequence.md)")


def _without(cands: Candidates, extras: dict[str, np.ndarray], robot_id: str, excluded: set[int],
             k: int) -> tuple[Candidates, dict[str, np.ndarray]]:
    """Candidates minus the query robot's excluded ids, at most k (still ascending distance)."""
    keep = np.array([not (r == robot_id and int(i) in excluded)
                     for r, i in zip(cands.robot_ids, cands.keyframe_ids, strict=True)], dtype=bool)
    idx = np.flatnonzero(keep)[:k]
    return cands.take(idx), {key: arr[idx] for key, arr in extras.items()}
