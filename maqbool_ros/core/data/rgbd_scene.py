"""Scene and exact renderer of the synthetic RGB-D room (data/rgbd_sequence.py builds the sequence).

Axis-aligned boxes: the room (seen from inside) and obstacles (seen from outside). One ray per
pixel: the nearest exit of the room box and a slab test against each obstacle give the exact
z-depth and a texture coordinate, sampled bilinearly (cv2.remap) from one texture atlas whose
face textures are composed from matplotlib's shipped sample images. numpy + OpenCV, no OpenGL.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from maqbool_ros.core.data.demo_sequence import _read_rgb, _terrain_tiles

WIDTH, HEIGHT, FOCAL = 640, 480, 525.0
ROOM = ((0.0, 0.0, 0.0), (8.0, 6.0, 2.8))             # (lo, hi) metres, world z up
OBSTACLES = (                                           # (lo, hi): island, two pillars, a panel
    ((3.2, 2.6, 0.0), (4.8, 3.4, 0.9)),
    ((0.9, 0.9, 0.0), (1.3, 1.3, 2.8)),
    ((6.7, 4.7, 0.0), (7.1, 5.1, 2.8)),
    ((5.6, 0.55, 0.3), (6.8, 0.65, 1.9)),
)
TEXELS_PER_M = 220.0
SEED = 13


# --- textures ------------------------------------------------------------------------------------

def _faces() -> list[tuple[int, int, int]]:
    """(box, axis, side) of every face; box 0 is the room (seen from inside)."""
    return [(b, ax, side) for b in range(1 + len(OBSTACLES)) for ax in range(3) for side in (0, 1)]


def _box(b: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (ROOM if b == 0 else OBSTACLES[b - 1])
    return np.asarray(lo, float), np.asarray(hi, float)


def _collage(rng: np.random.Generator, h: int, w: int, backgrounds, photos) -> np.ndarray:
    """One face texture: a shaded-terrain background, photo crops, fine seeded colour noise."""
    bg = backgrounds[rng.integers(len(backgrounds))]
    bh, bw = bg.shape[:2]
    fy, fx = rng.uniform(0.4, 0.9, 2)
    y0, x0 = int(rng.uniform(0, 1 - fy) * bh), int(rng.uniform(0, 1 - fx) * bw)
    tex = cv2.resize(bg[y0:y0 + int(fy * bh), x0:x0 + int(fx * bw)], (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        tex = np.ascontiguousarray(tex[:, ::-1])
    for _ in range(max(1, int(h * w / 9000))):
        src = photos[rng.integers(len(photos))]
        ch, cw = src.shape[:2]
        sh, sw = rng.uniform(0.25, 0.9, 2)
        py, px = int(rng.uniform(0, 1 - sh) * ch), int(rng.uniform(0, 1 - sw) * cw)
        crop = np.ascontiguousarray(np.rot90(src[py:py + max(8, int(sh * ch)), px:px + max(8, int(sw * cw))],
                                             rng.integers(4)))
        scale = rng.uniform(30, 110) / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(4, int(crop.shape[1] * scale)), max(4, int(crop.shape[0] * scale))))
        crop = np.clip(crop * rng.uniform(0.6, 1.3, 3), 0, 255).astype(np.uint8)
        ph, pw = min(crop.shape[0], h), min(crop.shape[1], w)
        ty, tx = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
        tex[ty:ty + ph, tx:tx + pw] = crop[:ph, :pw]
    # seeded blotches a few texels wide: unique everywhere, so no two places are the same picture
    noise = cv2.resize(rng.normal(0, 28, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    return np.clip(tex.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def texture_atlas(seed: int = SEED) -> tuple[np.ndarray, dict]:
    """All face textures in one RGB atlas and, per face, (row0, col0, texels per metre on its
    two in-plane axes). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    backgrounds = _terrain_tiles()
    photos = [_read_rgb(n) for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")]
    textures, layout = [], {}
    for face in _faces():
        b, ax, _ = face
        lo, hi = _box(b)
        u_ax, v_ax = [a for a in range(3) if a != ax]
        density = TEXELS_PER_M if b > 0 or ax != 2 else TEXELS_PER_M * 0.6  # floor/ceiling: coarser
        w = max(8, int(round((hi[u_ax] - lo[u_ax]) * density)))
        h = max(8, int(round((hi[v_ax] - lo[v_ax]) * density)))
        textures.append((face, cv2.copyMakeBorder(_collage(rng, h, w, backgrounds, photos), 2, 2, 2, 2,
                                                  cv2.BORDER_REPLICATE), density))
    atlas_w = max(t.shape[1] for _, t, _ in textures)
    row, rows = 0, []
    for face, tex, density in textures:  # one band per face: simple, and remap needs no packing
        layout[face] = (row + 2, 2, density)
        rows.append(np.pad(tex, ((0, 0), (0, atlas_w - tex.shape[1]), (0, 0))))
        row += tex.shape[0]
    return np.concatenate(rows, axis=0), layout


@functools.lru_cache(maxsize=4)
def _face_table(seed: int = SEED) -> np.ndarray:
    """Per face of _faces(): atlas row0, col0, texels per metre, in-plane axes and the box corner."""
    _, layout = texture_atlas(seed)
    rows = []
    for face in _faces():
        b, ax, _ = face
        r0, c0, density = layout[face]
        u_ax, v_ax = [a for a in range(3) if a != ax]
        lo, _ = _box(b)
        rows.append((r0, c0, density, u_ax, v_ax, lo[u_ax], lo[v_ax]))
    return np.asarray(rows, dtype=np.float64)


def _box32(b: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _box(b)
    return lo.astype(np.float32), hi.astype(np.float32)


# --- rendering -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _camera_rays(width: int, height: int, focal: float) -> np.ndarray:
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.stack([(u - (width - 1) / 2.0) / focal, (v - (height - 1) / 2.0) / focal,
                     np.ones_like(u)], axis=0).reshape(3, -1).astype(np.float32)  # z = 1: t is z-depth


def _trace(pose: np.ndarray, width: int, height: int, focal: float):
    """Cast one ray per pixel: (z-depth t, face id into _faces(), world ray directions, centre)."""
    # float32 rays: depth is exact to ~1e-7 relative, and half the memory traffic of float64
    d = pose[:3, :3].astype(np.float32) @ _camera_rays(width, height, focal)  # (3, P) world directions
    c = pose[:3, 3].astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        lo, hi = _box32(0)                                        # room, from inside: nearest exit
        t_axes = np.where(d > 0, (hi[:, None] - c[:, None]) * inv, (lo[:, None] - c[:, None]) * inv)
        t_axes[~np.isfinite(t_axes)] = np.inf
        best_t = t_axes.min(axis=0)
        axis = t_axes.argmin(axis=0)
        face_box = np.zeros(best_t.shape, np.int64)
        face_side = (d[axis, np.arange(d.shape[1])] > 0).astype(np.int64)
        for b in range(1, 1 + len(OBSTACLES)):                    # obstacles, from outside: slab test
            lo, hi = _box32(b)
            t1, t2 = (lo[:, None] - c[:, None]) * inv, (hi[:, None] - c[:, None]) * inv
            tn, tf = np.fmin(t1, t2), np.fmax(t1, t2)  # fmin/fmax: a ray parallel to a slab gives one NaN
            t_in, t_out = tn.max(axis=0), tf.min(axis=0)
            hit = (t_in <= t_out) & (t_in > 1e-6) & (t_in < best_t)
            ax = tn.argmax(axis=0)
            best_t = np.where(hit, t_in, best_t)
            axis = np.where(hit, ax, axis)
            face_box = np.where(hit, b, face_box)
            face_side = np.where(hit, (d[ax, np.arange(d.shape[1])] < 0).astype(np.int64), face_side)
    return best_t, (face_box * 3 + axis) * 2 + face_side, d, c


def render_depth(pose: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Exact depth (float32 metres, z in the camera frame) at any resolution of the same field of view."""
    t, _, _, _ = _trace(pose, width, height, FOCAL * width / WIDTH)
    return t.reshape(height, width)


def render(pose: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Exact (RGB uint8 (H, W, 3), depth float32 metres (H, W)) of the room from world_T_camera."""
    atlas, _ = texture_atlas(seed)
    best_t, fid, d, c = _trace(pose, WIDTH, HEIGHT, FOCAL)
    table = _face_table(seed)                                     # (F, 7): r0 c0 density u_ax v_ax lo_u lo_v
    cols = np.arange(d.shape[1])
    u_ax, v_ax = table[fid, 3].astype(np.int64), table[fid, 4].astype(np.int64)
    xu = c[u_ax] + best_t * d[u_ax, cols]
    xv = c[v_ax] + best_t * d[v_ax, cols]
    map_x = (table[fid, 1] + (xu - table[fid, 5]) * table[fid, 2] - 0.5).astype(np.float32)
    map_y = (table[fid, 0] + (xv - table[fid, 6]) * table[fid, 2] - 0.5).astype(np.float32)
    rgb = cv2.remap(atlas, map_x.reshape(HEIGHT, WIDTH), map_y.reshape(HEIGHT, WIDTH), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return rgb, best_t.reshape(HEIGHT, WIDTH).astype(np.float32)


def covisibility(poses: np.ndarray, width: int = 80, height: int = 60, rel_tol: float = 0.02) -> np.ndarray:
    """(N, N) overlap[i, j]: fraction of frame i's pixels whose surface point frame j also sees
    (inside j's image and not occluded: j's own depth there agrees within rel_tol). Exact depth
    rendered at width x height (same field of view) is plenty for a fraction."""
    focal = FOCAL * width / WIDTH
    K = np.array([[focal, 0, (width - 1) / 2.0], [0, focal, (height - 1) / 2.0], [0, 0, 1]])
    rays = _camera_rays(width, height, focal).astype(np.float64)
    depths = [render_depth(T, width, height).astype(np.float64).ravel() for T in poses]
    world = [T[:3, :3] @ (rays * z) + T[:3, 3:4] for T, z in zip(poses, depths)]
    out = np.zeros((len(poses), len(poses)))
    for j, Tj in enumerate(poses):
        Tinv = np.linalg.inv(Tj)
        for i in range(len(poses)):
            X = Tinv[:3, :3] @ world[i] + Tinv[:3, 3:4]
            z = X[2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = np.rint(K[0, 0] * X[0] / z + K[0, 2])
                v = np.rint(K[1, 1] * X[1] / z + K[1, 2])
            inside = (z > 1e-3) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            idx = (v[inside] * width + u[inside]).astype(np.int64)
            seen = np.abs(depths[j][idx] - z[inside]) <= rel_tol * z[inside]
            out[i, j] = seen.sum() / len(z)
    return out
