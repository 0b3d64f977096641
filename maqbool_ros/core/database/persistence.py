"""Persistence half of KeyframeDatabase: open-or-create, load, save, append log, flush.

The on-disk format itself (snapshot directory, manifest, log records) is db_storage.py.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from maqbool_ros.core.database import log as db_log
from maqbool_ros.core.database import storage as st
from maqbool_ros.core.database.columns import Column, Growable
from maqbool_ros.core.database.index import VectorIndex

HNSW_FILE = "hnsw.faissindex"
log = logging.getLogger(__name__)


class PersistenceMixin:
    """Methods of KeyframeDatabase that touch the disk (uses its private row columns)."""

    @classmethod
    def open(cls, path, dim: int | None = None, index_type: str = "flat", device: str = "auto",
             create: bool = True, load: bool = True, flush_interval_s: float = 0.0,
             verify: bool = True) -> "KeyframeDatabase":
        """Open-or-create a persistent database in directory `path`.

        Every add/remove is appended to the log (one write: a killed process loses
        nothing already added) and fsynced at most `flush_interval_s` apart (0: on every
        add), so an OS crash loses at most the keyframes since the last flush.
        load=False starts empty and moves an existing database aside to
        `<path>.prev-<UTC time>` instead of overwriting it.
        """
        root = Path(path)
        if flush_interval_s < 0:
            raise ValueError("flush_interval_s: must be >= 0")
        if not (root / st.MANIFEST).exists():
            if not create:
                raise FileNotFoundError(f"{root}: no keyframe database (and create=False)")
            if dim is None:
                raise ValueError("dim: needed to create a new database")
            st.check_empty(root)
            root.mkdir(parents=True, exist_ok=True)
            lock = st.lock_directory(root)
            db = cls(dim, index_type, device)
            db._path, db._dir_lock = root, lock
            db.save()
        elif not load:
            with st.lock_directory(root):  # never move a database another writer has open
                aside = root.with_name(f"{root.name}.prev-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
                shutil.move(str(root), aside)
            log.warning("%s: load disabled, previous database moved to %s", root, aside)
            return cls.open(root, dim, index_type, device, create, True, flush_interval_s, verify)
        else:
            found = int(st.read_manifest(root)["dim"])
            if dim is not None and int(dim) != found:
                raise ValueError(f"{root / st.MANIFEST}: database is {found}-D, {dim}-D requested")
            lock = st.lock_directory(root)
            try:
                db = cls._from_disk(root, device, index_type, verify=verify, attach=True)
            except BaseException:
                lock.close()
                raise
            db._dir_lock = lock
        db.flush_interval_s = float(flush_interval_s)
        return db

    @classmethod
    def load(cls, path, device: str = "auto", index_type: str | None = None,
             verify: bool = True) -> "KeyframeDatabase":
        """Read snapshot + log into an in-memory database (files are not modified)."""
        return cls._from_disk(Path(path), device, index_type, verify=verify, attach=False)

    @classmethod
    def _from_disk(cls, root: Path, device: str, index_type: str | None, *, verify: bool,
                   attach: bool) -> "KeyframeDatabase":
        snap = st.read_snapshot(root, verify=verify)
        m = snap.manifest
        records, valid = db_log.read_log(root / m["log"])
        db = cls(int(m["dim"]), index_type or m["index_type"], device)
        db._install_snapshot(root, snap)
        for header, arrays in records:
            db._replay(header, arrays, root / m["log"])
        if attach:
            db._path = root
            db._log = db_log.LogWriter(root / m["log"], valid)
        return db

    def _install_snapshot(self, root: Path, snap: st.Snapshot) -> None:
        m, c = snap.manifest, snap.columns
        self._reset_rows()
        self._generation = int(m["generation"])
        self._robots = list(m["robots"])
        self._robot_code = {r: i for i, r in enumerate(self._robots)}
        self._next_seq = [int(s) for s in m["next_seq"]]
        self._desc = Growable((self.dim,), np.float32, c["descriptors"])
        self._kf = Growable((), np.int64, c["keyframe_ids"])
        self._robot = Growable((), np.int32, c["robot_codes"])
        self._stamp = Growable((), np.float64, c["stamps"])
        self._seq = Growable((), np.int64, c["sequence"])
        self._alive = Growable((), np.bool_, np.ones(len(self._kf), np.bool_))
        self._rows = {(int(r), int(k)): i for i, (r, k) in enumerate(zip(self._robot.data, self._kf.data))}
        self._extras = {k: Column(a.shape[1:], a.dtype, base=a) for k, a in snap.extras.items()}
        blob = root / m["snapshot"] / HNSW_FILE
        self._rebuild_index(hnsw_ready=self.index_type == "hnsw" and blob.is_file()
                            and self._index.deserialize(blob.read_bytes(), len(self._kf)))

    def _replay(self, header: dict, arrays: dict[str, np.ndarray], source: Path) -> None:
        if header["op"] == "add":
            if self.row_of(header["kf"], header["robot"]) is not None:
                raise st.DatabaseFormatError(f"{source}: adds keyframe "
                                             f"{header['robot']}/{header['kf']} twice")
            ex = {k[2:]: v for k, v in arrays.items() if k.startswith("x.")}
            self._insert(int(header["kf"]), header["robot"], float(header["stamp"]), arrays["descriptor"], ex)
        elif header["op"] == "remove":
            rows = self._match_rows(np.asarray(header["ids"], dtype=np.int64), header["robot"])
            self._kill(rows)

    def save(self, path=None) -> None:
        """Write a compacted snapshot atomically; on the database's own path it also
        starts a new, empty log (the old generation is deleted only after the commit)."""
        root = Path(path) if path is not None else self._path
        if root is None:
            raise ValueError("path: this database has no directory; pass one to save()")
        own = self._path is not None and root.resolve() == self._path.resolve()
        generation = self._generation + 1 if own else 0
        if not own and (root / st.MANIFEST).exists():
            generation = int(st.read_manifest(root)["generation"]) + 1  # raises if corrupt
        elif not own:
            st.check_empty(root)
        keep = np.flatnonzero(self._alive.data)
        n = len(keep)
        columns = {"descriptors": self._desc.data[keep], "keyframe_ids": self._kf.data[keep],
                   "robot_codes": self._robot.data[keep], "stamps": self._stamp.data[keep],
                   "sequence": self._seq.data[keep]}
        extras = {k: ((n, *c.row_shape), c.dtype, lambda out, c=c: c.fill_into(out, keep))
                  for k, c in self._extras.items()}
        blobs = {}
        if self.index_type == "hnsw":
            index = self._index
            if n != self.num_rows:
                index = VectorIndex(self.dim, "hnsw", "cpu")
                index.add(columns["descriptors"])
            blobs[HNSW_FILE] = index.serialize()
        manifest = {"dim": self.dim, "index_type": self.index_type, "num_keyframes": n,
                    "robots": self._robots, "next_seq": self._next_seq,
                    "extras": {k: {"dtype": c.dtype.str, "shape": list(c.row_shape)} for k, c in self._extras.items()},
                    "saved_utc": datetime.now(timezone.utc).isoformat()}
        if own:
            if self._dir_lock is None:  # saving again after close(): writer once more
                self._dir_lock = st.lock_directory(root)
            self.flush()  # if this save crashes, the old generation + its log stay complete
            st.write_snapshot(root, generation, manifest, columns, extras, blobs)
        else:
            root.mkdir(parents=True, exist_ok=True)
            with st.lock_directory(root):  # not into a database another writer has open
                st.write_snapshot(root, generation, manifest, columns, extras, blobs)
        if own:  # reload: compacted rows, region cache memory-mapped from the new files
            if self._log is not None:
                self._log.close()
            self._install_snapshot(root, st.read_snapshot(root, verify=False))
            self._log = db_log.LogWriter(st.log_path(root, generation))
            self._last_flush = time.monotonic()

    def _maybe_flush(self) -> None:
        wait = self._last_flush + self.flush_interval_s - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self._flush_timer is None or not self._flush_timer.is_alive():
            # The last keyframes before a pause must not wait for the next add to be fsynced.
            # A weak reference, so a dropped database is freed (and its lock released) at once.
            self._flush_timer = threading.Timer(wait, _timed_flush, args=(weakref.ref(self),))
            self._flush_timer.daemon = True
            self._flush_timer.start()

    @property
    def log_bytes(self) -> int:
        """Size of the append log since the last snapshot (a node may save() when large:
        the log's region caches stay in RAM until then, and load replays it)."""
        return self._log.size if self._log is not None else 0

    def flush(self) -> None:
        """fsync the log: keyframes added so far survive an OS crash or power loss."""
        if self._log is not None:
            self._log.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close the log (the database stays usable in memory)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir_lock is not None:
            self._dir_lock.close()  # releases the flock
            self._dir_lock = None

    def __enter__(self) -> "KeyframeDatabase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _timed_flush(ref: "weakref.ref") -> None:
    db = ref()
    if db is None:
        return
    try:
        db.flush()
    except (OSError, AttributeError) as e:  # closed meanwhile
        log.debug("timed flush skipped: %s", e)
