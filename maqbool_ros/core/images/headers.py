"""Image size from the file header, read before any pixel is decoded.

A compressed image of a few hundred kilobytes can decode to gigabytes (a 10000x10000 16-bit
RGBA PNG of zeros is 0.8 MB and 800 MB decoded), so the decoders check the size written in
the header against ``max_image_pixels`` first. Only formats whose size can be read here are
accepted; anything else is refused rather than handed to OpenCV unchecked.

The parsers follow the same structure the decoders do (PNG: the IHDR chunk, which must come
first; JPEG: the first SOFn segment found by walking the segment lengths; TIFF: the first
IFD, the page OpenCV decodes), so the size read is the size that would be allocated.
"""
from __future__ import annotations

import struct

SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WebP", "PNM", "GIF", "Sun raster")
HEADER_SCAN_BYTES = 1 << 16  # text headers (PNM) longer than this are refused, not scanned on


class ImageDecodeError(ValueError):
    """The image cannot be turned into an RGB array; the text names the field."""


class HeaderTruncated(ImageDecodeError):
    """The data ends before the size field: a truncated image, or only its first bytes were read."""


def _unpack(fmt: str, data: bytes, offset: int, kind: str) -> tuple:
    end = offset + struct.calcsize(fmt)
    if offset < 0 or end > len(data):
        raise HeaderTruncated(f"data: {kind} header is truncated ({len(data)} bytes, the size field "
                              f"needs {end})")
    return struct.unpack_from(fmt, data, offset)


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR" and len(data) >= 16:
        raise ImageDecodeError("data: PNG does not start with an IHDR chunk")
    return _unpack(">II", data, 16, "PNG")


# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_NO_LENGTH = frozenset([0x01, *range(0xD0, 0xD9)])  # TEM, RSTn, SOI: markers without a segment
_JPEG_MAX_STEPS = 10_000  # real files have tens of segments before SOF; bounds the time a crafted one costs


def _jpeg(data: bytes) -> tuple[int, int]:
    pos = 2
    for _ in range(_JPEG_MAX_STEPS):
        (ff,) = _unpack("B", data, pos, "JPEG")
        if ff != 0xFF:
            raise ImageDecodeError(f"data: JPEG segment at byte {pos} does not start with a marker")
        if _unpack("B", data, pos + 1, "JPEG")[0] == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        (marker,) = _unpack("B", data, pos + 1, "JPEG")
        if marker in _NO_LENGTH:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ImageDecodeError("data: JPEG has no frame header (SOF) before its scan data")
        (length,) = _unpack(">H", data, pos + 2, "JPEG")
        if marker in _SOF:
            height, width = _unpack(">HH", data, pos + 5, "JPEG")
            if height == 0:  # the height would come later in a DNL marker, which decoders reject
                raise ImageDecodeError("data: JPEG frame header has height 0 (DNL), not supported")
            return width, height
        if length < 2:
            raise ImageDecodeError(f"data: JPEG segment at byte {pos} has length {length}")
        pos += 2 + length
    raise ImageDecodeError(f"data: JPEG has more than {_JPEG_MAX_STEPS} segments before its frame header")


def _bmp(data: bytes) -> tuple[int, int]:
    (dib,) = _unpack("<I", data, 14, "BMP")
    if dib == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return _unpack("<HH", data, 18, "BMP")
    width, height = _unpack("<ii", data, 18, "BMP")
    if width <= 0:
        raise ImageDecodeError(f"data: BMP width {width} is not positive")
    return width, abs(height)  # a negative height means top-down rows


