"""Where built and pulled models are kept: one folder for the default model, pulled registry
models and TensorRT engines (``MAQBOOL_CACHE_DIR`` overrides ``~/.cache/maqbool_ros``)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The model cache folder (not created here)."""
    root = os.environ.get("MAQBOOL_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "maqbool_ros")
    return Path(root)
