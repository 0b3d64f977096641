"""Builds the configured keyframe database: FAISS (in process, default) or Milvus (a
milvus-lite file or a Milvus server shared by a fleet; docs/milvus.md)."""
from __future__ import annotations

BACKENDS = ("faiss", "milvus")


def make_database(cfg, dim: int):
    """The database the pipeline uses, from a MaqboolConfig and the descriptor dimension."""
    if cfg.database_backend == "milvus":
        try:
            import pymilvus  # noqa: F401

            from maqbool_ros.core.database.milvus import MilvusKeyframeDatabase
        except ImportError as e:
            raise ValueError(f"database_backend: milvus needs pymilvus and milvus-lite ({e}); "
                             "pip install -r requirements-python.txt") from None
        return MilvusKeyframeDatabase(dim, cfg.database_uri, collection=cfg.database_collection,
                                      map_id=cfg.database_map_id, index_type=cfg.index_type,
                                      buffer_max=cfg.database_buffer_max, timeout_s=cfg.database_timeout_s)
    if cfg.database_backend != "faiss":
        raise ValueError(f"database_backend: {cfg.database_backend!r} is not one of {list(BACKENDS)}")
    from maqbool_ros.core.database.keyframes import KeyframeDatabase

    dim = int(dim)
    if cfg.database_path:
        return KeyframeDatabase.open(cfg.database_path, dim=dim, index_type=cfg.index_type, device=cfg.device,
                                     create=True, load=cfg.load_database_on_start,
                                     flush_interval_s=cfg.save_interval_s)
    return KeyframeDatabase(dim, index_type=cfg.index_type, device=cfg.device)
