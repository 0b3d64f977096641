"""Build the re-ranker named by config.method (the pipeline's only entry point here)."""
from __future__ import annotations

from maqbool_ros.core.rerank.netvlad import NetvladReranker


def make_reranker(config, engine):
    """config.method -> NetvladReranker / NetvladFullReranker / MaqboolReranker / LandmarkReranker."""
    method = config.method
    if method == "netvlad":
        return NetvladReranker(config)
    if method == "netvlad_full":
        from maqbool_ros.core.rerank.netvlad_full import NetvladFullReranker

        return NetvladFullReranker(config)
    if method == "maqbool":
        from maqbool_ros.core.rerank.maqbool.pdl import load_configured_pdl
        from maqbool_ros.core.rerank.maqbool.reranker import MaqboolReranker

        return MaqboolReranker(config, engine.head, load_configured_pdl(config, engine.head, engine))
    if method == "landmarks":
        from maqbool_ros.core.rerank.landmarks.reranker import LandmarkReranker

        return LandmarkReranker(config, engine)
    raise ValueError(f"method: unknown re-ranking method {method!r}")
