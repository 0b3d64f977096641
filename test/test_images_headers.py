"""Image sizes read from headers agree with what OpenCV decodes, for every accepted format;
unknown, truncated and malformed headers are refused with the field named."""
from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from maqbool_ros.core.images.decode import decode_compressed
from maqbool_ros.core.images.headers import HeaderTruncated, ImageDecodeError, image_size

W, H = 67, 45


def _encode(ext: str, img: np.ndarray, params=()) -> bytes:
    try:
        ok, buf = cv2.imencode(ext, img, list(params))
    except cv2.error as exc:
        pytest.skip(f"this OpenCV cannot encode {ext}: {exc}")
    if not ok:
        pytest.skip(f"this OpenCV cannot encode {ext}")
    return buf.tobytes()


@pytest.mark.parametrize("ext,kind,params,channels", [
    (".png", "PNG", (), 3), (".png", "PNG", (), 1), (".jpg", "JPEG", (), 3), (".jpg", "JPEG", (), 1),
    (".jpg", "JPEG", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 3), (".bmp", "BMP", (), 3), (".bmp", "BMP", (), 1),
    (".tiff", "TIFF", (), 3), (".webp", "WebP", (cv2.IMWRITE_WEBP_QUALITY, 80), 3),
    (".webp", "WebP", (cv2.IMWRITE_WEBP_QUALITY, 101), 3), (".webp", "WebP", (), 4),
    (".ppm", "PNM", (), 3), (".pgm", "PNM", (), 1), (".pbm", "PNM", (), 1), (".pam", "PNM", (), 3),
    (".ras", "Sun raster", (), 3), (".gif", "GIF", (), 3),
])
def test_header_size_matches_the_decoder(ext, kind, params, channels):
    img = np.random.default_rng(0).integers(0, 256, (H, W, channels) if channels > 1 else (H, W), dtype=np.uint8)
    data = _encode(ext, img, params)
    assert image_size(data) == (kind, W, H)
    assert decode_compressed(data, ext).shape == (H, W, 3)


def test_jpeg_size_is_found_past_large_segments():
    data = _encode(".jpg", np.zeros((H, W, 3), np.uint8))
    app = b"\xff\xe1" + struct.pack(">H", 65535) + bytes(65533)  # a full-size APP1 (EXIF-like) segment
    padded = data[:2] + app * 3 + b"\xff\xff" + data[2:]  # and a fill byte before the next marker
    assert image_size(padded) == ("JPEG", W, H)
    assert decode_compressed(padded, "jpeg").shape == (H, W, 3)


def test_pnm_comments_and_bigtiff():
    assert image_size(b"P6\n# made by hand\n 640 # width\n480\n255\n") == ("PNM", 640, 480)
    ifd = struct.pack("<Q", 2) + struct.pack("<HHQQ", 256, 4, 1, 640) + struct.pack("<HHQQ", 257, 3, 1, 480)
    assert image_size(b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + ifd) == ("TIFF", 640, 480)


def test_tiff_ifd_at_the_end_of_the_file():
    big_endian = b"MM\x00*" + struct.pack(">I", 8 + 1000) + bytes(1000)
    ifd = struct.pack(">H", 2) + struct.pack(">HHII", 257, 4, 1, 3000) + struct.pack(">HHIHH", 256, 3, 1, 4000, 0)
    assert image_size(big_endian + ifd) == ("TIFF", 4000, 3000)
    with pytest.raises(HeaderTruncated, match="data: TIFF header is truncated"):
        image_size(big_endian)


@pytest.mark.parametrize("data,message", [
    (b"GARBAGE!" * 4, "data: unknown image format"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(20), "data: unknown image format"),  # JPEG 2000: size not read
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", "data: PNG header is truncated"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dtEXt" + bytes(13), "data: PNG does not start with an IHDR"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + bytes(13), r"data: PNG header says the image is empty \(0x0\)"),
    (b"\xff\xd8\xff\xda\x00\x02", "data: JPEG has no frame header"),
    (b"\xff\xd8\xff\xe0\x00\x10" + bytes(14) + b"\x00\xc0", "does not start with a marker"),
    (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 20000, "data: JPEG has more than"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00\x03", r"height 0 \(DNL\)"),
    (b"P5\n" + b"#" * (1 << 17), "data: PNM header is longer than"),
    (b"P5\n12 x\n255\n", "data: PNM header has no valid width"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8Z" + bytes(20), "data: WebP first chunk"),
])
def test_bad_headers_are_refused(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        image_size(data)
    with pytest.raises(ImageDecodeError, match=message):
        decode_compressed(data, "x")


def test_jpeg_2000_is_refused_even_though_opencv_reads_it():
    data = _encode(".jp2", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match="data: unknown image format"):
        decode_compressed(data, "jp2")
