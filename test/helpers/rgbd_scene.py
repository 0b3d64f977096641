"""A seeded textured room corner (three planar walls, so the essential matrix is not degenerate)
seen by two pinhole cameras with an exact relative pose: the candidate image is the texture,
the query view is rendered wall by wall through each wall's homography. Images, registered
depth and the true T_query_candidate, for verification tests."""
from __future__ import annotations

import cv2
import numpy as np

WIDTH, HEIGHT, F = 640, 480, 500.0
K = np.array([[F, 0.0, (WIDTH - 1) / 2], [0.0, F, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])


def texture(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(H, W, 3) uint8 RGB: random filled shapes over smooth noise (plenty of ORB corners)."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (height // 16, width // 16, 3)).astype(np.uint8), (width, height),
                     interpolation=cv2.INTER_LINEAR)
    for _ in range(220):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            w, h = int(rng.integers(6, 60)), int(rng.integers(6, 60))
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(4, 30)), colour, -1)
    return img


def rotation(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    R, _ = cv2.Rodrigues(np.radians([rx_deg, ry_deg, rz_deg]))
    return R


def _planes(depth_m: float) -> list[tuple[np.ndarray, float, slice]]:
    """A room corner in the candidate frame: the wall Z = depth_m in the middle third, walls
    turned 30 degrees towards the camera on either side (meeting it at the thirds), as
    (unit normal n, offset d with n . X = d, candidate-image columns)."""
    out = []
    for sign, cols in ((-1, slice(0, WIDTH // 3)), (0, slice(WIDTH // 3, 2 * WIDTH // 3)),
                       (1, slice(2 * WIDTH // 3, WIDTH))):
        n = np.array([0.577 * sign, 0.0, 1.0])
        n /= np.linalg.norm(n)
        edge = cols.stop if sign < 0 else cols.start  # column where it meets the middle wall
        x = (edge - K[0, 2]) / F if sign else 0.0
        out.append((n, float(n @ np.array([x * depth_m, 0.0, depth_m])), cols))
    return out


def candidate_depth(depth_m: float, mm: bool = False) -> np.ndarray:
    """The candidate's registered depth image (float32 metres, or uint16 millimetres)."""
    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    rays = np.stack([(u - K[0, 2]) / F, (v - K[1, 2]) / F, np.ones_like(u, float)], axis=-1)
    depth = np.zeros((HEIGHT, WIDTH), np.float32)
    for n, d, cols in _planes(depth_m):
        depth[:, cols] = d / (rays[:, cols] @ n)
    return np.rint(depth * 1000).astype(np.uint16) if mm else depth


def view(cand_rgb: np.ndarray, R: np.ndarray, t: np.ndarray, depth_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The query image and its depth (float32 metres) for T_query_candidate = (R, t), seeing the
    candidate's scene (candidate_depth). Pixels that see none of it are black / 0."""
    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    rays = np.stack([(u - K[0, 2]) / F, (v - K[1, 2]) / F, np.ones_like(u, float)], axis=-1)
    rgb = np.zeros_like(cand_rgb)
    depth = np.full((HEIGHT, WIDTH), np.inf, np.float32)
    for n, d, cols in _planes(depth_m):
        H = K @ (R + np.outer(t, n) / d) @ np.linalg.inv(K)  # candidate pixel -> query pixel
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        mask[:, cols] = 1
        seen = cv2.warpPerspective(mask, H, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST) > 0
        n_q = R @ n  # the plane in the query frame: n_q . X_q = d + n_q . t
        z = ((d + n_q @ t) / (rays @ n_q)).astype(np.float32)
        near = seen & (z > 0) & (z < depth)
        rgb[near] = cv2.warpPerspective(cand_rgb, H, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)[near]
        depth[near] = z[near]
    depth[~np.isfinite(depth)] = 0.0
    return rgb, depth


def rotation_error_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    cos = (np.trace(Ra.T @ Rb) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