def _tiff(data: bytes) -> tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    (magic,) = _unpack(order + "H", data, 2, "TIFF")
    if magic == 43:  # BigTIFF: 64-bit offsets and counts, 20-byte IFD entries
        (ifd,) = _unpack(order + "Q", data, 8, "TIFF")
        (count,) = _unpack(order + "Q", data, ifd, "TIFF")
        first, entry, value_at = ifd + 8, 20, 12
    else:
        (ifd,) = _unpack(order + "I", data, 4, "TIFF")
        (count,) = _unpack(order + "H", data, ifd, "TIFF")
        first, entry, value_at = ifd + 2, 12, 8
    size: dict[int, int] = {}
    for i in range(min(count, 4096)):
        at = first + i * entry
        tag, typ = _unpack(order + "HH", data, at, "TIFF")
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
            fmt = {3: "H", 4: "I", 16: "Q"}.get(typ)
            if fmt is None:
                raise ImageDecodeError(f"data: TIFF size tag {tag} has type {typ}")
            size[tag] = _unpack(order + fmt, data, at + value_at, "TIFF")[0]
            if len(size) == 2:
                return size[256], size[257]
    raise ImageDecodeError("data: TIFF first IFD has no ImageWidth/ImageLength")


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        w0, w1, w2, h0, h1, h2 = _unpack("6B", data, 24, "WebP")
        return 1 + (w0 | w1 << 8 | w2 << 16), 1 + (h0 | h1 << 8 | h2 << 16)
    if chunk == b"VP8L":  # lossless: signature 0x2F, then 14-bit sizes minus one
        sig, bits = _unpack("<BI", data, 20, "WebP")
        if sig != 0x2F:
            raise ImageDecodeError("data: WebP lossless signature is wrong")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a" and len(data) >= 26:
            raise ImageDecodeError("data: WebP lossy start code is wrong")
        w, h = _unpack("<HH", data, 26, "WebP")
        return w & 0x3FFF, h & 0x3FFF
    raise ImageDecodeError(f"data: WebP first chunk {chunk!r} is not VP8, VP8L or VP8X")


def _pnm_tokens(data: bytes):
    """Whitespace-separated tokens of a PNM header, comments skipped, within HEADER_SCAN_BYTES."""
    text = data[2:HEADER_SCAN_BYTES]
    pos = 0
    while True:
        while pos < len(text) and text[pos:pos + 1].isspace():
            pos += 1
        if text[pos:pos + 1] == b"#":
            nl = text.find(b"\n", pos)
            pos = len(text) if nl < 0 else nl + 1
            continue
        start = pos
        while pos < len(text) and not text[pos:pos + 1].isspace() and text[pos:pos + 1] != b"#":
            pos += 1
        if pos == start or pos == len(text):  # no token, or one that may continue past the data
            if len(data) < HEADER_SCAN_BYTES:
                raise HeaderTruncated(f"data: PNM header is truncated ({len(data)} bytes)")
            raise ImageDecodeError(f"data: PNM header is longer than {HEADER_SCAN_BYTES} bytes")
        yield text[start:pos]


def _pnm(data: bytes) -> tuple[int, int]:
    tokens = _pnm_tokens(data)
    try:
        if data[1:2] != b"7":
            return int(next(tokens)), int(next(tokens))
        size: dict[bytes, int] = {}
        for tok in tokens:  # PAM: KEY value lines up to ENDHDR
            if tok == b"ENDHDR":
                break
            if tok in (b"WIDTH", b"HEIGHT"):
                size[tok] = int(next(tokens))
        return size[b"WIDTH"], size[b"HEIGHT"]
    except (ValueError, KeyError) as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        raise ImageDecodeError("data: PNM header has no valid width and height") from exc


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) read from the header of an encoded image.

    Raises ImageDecodeError (naming ``data``) when the format is not one of SUPPORTED_FORMATS
    or the header is malformed, and its subclass HeaderTruncated when the data ends first.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        kind, size = "PNG", _png(data)
    elif data[:3] == b"\xff\xd8\xff":
        kind, size = "JPEG", _jpeg(data)
    elif data[:2] == b"BM":
        kind, size = "BMP", _bmp(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        kind, size = "TIFF", _tiff(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind, size = "WebP", _webp(data)
    elif len(data) > 2 and data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        kind, size = "PNM", _pnm(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        kind, size = "GIF", _unpack("<HH", data, 6, "GIF")
    elif data[:4] == b"\x59\xa6\x6a\x95":
        kind, size = "Sun raster", _unpack(">II", data, 4, "Sun raster")
    else:
        raise ImageDecodeError(f"data: unknown image format (first bytes {bytes(data[:8])!r}); "
                               f"the size must be readable before decoding: {', '.join(SUPPORTED_FORMATS)}")
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"data: {kind} header says the image is empty ({width}x{height})")
    return kind, width, height
