"""A SYNTHETIC RGB-D loop sequence with exact poses, depth and intrinsics (no download, no OpenGL).

A 8 m x 6 m x 2.8 m room holds a central island, two pillars and a free-standing panel, all
axis-aligned boxes whose faces carry textures composed from the images matplotlib ships
(shaded elevation rasters as background, crops of grace_hopper.jpg, Minduka_Present_Blue_Pack.png
and logo2.png pasted over them, plus seeded fine-grained colour noise so no two places look alike).
A 640x480 pinhole camera (fx = fy = 525, TUM-like) drives an elliptic loop around the island,
looking roughly along its path:

* lap 1 (40 frames): the nominal loop, one frame per second;
* lap 2 (32 frames): the same places again, each with a different viewpoint (lateral offset up
  to +-0.3 m, height +-0.1 m, yaw +-10 deg, roll +-3 deg) and lighting (gain, noise).

Each frame is rendered exactly by casting one ray per pixel (numpy): the nearest box face
gives the depth (z in the camera frame, float32 metres) and a texture coordinate, sampled
bilinearly (cv2.remap) from one texture atlas. Poses are ``world_T_camera`` (4x4, OpenCV
optical frame: x right, y down, z forward; world z up), so the ground-truth relative pose of a
(query, candidate) pair is ``inv(T_wq) @ T_wc`` = T_query_candidate, the convention of
maqbool_ros.core.verification. Positives: frames at least ``MIN_GAP_S`` earlier that share at
least ``MIN_OVERLAP`` of the view both ways (exact co-visibility from the rendered depth, see
:func:`covisibility`). Not a radius/angle rule: in a room, views 1-2 m apart facing the same
wall are the same place for a loop constraint (verification finds their pose to ~1 deg / 2 cm),
while a camera on the same spot facing the other way is not.

It is a functional benchmark for geometric verification (exact ground truth), not a
substitute for real data: textures are planar, lighting is uniform, there is no motion blur.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from maqbool_ros.core.data.datasets import ImageList, SequenceDataset
from maqbool_ros.core.data.demo_sequence import _read_rgb, _terrain_tiles
from maqbool_ros.core.verification.camera import Camera

NAME = "synthetic-rgbd-room-loop"
MONO_NAME = "synthetic-mono-room-loop"
SEED = 13
WIDTH, HEIGHT, FOCAL = 640, 480, 525.0
ROOM = ((0.0, 0.0, 0.0), (8.0, 6.0, 2.8))             # (lo, hi) metres, world z up
OBSTACLES = (                                           # (lo, hi): island, two pillars, a panel
    ((3.2, 2.6, 0.0), (4.8, 3.4, 0.9)),
    ((0.9, 0.9, 0.0), (1.3, 1.3, 2.8)),
    ((6.7, 4.7, 0.0), (7.1, 5.1, 2.8)),
    ((5.6, 0.55, 0.3), (6.8, 0.65, 1.9)),
)
LOOP_CENTRE, LOOP_AXES = (4.0, 3.0), (2.6, 1.75)       # ellipse the camera drives
CAMERA_HEIGHT_M, PITCH_DEG, OUTWARD_YAW_DEG = 1.3, 8.0, 25.0
LAP1, LAP2 = 40, 32
MIN_OVERLAP, MIN_GAP_S = 0.1, 20.0                     # see positives_from_overlap
TEXELS_PER_M = 220.0


@dataclass
class RGBDSequence(SequenceDataset):
    """A SequenceDataset with what geometric verification needs: intrinsics, depth and poses.

    camera: Camera of the frames; poses: (N, 4, 4) float64 world_T_camera; depths: lazily
    rendered (H, W) float32 metres per frame (0 = no surface), or None for the monocular
    variant. ``depth_mm(i)`` gives the uint16 millimetre image (sensor_msgs 16UC1)."""

    camera: Camera | None = None
    poses: np.ndarray | None = None
    depths: ImageList | None = None

    def relative_pose(self, query: int, candidate: int) -> np.ndarray:
        """Ground-truth T_query_candidate (4x4): the candidate camera in the query camera frame."""
        return np.linalg.inv(self.poses[query]) @ self.poses[candidate]

    def depth_mm(self, index: int) -> np.ndarray:
        """Depth of frame ``index`` as uint16 millimetres (0 = unknown)."""
        if self.depths is None:
            raise ValueError(f"{self.name} is monocular: it has no depth")
        return np.clip(np.rint(self.depths[index] * 1000.0), 0, 65535).astype(np.uint16)


def camera() -> Camera:
    """The sequence's pinhole camera (no distortion)."""
    return Camera.from_params(FOCAL, FOCAL, (WIDTH - 1) / 2.0, (HEIGHT - 1) / 2.0, WIDTH, HEIGHT)


