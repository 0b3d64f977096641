"""Evaluation datasets: query/reference folders, single-sequence loop runs, and bags.

Two kinds, one per evaluation protocol (see maqbool_ros.core.evaluation.protocol):

* :class:`QueryRefDataset` (kind ``"query_ref"``): a map (``ref/``) and queries
  (``query/``); ``ground_truth.csv`` lists ``query_index,positive_ref_indices``
  (space-separated indices into the sorted file lists).
* :class:`SequenceDataset` (kind ``"sequence"``): one run fed in order; positives of a
  frame are *earlier* frames of the same place. Ground truth comes from
  ``loop_pairs.csv`` (``frame_index,earlier_matching_frame_indices``) or from poses
  (``poses.csv``: ``frame_index,stamp,x,y[,z]``; positives = within ``radius`` metres and
  at least ``min_gap_s`` seconds earlier).

Bags (ROS 2 db3/mcap, ROS 1) are read by :func:`load_dataset` through maqbool_ros.core.data.bags.
Images load lazily, as RGB uint8.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maqbool_ros.core.data import bags
from maqbool_ros.core.images.io import list_images, read_image
from maqbool_ros.core.types import stamp_to_seconds

DEFAULT_RADIUS_M = 3.0
DEFAULT_MIN_GAP_S = 30.0


class ImageList:
    """A lazily loaded, indexable list of RGB images with names (file names or bag ids)."""

    def __init__(self, names: Sequence[str], loader: Callable[[int], np.ndarray]):
        self.names = list(names)
        self._loader = loader

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> ImageList:
        paths = list(paths)
        return cls([p.name for p in paths], lambda i: read_image(paths[i]))

    @classmethod
    def from_arrays(cls, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> ImageList:
        images = list(images)
        return cls(names or [str(i) for i in range(len(images))], lambda i: images[i])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._loader(index)


@dataclass
class QueryRefDataset:
    """Queries against a map. positives[q]: ref indices that are the same place as query q."""

    name: str
    refs: ImageList
    queries: ImageList
    positives: list[np.ndarray]
    kind: str = field(default="query_ref", init=False)
    source: str = ""

    def __post_init__(self) -> None:
        _check_positives(self.positives, len(self.queries), len(self.refs), "ground truth")


@dataclass
class SequenceDataset:
    """One run. positives[i]: earlier frame indices that revisit frame i's place."""

    name: str
    frames: ImageList
    positives: list[np.ndarray]
    stamps: np.ndarray
    kind: str = field(default="sequence", init=False)
    source: str = ""

    def __post_init__(self) -> None:
        _check_positives(self.positives, len(self.frames), len(self.frames), "loop pairs")
        for i, pos in enumerate(self.positives):
            if len(pos) and pos.max() >= i:
                raise ValueError(f"loop pairs: frame {i} lists a positive that is not earlier ({pos.max()})")
        if len(self.stamps) != len(self.frames):
            raise ValueError(f"stamps: {len(self.stamps)} values for {len(self.frames)} frames")


Dataset = QueryRefDataset | SequenceDataset


def _check_positives(positives: list[np.ndarray], num_queries: int, num_refs: int, what: str) -> None:
    if len(positives) != num_queries:
        raise ValueError(f"{what}: {len(positives)} rows for {num_queries} queries")
    for q, pos in enumerate(positives):
        if len(pos) and (pos.min() < 0 or pos.max() >= num_refs):
            raise ValueError(f"{what}: query {q} has a positive outside [0, {num_refs})")


