"""Pinhole camera model with distortion, built from a sensor_msgs/CameraInfo-like object or
from parameters, and the depth-image sampling the metric (PnP) path needs."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# CameraInfo distortion models -> accepted coefficient counts (OpenCV's layouts).
DISTORTION_MODELS = {
    "": (0,),
    "none": (0,),
    "plumb_bob": (0, 4, 5),
    "rational_polynomial": (0, 8, 12, 14),
    "equidistant": (4,),  # OpenCV fisheye k1..k4
}


@dataclass(frozen=True)
class Camera:
    """Intrinsics of the keyframe images.

    K: (3, 3) float64 intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]].
    D: distortion coefficients in OpenCV order (plumb_bob: k1 k2 p1 p2 [k3]; rational_polynomial:
       k1 k2 p1 p2 k3 k4 k5 k6 [s1..s4 [tx ty]]; equidistant: k1..k4), empty for none.
    width, height: image size in pixels the intrinsics refer to.
    """

    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    width: int = 0
    height: int = 0
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        if K.size == 9:
            K = K.reshape(3, 3)
        if K.shape != (3, 3):
            raise ValueError(f"camera K must be 9 finite numbers (3x3 row-major), got shape {np.shape(self.K)}")
        if not np.all(np.isfinite(K)):
            bad = ", ".join(f"K[{r},{c}]={K[r, c]}" for r, c in np.argwhere(~np.isfinite(K)))
            raise ValueError(f"camera K must be 9 finite numbers (3x3 row-major): {bad}")
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            raise ValueError(f"camera K: focal lengths fx={K[0, 0]}, fy={K[1, 1]} must be > 0")
        if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
            raise ValueError(f"camera K must be upper triangular with K[2,2] = 1, got {K.tolist()}")
        model = str(self.distortion_model).strip().lower()
        if model not in DISTORTION_MODELS:
            raise ValueError(f"camera distortion_model {self.distortion_model!r} is not one of "
                             f"{sorted(m for m in DISTORTION_MODELS if m)}")
        D = np.asarray(self.D, dtype=np.float64).ravel()
        if not np.all(np.isfinite(D)):
            raise ValueError("camera D (distortion coefficients) contains NaN or inf")
        if np.all(D == 0):
            D = np.zeros(0)  # all-zero D (what drivers publish for rectified images) is no distortion
        if D.size not in DISTORTION_MODELS[model]:
            raise ValueError(f"camera D has {D.size} coefficients; distortion_model {model!r} takes "
                             f"{' or '.join(map(str, DISTORTION_MODELS[model]))}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera width/height must be > 0, got width={self.width} height={self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "distortion_model", model)

    @classmethod
    def from_camera_info(cls, info) -> Camera:
        """From a sensor_msgs/msg/CameraInfo or anything with k, d, width, height and
        distortion_model attributes (lower-case ROS 2 names; upper-case K/D also accepted)."""
        k = getattr(info, "k", getattr(info, "K", None))
        if k is None:
            raise ValueError("camera info has no field k (the 3x3 intrinsic matrix)")
        d = getattr(info, "d", getattr(info, "D", ()))
        return cls(K=np.asarray(k, dtype=np.float64), D=np.asarray(d, dtype=np.float64),
                   width=int(getattr(info, "width", 0)), height=int(getattr(info, "height", 0)),
                   distortion_model=str(getattr(info, "distortion_model", "plumb_bob") or "plumb_bob"))

    @classmethod
    def from_params(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                    D=(), distortion_model: str = "plumb_bob") -> Camera:
        """From node parameters (when no CameraInfo topic is available)."""
        return cls(K=np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), D=np.asarray(D, dtype=np.float64),
                   width=width, height=height, distortion_model=distortion_model)

    @property
    def has_distortion(self) -> bool:
        return self.D.size > 0

    def undistort_pixels(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) raw pixel coordinates -> (N, 2) float64 undistorted pixel coordinates of the
        same pinhole K (identity when there is no distortion)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if not self.has_distortion or len(uv) == 0:
            return uv.copy()
        pts = uv.reshape(-1, 1, 2)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D, P=self.K)
        else:
            out = cv2.undistortPoints(pts, self.K, self.D, P=self.K)
        return out.reshape(-1, 2)

    def check_image_size(self, width: int, height: int, what: str = "image") -> None:
        """Raise when an image's size differs from the size the intrinsics refer to."""
        if (int(width), int(height)) != (self.width, self.height):
            raise ValueError(f"{what} is {width}x{height} but the camera (width, height) is "
                             f"{self.width}x{self.height}; intrinsics must match the keyframe images")


