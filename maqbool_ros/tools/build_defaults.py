"""`maqbool build-defaults`: build the default artifacts a configuration needs into the cache.

The runtime (the node, ~/detect) never builds a model: it finds the defaults in the cache
(core/artifacts.py) or stops with one line naming this command. `make install` runs it for
the default configuration; give the node's parameters file (--config) when it uses MAQBOOL
with the default decision layer, another descriptor_dim or another input size.

The other `maqbool` tools (eval, demo, train-pdl, ...) are the offline wing: they build a
missing default on first use (install_builder, called by the CLI), as before.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from maqbool_ros.tools.options import add_common_options, add_config_options, config_from_args


def build(kind: str, path: Path, spec: dict) -> None:
    """artifacts' Builder: write the default ``kind`` ("model" or "pdl") to ``path``."""
    if kind == "model":
        from maqbool_ros.core.descriptor.default_model import build_default_model

        build_default_model(path, spec["descriptor_dim"], spec["backbone"], spec.get("progress", False))
    elif kind == "pdl":
        from maqbool_ros.core.rerank.maqbool.default_pdl import build_default_pdl

        build_default_pdl(spec["engine"], path, spec["mode"], region_source=spec["region_source"],
                          region_min_area=spec["region_min_area"])
    else:
        raise ValueError(f"build-defaults: unknown artifact kind {kind!r}")


def install_builder() -> None:
    """Let this process build missing defaults on first use (the offline wing's rule)."""
    from maqbool_ros.core import artifacts

    artifacts.set_builder(build)


def ensure_defaults(cfg, progress: bool = False) -> list[tuple[str, Path, bool]]:
    """Build the defaults ``cfg`` relies on: the descriptor model when model_path is empty, the
    decision layer when method is maqbool with pdl_path empty. Returns (what, path, built now)."""
    from maqbool_ros.core import artifacts

    done: list[tuple[str, Path, bool]] = []
    previous = artifacts.set_builder(build)
    try:
        if not cfg.model_path:
            path = artifacts.default_model_file(cfg.descriptor_dim or artifacts.DEFAULT_DIM)
            existed = path.is_file()
            artifacts.model_path("", cfg.descriptor_dim, progress=progress)
            done.append(("model_path", path, not existed))
        if cfg.method == "maqbool" and not cfg.pdl_path:
            from maqbool_ros.core.descriptor.engine import DescriptorEngine

            engine = DescriptorEngine.from_config(cfg, threads=1)
            area = float(cfg.region_min_area)
            path = artifacts.default_pdl_file(engine, cfg.maqbool_mode, region_source=cfg.region_source,
                                              region_min_area=area)
            existed = path.is_file()
            artifacts.pdl_path(cfg, engine)
            done.append(("pdl_path", path, not existed))
    finally:
        artifacts.set_builder(previous)
    return done


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build-defaults", help="build the default descriptor model (and decision layer) into the cache",
        description="Build the default artifacts a configuration uses into the model cache ($MAQBOOL_CACHE_DIR "
                    "or ~/.cache/maqbool_ros): the default descriptor model when model_path is empty and, with "
                    "method maqbool and pdl_path empty, the default decision layer for that model and input "
                    "size. The node never builds them: it names this command when one is missing. `make "
                    "install` runs it for the default configuration; pass the node's parameters file with "
                    "--config for yours.")
    add_common_options(p, model=True, dim=True)
    add_config_options(p, "method")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    t0 = time.perf_counter()
    done = ensure_defaults(cfg, progress=not args.quiet)
    for field, path, built in done:
        print(f"{field}: {'built' if built else 'already built'} {path}")
    if not done:
        print("nothing to build: model_path (and pdl_path, if used) are given")
    print(f"build-defaults: {time.perf_counter() - t0:.1f} s")
    return 0
