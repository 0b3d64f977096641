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

import numpy as np

from maqbool_ros.core.data.datasets import ImageList, SequenceDataset
from maqbool_ros.core.data.rgbd_scene import FOCAL, HEIGHT, SEED, WIDTH, covisibility, render
from maqbool_ros.core.verification.camera import Camera

__all__ = ["RGBDSequence", "camera", "covisibility", "look_pose", "positives_from_overlap", "render",
           "synthetic_mono_sequence", "synthetic_rgbd_sequence", "trajectory"]

NAME = "synthetic-rgbd-room-loop"
MONO_NAME = "synthetic-mono-room-loop"
LOOP_CENTRE, LOOP_AXES = (4.0, 3.0), (2.6, 1.75)       # ellipse the camera drives
CAMERA_HEIGHT_M, PITCH_DEG, OUTWARD_YAW_DEG = 1.3, 8.0, 25.0
LAP1, LAP2 = 40, 32
MIN_OVERLAP, MIN_GAP_S = 0.1, 20.0                     # see positives_from_overlap


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


def positives_from_overlap(overlap: np.ndarray, stamps: np.ndarray, min_overlap: float = MIN_OVERLAP,
                           min_gap_s: float = MIN_GAP_S) -> list[np.ndarray]:
    """Earlier frames (at least min_gap_s before) sharing at least min_overlap of the view both
    ways (min of overlap[i, j] and overlap[j, i]): the same place as a camera sees it."""
    both = np.minimum(overlap, overlap.T)
    earlier = (stamps[:, None] - stamps[None, :]) >= min_gap_s
    return [np.flatnonzero((both[i] >= min_overlap) & earlier[i]).astype(np.int64) for i in range(len(stamps))]


def synthetic_rgbd_sequence(seed: int = SEED, *, depth: bool = True) -> RGBDSequence:
    """The synthetic room loop (72 frames, 640x480) with depth, or monocular (``depth=False``:
    same frames, poses and camera, ``depths`` None). Frames render on first access (~30 ms each)."""
    poses, laps = trajectory(seed)
    stamps = np.arange(len(poses), dtype=float)  # one frame per second
    positives = positives_from_overlap(covisibility(poses), stamps)
    light = np.random.default_rng(seed + 1)
    gains = np.where(laps == 2, light.uniform(0.8, 1.15, len(poses)), 1.0)

    @functools.cache
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