#: sensor_msgs/Image depth encodings (lower case) and their pixel types
DEPTH_ENCODINGS = {"16uc1": np.dtype(np.uint16), "mono16": np.dtype(np.uint16), "32fc1": np.dtype(np.float32)}


def depth_from_msg(msg) -> np.ndarray:
    """sensor_msgs/Image 16UC1 (mm) / 32FC1 (m) -> (H, W) uint16 / float32; ValueError saying
    what is wrong (encoding, size, step, data length)."""
    dtype = DEPTH_ENCODINGS.get(str(msg.encoding).lower())
    if dtype is None:
        raise ValueError(f"depth encoding {msg.encoding!r} is not 16UC1 (mm) or 32FC1 (m)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0 or step < w * dtype.itemsize:
        raise ValueError(f"depth image {w}x{h} with step {step} is not a valid {msg.encoding} image")
    data = bytes(msg.data)
    if len(data) < step * h:
        raise ValueError(f"depth image has {len(data)} bytes, {w}x{h} with step {step} needs {step * h}")
    rows = np.frombuffer(data, np.uint8, step * h).reshape(h, step)[:, : w * dtype.itemsize]
    depth = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if msg.is_bigendian else "<")).reshape(h, w)
    return depth.astype(dtype)


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """A depth image as float32 metres, invalid (0, NaN, inf, negative) as 0.

    uint16 is read as millimetres (sensor_msgs 16UC1), float32/float64 as metres (32FC1)."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth image must be (H, W), got shape {depth.shape}")
    if depth.dtype == np.uint16:
        out = depth.astype(np.float32) * np.float32(1e-3)
    elif depth.dtype in (np.float32, np.float64):
        out = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth image dtype {depth.dtype} is neither uint16 (16UC1 mm) nor float32 (32FC1 m)")
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out


def sample_depth(depth: np.ndarray, uv: np.ndarray, image_size: tuple[int, int],
                 max_depth_m: float = 0.0, max_step_m: float = 0.0) -> np.ndarray:
    """Depth in metres at (N, 2) raw pixel coordinates of an image of size (width, height).

    The depth image is assumed registered to the colour image (same field of view); when its
    resolution differs the coordinates are scaled. Nearest pixel; 0 where invalid, beyond
    max_depth_m (> 0), or on an edge (3x3 neighbourhood spread > max_step_m, when > 0), since
    a keypoint on a depth discontinuity often takes the background's depth.
    """
    d = depth_to_metres(depth)
    h, w = d.shape
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    x = np.clip(np.rint(uv[:, 0] * (w / image_size[0]) + 0.5 * (w / image_size[0] - 1)), 0, w - 1).astype(int)
    y = np.clip(np.rint(uv[:, 1] * (h / image_size[1]) + 0.5 * (h / image_size[1] - 1)), 0, h - 1).astype(int)
    z = d[y, x].copy()
    if max_step_m > 0 and len(z):
        pad = np.pad(d, 1, mode="edge")
        win = np.stack([pad[y + dy, x + dx] for dy in range(3) for dx in range(3)], axis=1)
        valid = win > 0
        hi = np.where(valid, win, -np.inf).max(axis=1)
        lo = np.where(valid, win, np.inf).min(axis=1)
        z[(hi - lo) > max_step_m] = 0.0
    if max_depth_m > 0:
        z[z > max_depth_m] = 0.0
    return z.astype(np.float32)
