"""The embedded demo sequence: SYNTHETIC, generated deterministically, no download.

A large top-down "map" is composed from the sample images and elevation data that
matplotlib ships in its wheel (mpl-data/sample_data, found with importlib.resources):
colour-mapped terrain (jacksboro_fault_dem, topobathy) as the ground and scattered
photographs/logos (grace_hopper, Minduka_Present_Blue_Pack, logo2) as landmarks. A
downward-looking camera with a fixed heading flies three legs:

1. out along the upper street (the places the loop will close on),
2. back along a lower street it has never seen (frames without any revisit),
3. along the upper street again, with viewpoint jitter (shift, rotation, zoom) and
   illumination changes (gain, gamma, colour tint, noise).

Ground truth comes from the known camera positions with the same radius / time-gap rule
as pose-based datasets, so leg-3 frames are true revisits of leg-1 frames. It is a
functional demonstration, not a benchmark: real figures are in docs/results.md.
"""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from maqbool_ros.core.data.datasets import ImageList, SequenceDataset, positives_from_poses

NAME = "synthetic-matplotlib-loop"
CANVAS_HW = (900, 3000)
VIEW_HW = (300, 400)      # canvas pixels the camera sees
FRAME_HW = (240, 320)     # output frame size
PIXELS_PER_METRE = 100.0
RADIUS_M = 1.1            # a revisit is within 1.1 m (the frame and its two neighbours)
MIN_GAP_S = 10.0
SEED = 8


def _sample_data():
    return resources.files("matplotlib") / "mpl-data" / "sample_data"


def _read_rgb(name: str) -> np.ndarray:
    import cv2

    data = np.frombuffer(_sample_data().joinpath(name).read_bytes(), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"matplotlib sample image {name} could not be decoded")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:  # composite transparent logos over mid grey
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        img = (img[..., :3] * alpha + 128 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])


def _terrain_tiles() -> list[np.ndarray]:
    """Colour-mapped, hill-shaded elevation rasters as RGB uint8 tiles."""
    from matplotlib import colormaps
    from matplotlib.colors import LightSource

    out = []
    with _sample_data().joinpath("jacksboro_fault_dem.npz").open("rb") as fh:
        dem = np.load(fh, allow_pickle=False)["elevation"].astype(np.float32)
    with _sample_data().joinpath("topobathy.npz").open("rb") as fh:
        topo = np.load(fh, allow_pickle=False)["topo"].astype(np.float32)
    light = LightSource(azdeg=315, altdeg=45)
    for z, cmaps in ((dem, ("gist_earth", "terrain", "YlGnBu")), (topo, ("terrain", "viridis"))):
        for cmap in cmaps:
            rgb = light.shade(z, cmap=colormaps[cmap], blend_mode="soft", vert_exag=2)
            out.append((rgb[..., :3] * 255).astype(np.uint8))
    return out


