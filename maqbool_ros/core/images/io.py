"""Reading images from files and folders into RGB uint8 arrays, with clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def list_images(directory: str | Path) -> list[Path]:
    """Image files directly inside ``directory``, sorted by name (the datasets' index order)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory {directory} does not exist or is not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image directory {directory} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array (grayscale is replicated, alpha dropped).

    Decoded by the node's CompressedImage decoder, so a file read offline and the same
    bytes received as a CompressedImage give identical pixels, and the same size limit
    (max_pixels, default: the config schema's max_image_pixels) applies. The header is read
    first: an oversized image is refused without reading the rest of the file.
    """
    from maqbool_ros.core.images.decode import decode_compressed
    from maqbool_ros.core.images.headers import ImageDecodeError

    path = Path(path)
    limit = _pixel_limit(max_pixels)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with path.open("rb") as f:
            _head_size(f, limit)  # None (size field beyond the first bytes, TIFF): decode checks the whole file
            f.seek(0)
            data = f.read()  # one read: no second full-size copy from joining head and rest
        return decode_compressed(data, path.suffix.lstrip("."), limit)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"image file {path} cannot be decoded: {exc}") from exc


def image_file_size(path: str | Path, max_pixels: int | None = None) -> tuple[str, int, int]:
    """(format, width, height) of an image file from its header, refused as :func:`read_image`
    would refuse it (unsupported format, over max_pixels); no pixel is decoded."""
    from maqbool_ros.core.images.decode import check_pixels
    from maqbool_ros.core.images.headers import ImageDecodeError, image_size

    path = Path(path)
    limit = _pixel_limit(max_pixels)
    try:
        with path.open("rb") as f:
            size = _head_size(f, limit)
            if size is None:  # size field beyond the first bytes (TIFF IFD at the end)
                f.seek(0)
                size = image_size(f.read())
                check_pixels(size[1], size[2], limit, f"data: {size[0]}")
        return size
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"image file {path} is not a readable image: {exc}") from None


def _pixel_limit(max_pixels: int | None) -> int:
    from maqbool_ros.core.images.decode import DEFAULT_MAX_IMAGE_PIXELS

    return DEFAULT_MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)


def _head_size(f, limit: int) -> tuple[str, int, int] | None:
    """Format and size from the first bytes of an open file, checked against limit; None when
    the header does not fit in them."""
    from maqbool_ros.core.images.decode import check_pixels
    from maqbool_ros.core.images.headers import HEADER_SCAN_BYTES, HeaderTruncated, image_size

    try:
        kind, width, height = image_size(f.read(HEADER_SCAN_BYTES))
    except HeaderTruncated:
        return None
    check_pixels(width, height, limit, f"data: {kind}")
    return kind, width, height


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an image array and return it as contiguous (H, W, 3) uint8 RGB.

    Accepts (H, W), (H, W, 1), (H, W, 3) and (H, W, 4) uint8 arrays; grayscale is replicated
    to 3 channels and alpha dropped. Anything else raises ValueError naming the problem.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: dtype must be uint8 (RGB 0..255), got {image.dtype}"
                         + (" (contains NaN)" if image.dtype.kind == "f" and np.isnan(image).any() else ""))
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{name}: shape must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: image is empty ({image.shape})")
    return np.ascontiguousarray(image[:, :, :3])


RESIZE_POLICIES = ("keep_aspect", "exact", "native")


def resize_for_network(image: np.ndarray, image_size: tuple[int, int], policy: str,
                       min_side: int = 32) -> np.ndarray:
    """Resize an RGB uint8 image for the network. image_size is (width, height).

    keep_aspect: the largest size that fits inside image_size with the same aspect ratio
    (small images are enlarged); exact: exactly image_size; native: unchanged.
    """
    import cv2

    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize_policy: {policy!r} is not one of {list(RESIZE_POLICIES)}")
    h, w = image.shape[:2]
    tw, th = int(image_size[0]), int(image_size[1])
    if policy == "native":
        nw, nh = w, h
    elif policy == "exact":
        nw, nh = tw, th
    else:
        scale = min(tw / w, th / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if min(nw, nh) < min_side:
        raise ValueError(f"image: {nw}x{nh} after resizing ({policy}) is smaller than the network minimum "
                         f"{min_side} px")
    if (nw, nh) == (w, h):
        return image
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LINEAR
    return cv2.resize(image, (nw, nh), interpolation=interp)
