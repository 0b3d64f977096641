"""~/debug_image: the query keyframe and its best candidate side by side, inlier matches drawn,
ids and scores written on it. Drawn and published only while someone subscribes.

The database keeps no images, so the node keeps small thumbnails of recent keyframes (an LRU
bounded in bytes, filled only while the topic has subscribers). When the candidate's
thumbnail is gone (an old place, or the subscriber came later) its panel is grey and shows
only the candidate's inlier keypoints, from its stored local features.
"""
from __future__ import annotations

import collections

import cv2
import numpy as np
from sensor_msgs.msg import Image

THUMB_SIDE = 320           # long side of a stored thumbnail (pixels)
CACHE_BYTES = 32 * 2**20   # about 145 RGB 320x240 thumbnails
GREEN, RED, WHITE = (0, 220, 0), (230, 40, 40), (255, 255, 255)


def thumbnail(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(1.0, THUMB_SIDE / max(h, w))
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) \
        if s < 1.0 else image.copy()


class DebugImages:
    """Thumbnail cache and drawing; publish() is called by the re-rank worker."""

    def __init__(self, node, topic: str = "~/debug_image") -> None:
        self.pub = node.create_publisher(Image, topic, 1)
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._bytes = 0

    def active(self) -> bool:
        return self.pub.get_subscription_count() > 0

    def remember(self, key, image: np.ndarray) -> None:
        thumb = thumbnail(image)
        old = self._cache.pop(key, None)
        self._bytes += thumb.nbytes - (old.nbytes if old is not None else 0)
        self._cache[key] = thumb
        while self._bytes > CACHE_BYTES and self._cache:
            self._bytes -= self._cache.popitem(last=False)[1].nbytes

    def publish(self, kf, result, header) -> bool:
        """Remember kf's thumbnail and publish the drawing for result; False when nobody listens."""
        if not self.active():
            return False
        self.remember((kf.robot_id, kf.keyframe_id), kf.output.image)
        if result is None:
            return False
        rgb = self.draw(kf, result)
        msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8",
                    step=rgb.shape[1] * 3, data=rgb.tobytes())
        self.pub.publish(msg)
        return True

    def draw(self, kf, result) -> np.ndarray:
        """(H, 2W, 3) RGB: query | best candidate (the first verified one, else the top one)."""
        query = thumbnail(kf.output.image)
        h, w = query.shape[:2]
        canvas = np.full((h, 2 * w, 3), 64, np.uint8)
        canvas[:, :w] = query
        if not len(result):
            cv2.putText(canvas, f"query {kf.keyframe_id}: no candidate", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        WHITE, 1, cv2.LINE_AA)
            return canvas
        verified = np.flatnonzero(result.checks.verified)
        i = int(verified[0]) if len(verified) else 0
        key = (result.robot_ids[i], int(result.keyframe_ids[i]))
        cand = self._cache.get(key)
        if cand is not None:
            self._cache.move_to_end(key)
            ch, cw = cand.shape[:2]
            s = min(h / ch, w / cw)
            canvas[: round(ch * s), w: w + round(cw * s)] = cv2.resize(cand, (round(cw * s), round(ch * s)))
        else:
            cv2.putText(canvas, "image not cached", (w + 6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1,
                        cv2.LINE_AA)
        pts = result.checks.match_points[i]
        feats = kf.local_features
        if pts is not None and feats is not None:
            sq = w / feats.image_size[0]  # raw pixels -> this panel (candidates share the camera's size)
            colour = GREEN if result.checks.verified[i] else RED
            for xq, yq, xc, yc in pts[:200]:
                a, b = (round(xq * sq), round(yq * sq)), (round(w + xc * sq), round(yc * sq))
                cv2.circle(canvas, a, 2, colour, -1)
                cv2.circle(canvas, b, 2, colour, -1)
                cv2.line(canvas, a, b, colour, 1, cv2.LINE_AA)
        checks = result.checks
        state = "VERIFIED" if checks.verified[i] else ("rejected" if checks.attempted[i] else "unverified")
        lines = [f"query {kf.keyframe_id}", f"cand {key[1]} ({key[0]}) #{i + 1} score {result.scores[i]:.3f}",
                 f"{state} inliers {int(checks.num_inliers[i])} ratio {float(checks.inlier_ratios[i]):.2f} "
                 f"{checks.pose_types[i]}"]
        for row, text in enumerate(lines):
            cv2.putText(canvas, text, (6, 18 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, text, (6, 18 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1, cv2.LINE_AA)
        return canvas
