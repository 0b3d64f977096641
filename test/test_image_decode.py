"""Image payload decoding: every supported encoding round-trips; bad input names the field."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maqbool_ros.core.images.decode import ImageDecodeError, decode_compressed, decode_raw, encode_raw


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_round_trip(rgb, encoding):
    data, step = encode_raw(rgb, encoding)
    assert np.array_equal(decode_raw(data, 53, 37, encoding, step), rgb)


def test_padded_rows_are_ignored(rgb):
    data, step = encode_raw(rgb, "rgb8")
    padded = b"".join(data[r * step:(r + 1) * step] + b"\xff" * 7 for r in range(37))
    assert np.array_equal(decode_raw(padded, 53, 37, "rgb8", step + 7), rgb)


def test_mono8_and_mono16(rgb):
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    data, step = encode_raw(rgb, "mono8")
    out = decode_raw(data, 53, 37, "mono8", step)
    assert out.shape == (37, 53, 3) and np.array_equal(out[..., 0], gray)
    data16, step16 = encode_raw(rgb, "mono16")
    out16 = decode_raw(data16, 53, 37, "mono16", step16)
    expected = np.round(gray.astype(np.float32) * 255 / float(gray.max())).astype(np.uint8)
    assert np.abs(out16[..., 0].astype(int) - expected).max() <= 1
    big = (gray.astype(">u2") * np.uint16(257)).astype(">u2").tobytes()
    assert np.array_equal(decode_raw(big, 53, 37, "mono16", 106, is_bigendian=True), out16)


def test_compressed_jpeg_and_png(rgb):
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.array_equal(decode_compressed(png.tobytes(), "png"), rgb)
    smooth = cv2.GaussianBlur(rgb, (0, 0), 3)  # JPEG is lossy on noise; use a smooth image
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(smooth, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert np.abs(decode_compressed(jpg.tobytes(), "jpeg").astype(int) - smooth).mean() < 3


@pytest.mark.parametrize("kwargs,field", [
    (dict(encoding="yuv422"), "encoding"), (dict(width=0), "width"), (dict(step=10), "step"),
    (dict(data=b"\x00" * 100), "data"),
])
def test_malformed_raw_names_the_field(rgb, kwargs, field):
    data, step = encode_raw(rgb, "rgb8")
    args = dict(data=data, width=53, height=37, encoding="rgb8", step=step) | kwargs
    with pytest.raises(ImageDecodeError, match=field):
        decode_raw(**args)


def test_truncated_jpeg_is_rejected(rgb):
    _, jpg = cv2.imencode(".jpg", rgb)
    with pytest.raises(ImageDecodeError, match="data"):
        decode_compressed(jpg.tobytes()[:40], "jpeg")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_compressed(b"", "jpeg")
