"""Static import scanning shared by the packaging and wing tests."""
from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def imported_top_levels(paths: Iterable[Path]) -> set[str]:
    """Top-level module names that absolute imports in these Python files name (lazy ones too)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names
