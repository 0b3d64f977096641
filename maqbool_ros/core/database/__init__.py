"""The keyframe database: descriptors and per-keyframe extras in one row store, exact
and HNSW search with exclusion rules, and crash-safe persistence (snapshot + checksummed
append log, replay that skips and reports what it cannot apply). The database owns its
lock; every public method is thread-safe."""
from maqbool_ros.core.database.keyframes import KeyframeDatabase
from maqbool_ros.core.database.recovery import RecoveryReport
from maqbool_ros.core.database.storage import DatabaseFormatError

__all__ = ["DatabaseFormatError", "KeyframeDatabase", "RecoveryReport"]
