"""The ``utm_named`` layout of gmberton/VPR-datasets-downloader, read into query/ref ground truth.

That tool writes ``<root>/images/<split>/database`` and ``<root>/images/<split>/queries``
(older versions: ``gallery`` for ``database``); every file name is a list of fields separated
by ``@`` and starting with one: ``@UTM_east@UTM_north@UTM_zone_number@UTM_zone_letter@latitude@
longitude@...@extension``. Only the first four are used here. A query's positives are the
database images within ``radius`` metres in UTM and in the same zone: the same zone number and
hemisphere (a zone's latitude bands share one grid; the hemisphere changes the false northing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maqbool_ros.core.images.io import list_images

ZONE_LETTERS = "CDEFGHJKLMNPQRSTUVWX"  # the UTM latitude bands (no I, no O); N and above: north
FIELDS = ("UTM_east", "UTM_north", "UTM_zone_number", "UTM_zone_letter")
DATABASE_DIRS = ("database", "gallery")


@dataclass(frozen=True)
class UtmPosition:
    """The UTM position a file name states."""

    east: float
    north: float
    zone_number: int
    zone_letter: str

    @property
    def zone(self) -> int:
        """2 * zone number + (northern hemisphere): positions with equal keys share one metric grid."""
        return 2 * self.zone_number + int(self.zone_letter >= "N")


def _field_error(path: Path, index: int, value: str, why: str) -> ValueError:
    return ValueError(f"{path}: file name field {index} ({FIELDS[index - 1]}) {value!r} {why} "
                      "(expected @UTM_east@UTM_north@UTM_zone_number@UTM_zone_letter@...)")


def parse_utm_name(path: str | Path) -> UtmPosition:
    """The UTM position in a VPR-datasets-downloader file name; errors name the file and the field."""
    path = Path(path)
    fields = path.name.split("@")
    if len(fields) < 6 or fields[0] != "":
        raise ValueError(f"{path}: file name does not follow the @-separated UTM convention "
                         "(expected @UTM_east@UTM_north@UTM_zone_number@UTM_zone_letter@...)")
    coords = []
    for i in (1, 2):
        try:
            value = float(fields[i])
        except ValueError:
            raise _field_error(path, i, fields[i], "is not a number") from None
        if not math.isfinite(value):
            raise _field_error(path, i, fields[i], "is not a finite number")
        coords.append(value)
    try:
        zone = int(fields[3])
    except ValueError:
        raise _field_error(path, 3, fields[3], "is not an integer") from None
    if not 1 <= zone <= 60:
        raise _field_error(path, 3, fields[3], "is outside 1..60")
    letter = fields[4].upper()
    if len(letter) != 1 or letter not in ZONE_LETTERS:
        raise _field_error(path, 4, fields[4], f"is not a UTM latitude band ({ZONE_LETTERS})")
    return UtmPosition(coords[0], coords[1], zone, letter)


def utm_positives(queries: list[UtmPosition], database: list[UtmPosition], radius: float) -> list[np.ndarray]:
    """Per query, the sorted database indices within ``radius`` metres in the same zone (KD-tree per zone)."""
    from scipy.spatial import cKDTree

    out = [np.zeros(0, dtype=np.int64) for _ in queries]
    db_zones = np.array([p.zone for p in database], dtype=np.int64)
    q_zones = np.array([p.zone for p in queries], dtype=np.int64)
    db_xy = np.array([[p.east, p.north] for p in database], dtype=np.float64).reshape(-1, 2)
    q_xy = np.array([[p.east, p.north] for p in queries], dtype=np.float64).reshape(-1, 2)
    for zone in np.unique(q_zones):
        db_idx = np.flatnonzero(db_zones == zone)
        if not len(db_idx):
            continue
        q_idx = np.flatnonzero(q_zones == zone)
        hits = cKDTree(db_xy[db_idx]).query_ball_point(q_xy[q_idx], r=radius)
        for qi, found in zip(q_idx, hits):
            out[qi] = np.sort(db_idx[np.asarray(found, dtype=np.int64)])
    return out


def split_folders(root: str | Path, split: str) -> tuple[Path, Path]:
    """(queries folder, database folder) of ``split``; errors say what is missing."""
    base = Path(root) / "images" / split
    if not base.is_dir():
        found = sorted(p.name for p in (Path(root) / "images").iterdir()) if (Path(root) / "images").is_dir() else []
        raise FileNotFoundError(f"{base}: no split '{split}' (expected images/<split>/queries and "
                                f"images/<split>/database; splits found: {found or 'none'})")
    queries = base / "queries"
    database = next((base / d for d in DATABASE_DIRS if (base / d).is_dir()), base / DATABASE_DIRS[0])
    for folder in (queries, database):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder missing (utm_named layout: images/<split>/queries and "
                                    "images/<split>/database)")
    return queries, database


def read_utm_split(root: str | Path, split: str, radius: float) -> tuple[list[Path], list[Path], list[np.ndarray]]:
    """(query files, database files, positives per query) of one split, files in name order."""
    qdir, dbdir = split_folders(root, split)
    queries, database = list_images(qdir), list_images(dbdir)
    positives = utm_positives([parse_utm_name(p) for p in queries], [parse_utm_name(p) for p in database], radius)
    return queries, database, positives