def look_pose(position, yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """world_T_camera for a camera at ``position`` heading ``yaw_deg`` (from world +x towards +y),
    pitched down by ``pitch_deg`` and rolled clockwise by ``roll_deg`` about its optical axis."""
    psi, phi, rho = np.radians([yaw_deg, pitch_deg, roll_deg])
    fwd = np.array([np.cos(psi) * np.cos(phi), np.sin(psi) * np.cos(phi), -np.sin(phi)])
    right = np.array([np.sin(psi), -np.cos(psi), 0.0])
    down = np.cross(fwd, right)
    right, down = np.cos(rho) * right + np.sin(rho) * down, -np.sin(rho) * right + np.cos(rho) * down
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, fwd], axis=1)
    T[:3, 3] = position
    return T


def trajectory(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) world_T_camera poses and the lap (1 or 2) of each frame."""
    rng = np.random.default_rng(seed)
    (cx, cy), (a, b) = LOOP_CENTRE, LOOP_AXES
    poses, laps = [], []
    for lap, n in ((1, LAP1), (2, LAP2)):
        for k in range(n):
            th = 2 * np.pi * k / LAP1 + (rng.uniform(-0.04, 0.04) if lap == 2 else 0.0)
            radial = rng.uniform(-0.3, 0.3) if lap == 2 else 0.0
            p = np.array([cx + (a + radial) * np.cos(th), cy + (b + radial) * np.sin(th), CAMERA_HEIGHT_M])
            tangent = np.degrees(np.arctan2(b * np.cos(th), -a * np.sin(th)))
            yaw = tangent - OUTWARD_YAW_DEG  # counter-clockwise drive, turned a little towards the walls
            pitch, roll = PITCH_DEG, 0.0
            if lap == 2:
                p[2] += rng.uniform(-0.1, 0.1)
                yaw += rng.uniform(-10, 10)
                pitch += rng.uniform(-3, 3)
                roll = rng.uniform(-3, 3)
            poses.append(look_pose(p, yaw, pitch, roll))
            laps.append(lap)
    return np.stack(poses), np.asarray(laps)


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


def positives_from_overlap(overlap: np.ndarray, stamps: np.ndarray, min_overlap: float = MIN_OVERLAP,
                           min_gap_s: float = MIN_GAP_S) -> list[np.ndarray]:
    """Earlier frames (at least min_gap_s before) sharing at least min_overlap of the view both
    ways (min of overlap[i, j] and overlap[j, i]): the same place as a camera sees it."""
    both = np.minimum(overlap, overlap.T)
    earlier = (stamps[:, None] - stamps[None, :]) >= min_gap_s
    return [np.flatnonzero((both[i] >= min_overlap) & earlier[i]).astype(np.int64) for i in range(len(stamps))]


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


def synthetic_rgbd_sequence(seed: int = SEED, *, depth: bool = True) -> RGBDSequence:
    """The synthetic room loop (72 frames, 640x480) with depth, or monocular (``depth=False``:
    same frames, poses and camera, ``depths`` None). Frames render on first access (~30 ms each)."""
    poses, laps = trajectory(seed)
    stamps = np.arange(len(poses), dtype=float)  # one frame per second
    positives = positives_from_overlap(covisibility(poses), stamps)
    light = np.random.default_rng(seed + 1)
    gains = np.where(laps == 2, light.uniform(0.8, 1.15, len(poses)), 1.0)

    @functools.lru_cache(maxsize=None)
    def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
        rgb, z = render(poses[i], seed)
        noise = np.random.default_rng(seed * 1000 + i).standard_normal(rgb.shape, dtype=np.float32)
        return np.clip(rgb * np.float32(gains[i]) + 2.0 * noise, 0, 255).astype(np.uint8), z

    names = [f"{i:04d}_lap{laps[i]}" for i in range(len(poses))]
    ds = RGBDSequence(NAME if depth else MONO_NAME, ImageList(names, lambda i: frame(i)[0]), positives, stamps,
                      source="embedded synthetic RGB-D sequence (matplotlib sample data)",
                      camera=camera(), poses=poses,
                      depths=ImageList(names, lambda i: frame(i)[1]) if depth else None)
    ds.laps = laps
    return ds


def synthetic_mono_sequence(seed: int = SEED) -> RGBDSequence:
    """The same sequence without depth (monocular verification: rotation + translation direction)."""
    return synthetic_rgbd_sequence(seed, depth=False)
