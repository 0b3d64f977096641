"""Image sources for the tools that learn from unlabelled images (`maqbool fit`, `maqbool build-vocab`).

One rule for both: a folder gives its image files sorted by path (recursively unless told
otherwise); a ROS bag (ROS 1 .bag, ROS 2 directory, .db3 or .mcap) gives the messages of
its image topic (the one named, else its only Image/CompressedImage topic) in log-time
order. ``step`` keeps every N-th image and ``limit`` the first N kept. Images decode
lazily: the result is a list of loaders, each returning an RGB uint8 array.

Anything wrong with the source (missing, not a bag, truncated or corrupt bag, no images)
is a ValueError / FileNotFoundError naming it (core.data.bags turns reader failures into
BagReadError), never a reader's traceback.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

ImageLoader = Callable[[], np.ndarray]


def image_loaders(source: str | Path, topic: str | None = None, recursive: bool = True, step: int = 1,
                  limit: int = 0, what: str = "--images") -> list[ImageLoader]:
    """Loaders of the images of a folder or a bag (see the module docstring)."""
    from maqbool_ros.core.data.bags import is_bag

    if step < 1:
        raise ValueError(f"--step: must be >= 1, got {step}")
    if limit < 0:
        raise ValueError(f"--max-images: must be >= 0, got {limit}")
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{what}: {source} does not exist")
    if is_bag(source):
        loaders = _bag_loaders(source, topic, step, limit, what)
    elif source.is_dir():
        loaders = _folder_loaders(source, recursive, step, limit, what)
    else:
        raise ValueError(f"{what}: {source} is neither an image folder nor a ROS bag (.bag, .db3, .mcap, "
                         "or a folder with metadata.yaml)")
    if not loaders:
        raise ValueError(f"{what}: {source} gives no images")
    return loaders


def _folder_loaders(folder: Path, recursive: bool, step: int, limit: int, what: str) -> list[ImageLoader]:
    from maqbool_ros.core.images.io import IMAGE_SUFFIXES, read_image

    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{what}: {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
                         + ("" if recursive else " directly inside it"))
    files = files[::step]
    files = files[:limit] if limit else files
    return [lambda p=p: read_image(p) for p in files]


def _bag_loaders(bag: Path, topic: str | None, step: int, limit: int, what: str) -> list[ImageLoader]:
    from maqbool_ros.core.data import bags

    name, _ = bags.image_topic_of(bag, topic)  # bags raises one-line errors for unreadable files
    loaders: list[ImageLoader] = []
    for i, (_, msgtype, _, msg) in enumerate(bags.read_messages(bag, [name])):
        if i % step:
            continue
        loaders.append(lambda m=msg, t=msgtype: bags.image_msg_to_rgb(m, t))
        if limit and len(loaders) >= limit:
            break
    if not loaders:
        raise ValueError(f"{what}: {bag}: topic {name} holds no images")
    return loaders
