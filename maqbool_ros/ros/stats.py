"""Rolling latency statistics (p50/p95/p99 per stage) and the health level for diagnostics."""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from maqbool_ros.core.stats import latency_percentiles
from maqbool_ros.core.text import MAX_LINE_CHARS, printable


class LatencyStats:
    """Keeps the last `window` samples per stage name (milliseconds)."""

    def __init__(self, window: int = 1000):
        self._window = window
        self._samples: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def add(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            for name, value in timings_ms.items():
                self._samples.setdefault(name, collections.deque(maxlen=self._window)).append(float(value))

    def summary(self, percentiles: tuple[int, ...] = (50, 95, 99)) -> dict[str, dict[str, float]]:
        """stage -> {"p50", "p95", "p99", "mean", "max", "count"} (core's one latency summary)."""
        with self._lock:
            snapshot = {k: list(v) for k, v in sorted(self._samples.items()) if v}
        return latency_percentiles(snapshot, percentiles)


class Counters:
    """Thread-safe event counters; error() also logs, at most once a second per kind, so a
    flood of bad input keeps the log readable (the count stays exact)."""

    def __init__(self, log: Callable[[str], object]):
        self._log = log
        self._counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._last_logged: dict[str, tuple[float, int]] = {}
        self.last_error = ""

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def error(self, key: str, text: str) -> None:
        """Count a problem of kind key and log text (rate-limited); the text is cut and escaped
        (core.text.printable): it may carry a peer's strings, and it also reaches diagnostics."""
        text = printable(text, MAX_LINE_CHARS)
        now = time.monotonic()
        with self._lock:
            self._counts[key] += 1
            self.last_error = text
            last, suppressed = self._last_logged.get(key, (-1e9, 0))
            if now - last < 1.0:
                self._last_logged[key] = (last, suppressed + 1)
                return
            self._last_logged[key] = (now, 0)
        more = f" ({suppressed} more not logged)" if suppressed else ""
        self._log(f"{key.replace('_', ' ')}: {text}{more}")

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


#: Counters that mean something went wrong (dropped, malformed or failed work).
PROBLEM_COUNTS = ("dropped_ingress", "dropped_rerank", "malformed_headers", "malformed_images",
                  "descriptor_errors", "rerank_errors", "publish_errors", "callback_errors",
                  "malformed_depth", "missing_depth", "malformed_camera_info", "camera_mismatch",
                  "verification_errors", "malformed_keyframes", "duplicate_keyframes", "uninformative_images")
OK, WARN, ERROR = 0, 1, 2


class Health:
    """The node's health for /diagnostics, from recent events rather than totals.

    WARN: problems counted since the previous assessment (one stats period), or no keyframe
    for `no_keyframe_timeout_s`. ERROR: a publisher with incompatible QoS was seen on the
    image topic and no keyframe arrived since.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.last_keyframe: float | None = None
        self.qos_incompatible_at: float | None = None
        self.qos_policy = ""
        self._previous: dict[str, int] = {}

    def keyframe(self) -> None:
        with self._lock:
            self.last_keyframe = self._clock()

    def incompatible_qos(self, policy: str) -> None:
        with self._lock:
            self.qos_incompatible_at, self.qos_policy = self._clock(), policy

    def qos_problem(self) -> bool:
        with self._lock:
            return self.qos_incompatible_at is not None and (
                self.last_keyframe is None or self.last_keyframe < self.qos_incompatible_at)

    def assess(self, counts: dict[str, int], no_keyframe_timeout_s: float,
               recovery: dict | None = None) -> tuple[int, str]:
        """(level, message); the problem counts are compared with the previous call's. recovery:
        the database's recovery report (as_dict): lost log records WARN until the map is reset,
        so the user decides what to do with the kept copies."""
        recent = {k: counts.get(k, 0) - self._previous.get(k, 0) for k in PROBLEM_COUNTS}
        self._previous = {k: counts.get(k, 0) for k in PROBLEM_COUNTS}
        level, problems = OK, []
        if self.qos_problem():
            level = ERROR
            problems.append(f"incompatible QoS ({self.qos_policy}) with a publisher of the image topic: "
                            "no keyframes can arrive from it (see image_qos_reliability)")
        with self._lock:
            since = self._clock() - (self.last_keyframe if self.last_keyframe is not None else self.started)
        if no_keyframe_timeout_s > 0 and since > no_keyframe_timeout_s:
            level = max(level, WARN)
            problems.append(f"no keyframe for {since:.0f} s")
        recent = {k: v for k, v in recent.items() if v > 0}
        if recent:
            level = max(level, WARN)
            problems.append("in the last period: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in recent.items()))
        lost = (recovery or {}).get("lost_records", 0)
        if lost:
            level = max(level, WARN)
            copy = recovery.get("torn_copy") or recovery.get("skipped_copy")
            text = recovery.get("lost_records_text", str(lost))  # "at least N (unknown...)" after a torn tail
            problems.append(f"{text} database log record(s) lost when the map was opened (copies kept: {copy})")
        return level, "; ".join(problems) or "OK"


_LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}


def diagnostic_status(name: str, hardware_id: str, level: int, problems: str, stats: dict) -> DiagnosticStatus:
    """One DiagnosticStatus carrying the node's figures (the ~/stats JSON) as key-values."""
    counts = stats["counts"]
    dropped = counts.get("dropped_ingress", 0) + counts.get("dropped_rerank", 0)
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=_LEVELS[level],
                              message=f"{counts.get('processed', 0)} keyframes, {dropped} dropped in total; {problems}")
    values = {f"count.{k}": v for k, v in sorted(counts.items())}
    values.update({f"queue.{k}": v for k, v in stats["queue_depth"].items()})
    values.update({f"in_flight.{k}": v for k, v in stats["in_flight"].items()})
    values["database_size"] = stats["database_size"]
    values.update({f"database_recovery.{k}": v for k, v in stats.get("database_recovery", {}).items()
                   if k in ("torn_records", "skipped_records", "lost_records", "lost_records_exact")})
    values["last_error"] = stats["last_error"]
    for stage, row in stats["latency_ms"].items():
        values.update({f"latency_ms.{stage}.{p}": round(v, 2) for p, v in row.items() if p != "count"})
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return status


class RobotStats:
    """Per-robot counters for ~/stats: received, processed, published (thread-safe)."""

    KEYS = ("received", "processed", "published")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, robot_id: str, key: str) -> None:
        with self._lock:
            per = self._counts.setdefault(robot_id, dict.fromkeys(self.KEYS, 0))
            per[key] += 1

    def snapshot(self, in_database: dict[str, int]) -> dict[str, dict[str, int]]:
        """{robot: {received, processed, published, database}}; robots known only from the
        database (a reloaded map) appear with zero counters."""
        with self._lock:
            out = {r: dict(c) for r, c in self._counts.items()}
        for robot in in_database:
            out.setdefault(robot, dict.fromkeys(self.KEYS, 0))
        for robot, per in out.items():
            per["database"] = int(in_database.get(robot, 0))
        return out
