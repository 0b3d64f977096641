"""What opening a persistent database had to give up: the recovery report.

A node publishes `KeyframeDatabase.recovery_report.as_dict()` in its stats and
diagnostics; `lost_records` > 0 means keyframes (or removals) written before the
restart are not in the map. The bytes are never thrown away: torn tails and skipped
records are kept beside the log (`log-<g>.bin.torn`, `log-<g>.bin.skipped`, then
`-2`, `-3`, ...) until the user removes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REASONS = 20  # reasons kept in the report (all are logged)


@dataclass(frozen=True)
class RecoveryReport:
    """Records of the append log that the database could not take in when it was read.

    torn_records / torn_bytes: the log's tail was torn or truncated (a crash mid-write);
    every record header seen in it counts (at least 1). skipped_records: whole records
    that could not be applied (e.g. an id outside int64 written by an older version);
    skipped_reasons: the first MAX_REASONS reasons. torn_copy / skipped_copy: where those
    bytes were kept (only when opened for writing; load() writes nothing).
    """

    torn_records: int = 0
    torn_bytes: int = 0
    torn_copy: Path | None = None
    skipped_records: int = 0
    skipped_reasons: tuple[str, ...] = field(default_factory=tuple)
    skipped_copy: Path | None = None

    @property
    def lost_records(self) -> int:
        """Log records not in the map (torn + skipped)."""
        return self.torn_records + self.skipped_records

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings), for a node's stats."""
        return {"torn_records": self.torn_records, "torn_bytes": self.torn_bytes,
                "torn_copy": None if self.torn_copy is None else str(self.torn_copy),
                "skipped_records": self.skipped_records, "skipped_reasons": list(self.skipped_reasons),
                "skipped_copy": None if self.skipped_copy is None else str(self.skipped_copy),
                "lost_records": self.lost_records}
