"""A seeded photometric "night / dusk" transform: a dev proxy for appearance change (offline only).

It imitates what a camera records at dusk or under street light, not real night (no lamps, no
headlight glare, no shadows that move, no sky): docs/sequence.md, section "night proxy".

Per pixel, on RGB values x in [0, 1], in this order (defaults = strength 1):

1. blur:  Gaussian blur of ``blur_sigma`` pixels (1.0): long exposure, defocus in low light.
2. cast:  x_c *= ``cast[c]`` per channel RGB (0.80, 0.90, 1.10): bluish dusk light.
3. gain:  x *= ``gain`` (0.35): less light reaching the sensor.
4. gamma: x = x ** ``gamma`` (1.6): crushed mid-tones, dark areas go darker.
5. noise: + N(0, ``noise_std``) in 8-bit units (4.0 DN): sensor noise, now large against the
   signal; then clipped to [0, 255] and rounded.

Without blur and noise a grey pixel v becomes round(255 * (gain * cast_c * v / 255) ** gamma).
``strength`` s in [0, 1] scales every parameter from the identity (s = 0) to the defaults (s = 1)
linearly (gain 1 - s (1 - 0.35), gamma 1 + s (1.6 - 1), ...); a parameter given explicitly wins.
Noise is drawn from numpy's PCG64 seeded by (seed, CRC-32 of the image's name), so an image gets
the same noise whatever order or subset of the dataset is transformed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

NIGHT = {"gain": 0.35, "gamma": 1.6, "noise_std": 4.0, "blur_sigma": 1.0, "cast": (0.80, 0.90, 1.10)}
IDENTITY = {"gain": 1.0, "gamma": 1.0, "noise_std": 0.0, "blur_sigma": 0.0, "cast": (1.0, 1.0, 1.0)}


@dataclass(frozen=True)
class NightParams:
    """Parameters of :func:`night_transform` (module docstring: order, meaning, defaults)."""

    gain: float = NIGHT["gain"]
    gamma: float = NIGHT["gamma"]
    noise_std: float = NIGHT["noise_std"]
    blur_sigma: float = NIGHT["blur_sigma"]
    cast: tuple[float, float, float] = NIGHT["cast"]

    def __post_init__(self) -> None:
        checks = {"gain": 0.0 < self.gain <= 4.0, "gamma": 0.1 <= self.gamma <= 10.0,
                  "noise_std": 0.0 <= self.noise_std <= 128.0, "blur_sigma": 0.0 <= self.blur_sigma <= 20.0,
                  "cast": len(self.cast) == 3 and all(0.0 < c <= 4.0 for c in self.cast)}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"night proxy {name} = {getattr(self, name)!r} is out of range "
                                 "(gain (0, 4], gamma [0.1, 10], noise_std [0, 128], blur_sigma [0, 20], "
                                 "cast: three values in (0, 4])")

    @classmethod
    def at_strength(cls, strength: float = 1.0, **explicit) -> NightParams:
        """Every parameter s of the way from the identity to the night defaults; ``explicit``
        values (not None) replace the interpolated ones."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"night proxy strength = {strength!r} is outside [0, 1]")
        values = {}
        for f in fields(cls):
            lo, hi = IDENTITY[f.name], NIGHT[f.name]
            if f.name == "cast":
                values[f.name] = tuple(a + strength * (b - a) for a, b in zip(lo, hi))
            else:
                values[f.name] = lo + strength * (hi - lo)
        return replace(cls(**values), **{k: (tuple(v) if k == "cast" else v)
                                         for k, v in explicit.items() if v is not None})

    def as_dict(self) -> dict:
        return {f.name: (list(getattr(self, f.name)) if f.name == "cast" else getattr(self, f.name))
                for f in fields(self)}


def image_rng(seed: int, name: str) -> np.random.Generator:
    """The noise generator of one image: depends on the seed and the image's name only."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def night_transform(image: np.ndarray, params: NightParams, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same shape, transformed (module docstring)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"night proxy: image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    x = image.astype(np.float32) / 255.0
    if params.blur_sigma > 0:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=params.blur_sigma, borderType=cv2.BORDER_REFLECT)
    x = x * (np.asarray(params.cast, np.float32) * np.float32(params.gain))
    x = np.power(np.clip(x, 0.0, 1.0), np.float32(params.gamma)) * 255.0
    if params.noise_std > 0:
        x = x + rng.normal(0.0, params.noise_std, x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
