"""Decision-layer training pairs from a recorded run, labelled by geometric verification.

`maqbool train-pdl --bag RUN` (issue #15): a bag's image stream is a sequence with NO ground
truth; each frame's NetVLAD top-K among earlier frames (outside the exclusion window) is
built as usual, then the first ``top`` candidates of every list are checked with the
verification stage (maqbool_ros.core.verification.verify.verify, uncalibrated: camera None,
fundamental matrix, the config's verification_* thresholds): a verified pair is a positive,
a rejected pair a negative. Candidates beyond ``top`` stay in the list
(so list statistics match inference at the same top_k) but carry no label and are not
trained on. Any bag ground truth is ignored on purpose: the labels are what the robot's own
verifier accepts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def bag_sequence(path: str | Path, image_topic: str | None = None):
    """The bag's image topic as a SequenceDataset with empty positives (labels come later)."""
    from maqbool_ros.core.data import bags
    from maqbool_ros.core.data.datasets import ImageList, SequenceDataset, stamp_to_seconds

    path = Path(path)
    if not bags.is_bag(path):
        raise ValueError(f"--bag: {path} is not a ROS bag")
    topic, _ = bags.image_topic_of(path, image_topic)
    msgs, names, stamps = [], [], []
    for _, msgtype, _, msg in bags.read_messages(path, [topic]):
        msgs.append((msg, msgtype))
        names.append(msg.header.frame_id)
        stamps.append(stamp_to_seconds(msg.header.stamp))
    if not msgs:
        raise ValueError(f"--bag: {path}: topic {topic} has no messages")
    frames = ImageList(names, lambda i: bags.image_msg_to_rgb(*msgs[i]))
    empty = [np.zeros(0, np.int64) for _ in msgs]
    return SequenceDataset(f"{path.stem if path.is_file() else path.name} (verified)", frames, empty,
                           np.asarray(stamps, np.float64), source=str(path))


def label_by_verification(images, pairs, params=None, top: int = 10, log=None) -> list:
    """Set each QueryPairs' positive / labelled from verify() on its first ``top`` candidates.

    images: the searched image list (indexable, RGB uint8). Local features are extracted
    once per frame. Returns the pairs (modified in place) that have at least one label."""
    from maqbool_ros.core.verification.features import LocalFeatureExtractor
    from maqbool_ros.core.verification.verify import verify

    if top < 1:
        raise ValueError(f"verify_top: must be >= 1, got {top}")
    extractor = LocalFeatureExtractor(params)
    feats: dict[int, object] = {}

    def local(i: int):
        if i not in feats:
            feats[i] = extractor.extract(images[int(i)])
        return feats[i]

    accepted = rejected = 0
    for p in pairs:
        m = min(top, len(p.candidates))
        p.positive = np.zeros(len(p.candidates), bool)
        p.labelled = np.zeros(len(p.candidates), bool)
        p.labelled[:m] = True
        for j in range(m):
            p.positive[j] = verify(local(p.query), local(int(p.candidates[j])), None, params=extractor.params).verified
        p.has_positive = bool(p.positive.any())
        accepted += int(p.positive.sum())
        rejected += m - int(p.positive[:m].sum())
    if log is not None:
        log(f"verification labels: {accepted} verified loops (positives), {rejected} rejections (negatives)")
    return [p for p in pairs if p.labelled.any()]