def read_index_lists(path: str | Path, num_rows: int) -> list[np.ndarray]:
    """Read a two-column CSV ``index,space separated indices`` (header line required)
    into one int64 array per row index 0..num_rows-1 (rows not listed: empty)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ground-truth file not found")
    out = [np.zeros(0, dtype=np.int64) for _ in range(num_rows)]
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                         "save it as UTF-8 CSV") from None
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise ValueError(f"{path}: expected a header line with two columns")
        for line_no, row in enumerate(reader, start=2):
            if not row or not row[0].strip():
                continue
            try:
                idx = int(row[0])
                values = [int(v) for v in (row[1].split() if len(row) > 1 else [])]
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: not integers ({exc})") from None
            if not 0 <= idx < num_rows:
                raise ValueError(f"{path}:{line_no}: index {idx} outside [0, {num_rows})")
            out[idx] = np.asarray(sorted(set(values)), dtype=np.int64)
    return out


def positives_from_poses(positions: np.ndarray, stamps: np.ndarray, radius: float = DEFAULT_RADIUS_M,
                         min_gap_s: float = DEFAULT_MIN_GAP_S) -> list[np.ndarray]:
    """Earlier frames within ``radius`` metres and at least ``min_gap_s`` seconds before
    each frame (the gap keeps "still here" from counting as "came back")."""
    positions = np.asarray(positions, dtype=float)
    stamps = np.asarray(stamps, dtype=float)
    if positions.ndim != 2 or len(positions) != len(stamps):
        raise ValueError("poses: positions must be (N, 2|3) with one stamp per frame")
    dist = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    earlier = (stamps[:, None] - stamps[None, :]) >= min_gap_s
    return [np.flatnonzero((dist[i] <= radius) & earlier[i]).astype(np.int64) for i in range(len(stamps))]


def load_query_ref_folder(root: str | Path) -> QueryRefDataset:
    """query/, ref/ and ground_truth.csv, as in ../shared/data."""
    root = Path(root)
    refs, queries = list_images(root / "ref"), list_images(root / "query")
    positives = read_index_lists(root / "ground_truth.csv", len(queries))
    return QueryRefDataset(root.name, ImageList.from_files(refs), ImageList.from_files(queries),
                           positives, source=str(root))


def load_sequence_folder(root: str | Path, radius: float = DEFAULT_RADIUS_M,
                         min_gap_s: float = DEFAULT_MIN_GAP_S) -> SequenceDataset:
    """frames/ with loop_pairs.csv, or with poses.csv (frame_index,stamp,x,y[,z])."""
    root = Path(root)
    frames = list_images(root / "frames")
    stamps = np.arange(len(frames), dtype=float)  # no clock: one frame per second
    if (root / "loop_pairs.csv").is_file():
        positives = read_index_lists(root / "loop_pairs.csv", len(frames))
    elif (root / "poses.csv").is_file():
        table = np.loadtxt(root / "poses.csv", delimiter=",", skiprows=1, ndmin=2)
        if table.shape[1] < 4 or len(table) != len(frames):
            raise ValueError(f"{root / 'poses.csv'}: need frame_index,stamp,x,y[,z] for each of {len(frames)} frames")
        table = table[np.argsort(table[:, 0])]
        stamps = table[:, 1]
        positives = positives_from_poses(table[:, 2:], stamps, radius, min_gap_s)
    else:
        raise FileNotFoundError(f"{root}: frames/ needs loop_pairs.csv or poses.csv beside it")
    return SequenceDataset(root.name, ImageList.from_files(frames), positives, stamps, source=str(root))


def _pose_xyz(msg: Any, msgtype: str) -> np.ndarray:
    pose = msg.pose.pose if msgtype != "geometry_msgs/msg/PoseStamped" else msg.pose
    return np.array([pose.position.x, pose.position.y, pose.position.z])


def load_bag_dataset(path: str | Path, *, image_topic: str | None = None, pose_topic: str | None = None,
                     radius: float = DEFAULT_RADIUS_M, min_gap_s: float = DEFAULT_MIN_GAP_S) -> Dataset:
    """A dataset from a bag's image topic. Ground truth: the bag's bags.GROUND_TRUTH_TOPIC if any,
    else positions from pose_topic (Odometry / PoseStamped / PoseWithCovarianceStamped,
    nearest in time) with the radius / time-gap rule."""
    path = Path(path)
    topics = bags.bag_topics(path)
    img_topic, _ = bags.image_topic_of(path, image_topic)
    pose_topic = bags.pick_topic(topics, pose_topic, bags.POSE_TYPES, "pose") if pose_topic else None
    if pose_topic and topics[pose_topic] not in bags.POSE_TYPES:
        raise ValueError(f"pose topic {pose_topic} is {topics[pose_topic]}: without CameraInfo (or --intrinsics) "
                         f"positives come from one of {list(bags.POSE_TYPES)}")
    wanted = [img_topic] + [t for t in (pose_topic, bags.GROUND_TRUTH_TOPIC) if t and t in topics]
    images, names, stamps, gt, poses = [], [], [], None, []
    for topic, msgtype, _, msg in bags.read_messages(path, wanted):
        if topic == img_topic:
            images.append((msg, msgtype))
            names.append(msg.header.frame_id)
            stamps.append(stamp_to_seconds(msg.header.stamp))
        elif topic == bags.GROUND_TRUTH_TOPIC:
            gt = json.loads(msg.data)
        else:
            poses.append((stamp_to_seconds(msg.header.stamp), _pose_xyz(msg, msgtype)))
    if not images:
        raise ValueError(f"{path}: topic {img_topic} has no messages")
    frames = ImageList(names, lambda i: bags.image_msg_to_rgb(*images[i]))
    stamps_arr = np.asarray(stamps)
    name = path.stem if path.is_file() else path.name
    if gt is not None and gt.get("kind") == "query_ref":
        r = int(gt["num_refs"])
        refs = ImageList(names[:r], lambda i: bags.image_msg_to_rgb(*images[i]))
        queries = ImageList(names[r:], lambda i: bags.image_msg_to_rgb(*images[r + i]))
        pos = [np.asarray(p, dtype=np.int64) for p in gt["positives"]]
        return QueryRefDataset(gt.get("name", name), refs, queries, pos, source=str(path))
    if gt is not None:
        pos = [np.asarray(p, dtype=np.int64) for p in gt["positives"]]
        return SequenceDataset(gt.get("name", name), frames, pos, stamps_arr, source=str(path))
    if not poses:
        raise ValueError(f"{path}: no ground truth: the bag has no {bags.GROUND_TRUTH_TOPIC} and no pose "
                         "topic was given (--pose-topic, nav_msgs/Odometry or geometry_msgs PoseStamped)")
    pose_t = np.asarray([p[0] for p in poses])
    pose_xyz = np.stack([p[1] for p in poses])
    nearest = np.abs(stamps_arr[:, None] - pose_t[None, :]).argmin(axis=1)
    positives = positives_from_poses(pose_xyz[nearest], stamps_arr, radius, min_gap_s)
    return SequenceDataset(name, frames, positives, stamps_arr, source=str(path))


def load_dataset(path: str | Path, *, image_topic: str | None = None, pose_topic: str | None = None,
                 radius: float = DEFAULT_RADIUS_M, min_gap_s: float = DEFAULT_MIN_GAP_S) -> Dataset:
    """Open any supported dataset, recognised by its layout."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: dataset not found")
    if bags.is_bag(path):
        return load_bag_dataset(path, image_topic=image_topic, pose_topic=pose_topic,
                                radius=radius, min_gap_s=min_gap_s)
    if (path / "query").is_dir() and (path / "ref").is_dir():
        return load_query_ref_folder(path)
    if (path / "frames").is_dir():
        return load_sequence_folder(path, radius, min_gap_s)
    raise ValueError(f"{path}: not a dataset (expected query/+ref/+ground_truth.csv, "
                     "frames/+loop_pairs.csv|poses.csv, or a ROS bag)")