@functools.lru_cache(maxsize=1)
def make_canvas(seed: int = SEED) -> np.ndarray:
    """The synthetic map (H x W x 3 uint8 RGB), deterministic for a seed."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = CANVAS_HW
    canvas = np.zeros((h, w, 3), np.uint8)
    tiles = _terrain_tiles()
    tile = 300
    for y in range(0, h, tile):  # ground: terrain tiles, each a different crop/flip/colour map
        for x in range(0, w, tile):
            t = tiles[rng.integers(len(tiles))]
            t = np.rot90(t, rng.integers(4)) if t.shape[0] > 200 else t
            t = t[:, ::-1] if rng.random() < 0.5 else t
            canvas[y:y + tile, x:x + tile] = cv2.resize(np.ascontiguousarray(t), (tile, tile))[: h - y, : w - x]
    photos = [_read_rgb("grace_hopper.jpg"), _read_rgb("Minduka_Present_Blue_Pack.png"), _read_rgb("logo2.png")]
    for _ in range(70):  # landmarks: random crops of the photos, scaled, rotated, tinted
        src = photos[rng.integers(len(photos))]
        ch, cw = src.shape[:2]
        fh, fw = rng.uniform(0.3, 1.0, 2)
        y0, x0 = int(rng.uniform(0, 1 - fh) * ch), int(rng.uniform(0, 1 - fw) * cw)
        crop = src[y0:y0 + max(8, int(fh * ch)), x0:x0 + max(8, int(fw * cw))]
        crop = np.ascontiguousarray(np.rot90(crop, rng.integers(4)))
        size = rng.uniform(60, 170)
        scale = size / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(4, int(crop.shape[1] * scale)), max(4, int(crop.shape[0] * scale))))
        crop = np.clip(crop * rng.uniform(0.7, 1.2, 3), 0, 255).astype(np.uint8)
        ph, pw = crop.shape[:2]
        py, px = rng.integers(0, h - ph), rng.integers(0, w - pw)
        canvas[py:py + ph, px:px + pw] = crop
    return canvas


def camera_path() -> tuple[np.ndarray, np.ndarray]:
    """Nominal camera centres (canvas pixels, N x 2 as x, y) and the leg of each frame."""
    leg1 = [(x, 250) for x in range(250, 2700, 100)]             # out, upper street
    leg2 = [(x, 650) for x in range(2650, 200, -150)]            # back, lower street (new)
    leg3 = [(x, 250) for x in range(250, 1900, 100)]             # upper street again
    centres = np.asarray(leg1 + leg2 + leg3, dtype=float)
    legs = np.repeat([1, 2, 3], [len(leg1), len(leg2), len(leg3)])
    return centres, legs


def render_frame(canvas: np.ndarray, centre: tuple[float, float], angle_deg: float = 0.0, zoom: float = 1.0,
                 gain: float = 1.0, gamma: float = 1.0, tint=(1.0, 1.0, 1.0), noise: float = 0.0,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """The camera image at a canvas position, with its viewpoint and illumination."""
    import cv2

    vh, vw = VIEW_HW
    fh, fw = FRAME_HW
    s = (fw / vw) * zoom
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, s)
    m[:, 2] += (fw / 2 - centre[0], fh / 2 - centre[1])
    img = cv2.warpAffine(canvas, m, (fw, fh), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    f = (img.astype(np.float32) / 255.0) ** gamma * gain * np.asarray(tint, np.float32)
    if noise > 0 and rng is not None:
        f += rng.normal(0, noise / 255.0, f.shape).astype(np.float32)
    return (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)


def demo_sequence(seed: int = SEED) -> SequenceDataset:
    """The embedded demo as a single-sequence dataset (frames rendered on first access)."""
    rng = np.random.default_rng(seed + 1)
    canvas = make_canvas(seed)
    nominal, legs = camera_path()
    centres = nominal.copy()
    params = []
    for leg in legs:
        if leg == 3:  # the return: a different pass, different light
            params.append(dict(angle_deg=rng.uniform(-5, 5), zoom=rng.uniform(0.92, 1.08),
                               gain=rng.uniform(0.6, 1.3), gamma=rng.uniform(0.7, 1.4),
                               tint=tuple(rng.uniform(0.85, 1.15, 3)), noise=3.0))
        else:
            params.append(dict(angle_deg=rng.uniform(-1, 1), noise=1.5))
    centres[legs == 3] += rng.uniform(-20, 20, size=((legs == 3).sum(), 2))
    stamps = np.arange(len(centres), dtype=float)
    positives = positives_from_poses(centres / PIXELS_PER_METRE, stamps, RADIUS_M, MIN_GAP_S)

    @functools.cache
    def frame(i: int) -> np.ndarray:
        return render_frame(canvas, tuple(centres[i]), rng=np.random.default_rng(seed * 1000 + i), **params[i])

    names = [f"{i:04d}_leg{legs[i]}" for i in range(len(centres))]
    ds = SequenceDataset(NAME, ImageList(names, frame), positives, stamps,
                         source="embedded synthetic sequence (matplotlib sample data)")
    ds.positions = centres / PIXELS_PER_METRE  # metres, for plots and docs
    return ds
