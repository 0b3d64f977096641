"""Reading the append log back: replay with skip-and-report, and the recovery report.

A node publishes `KeyframeDatabase.recovery_report.as_dict()` in its stats and
diagnostics; `lost_records` > 0 means keyframes (or removals) written before the
restart are not in the map. The bytes are never thrown away: torn tails and skipped
records are kept beside the log (`log-<g>.bin.torn`, `log-<g>.bin.skipped`, then
`-2`, `-3`, ...) until the user removes them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.database import validate
from maqbool_ros.core.database.log import LogContents
from maqbool_ros.core.database.rows import RowStore

MAX_REASONS = 20  # reasons kept in the report (all are logged)
log = logging.getLogger(__name__)


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
        """Log records not in the map (torn + skipped); a lower bound when lost_records_exact is False."""
        return self.torn_records + self.skipped_records

    @property
    def lost_records_exact(self) -> bool:
        """False after a torn tail: a crash or truncation leaves no trace of the records that
        followed the cut (a log truncated to 44 bytes may have held 10), so only the record
        headers still seen in the tail are counted. Skipped records are counted exactly."""
        return self.torn_bytes == 0

    @property
    def lost_records_text(self) -> str:
        """The count as it should be read: "3", or "at least 1 (unknown: ...)"."""
        if self.lost_records_exact:
            return str(self.lost_records)
        return (f"at least {self.lost_records} (unknown: the log's tail was torn or truncated, and a log "
                "does not record how many records followed the cut)")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings), for a node's stats."""
        return {"torn_records": self.torn_records, "torn_bytes": self.torn_bytes,
                "torn_copy": None if self.torn_copy is None else str(self.torn_copy),
                "skipped_records": self.skipped_records, "skipped_reasons": list(self.skipped_reasons),
                "skipped_copy": None if self.skipped_copy is None else str(self.skipped_copy),
                "lost_records": self.lost_records, "lost_records_exact": self.lost_records_exact,
                "lost_records_text": self.lost_records_text}


def make_report(contents: LogContents, skipped: list[tuple[int, str]], torn_copy: Path | None = None,
                skipped_copy: Path | None = None) -> RecoveryReport:
    """The report of one log read: its torn tail and the records replay skipped."""
    return RecoveryReport(torn_records=contents.torn_records, torn_bytes=contents.torn_bytes,
                          torn_copy=torn_copy, skipped_records=len(skipped),
                          skipped_reasons=tuple(r for _, r in skipped[:MAX_REASONS]), skipped_copy=skipped_copy)


def replay(rows: RowStore, contents: LogContents, source: Path) -> list[tuple[int, str]]:
    """Apply the log's records to rows in order. A record that cannot be applied (a field
    out of range, a duplicate add, an unknown operation...) is skipped, logged and
    returned as (record index, reason); the others still apply."""
    skipped = []
    for i, (header, arrays) in enumerate(contents.records):
        try:
            apply_record(rows, header, arrays)
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            reason = f"record {i} at byte {contents.spans[i][0]}: {type(e).__name__}: {e}"
            log.warning("%s: skipped %s", source, reason)
            skipped.append((i, reason))
    return skipped


def apply_record(rows: RowStore, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Apply one log record (validated and all-or-nothing, like a live add/remove)."""
    op = header.get("op")
    if op == "add":
        if "descriptor" not in arrays:
            raise ValueError("add record without a descriptor")
        ex = {k[2:]: v for k, v in arrays.items() if k.startswith("x.")}
        rows.append(rows.validate(header["kf"], header["robot"], header["stamp"], arrays["descriptor"], ex,
                                  stored=True))
    elif op == "remove":
        robot = None if header["robot"] is None else str(header["robot"])
        rows.kill(rows.match_rows(validate.keyframe_ids(header["ids"]), robot))
    else:
        raise ValueError(f"unknown operation {op!r} {header.get('error', '')}".rstrip())
