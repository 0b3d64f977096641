"""Decompression bombs (issue #11, defect 2): oversized images are refused from their header,
before any pixel is decoded, and 16-bit images are converted without float copies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.image_bombs import zero_png
from maqbool_ros.core.config import FIELDS, MaqboolConfig
from maqbool_ros.core.images.decode import ImageDecodeError, decode_compressed, decode_raw
from maqbool_ros.core.images.io import read_image

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter so the peak RSS (VmHWM) belongs to this one decode. The address
# space is capped at +1 GiB so a decoder that does allocate the bomb fails fast instead of taking
# gigabytes from a shared machine; the test then fails on the message, not on the machine.
_CHILD = r"""
import json, resource, sys
from helpers.image_bombs import huge_jpeg, zero_png
from maqbool_ros.core.images.decode import ImageDecodeError, decode_compressed

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

data = zero_png(10000, 10000) if sys.argv[1] == "png" else huge_jpeg(20000, 20000)
resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") * 1024 + (1 << 30), resource.RLIM_INFINITY))
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
except OSError:
    pass
before = status("VmRSS")
try:
    decode_compressed(data, sys.argv[1])
    outcome = "decoded"
except ImageDecodeError as exc:
    outcome = str(exc)
except Exception as exc:  # e.g. MemoryError under the address-space cap
    outcome = repr(exc)
print(json.dumps({"growth_mb": (status("VmHWM") - before) / 1024, "bytes": len(data), "outcome": outcome}))
"""


def _refuse_in_child(kind: str) -> dict:
    path = os.pathsep.join([str(REPO), str(REPO / "test"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-c", _CHILD, kind], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_png_bomb_is_refused_before_decoding():
    """A <1 MB 10000x10000 16-bit RGBA PNG (800 MB decoded) is refused with < 100 MB peak RSS growth."""
    res = _refuse_in_child("png")
    assert res["bytes"] < 2_000_000
    assert res["outcome"].startswith("data: PNG 10000x10000 = 100.0 MP exceeds max_image_pixels"), res
    assert res["growth_mb"] < 100, res


def test_jpeg_bomb_is_refused_before_decoding():
    """A tiny JPEG whose frame header claims 20000x20000 is refused from the SOF segment."""
    res = _refuse_in_child("jpeg")
    assert res["outcome"].startswith("data: JPEG 20000x20000 = 400.0 MP exceeds max_image_pixels"), res
    assert res["growth_mb"] < 100, res


def test_raw_image_over_limit_is_refused_before_its_data():
    # no data at all: the size check must come before the data-length check
    with pytest.raises(ImageDecodeError, match=r"width/height: 10000x10000 = 100.0 MP exceeds max_image_pixels"):
        decode_raw(b"", 10000, 10000, "mono16", 20000)
    data = bytes(64 * 48 * 3)
    with pytest.raises(ImageDecodeError, match="max_image_pixels"):
        decode_raw(data, 64, 48, "rgb8", 64 * 3, max_pixels=64 * 48 - 1)
    assert decode_raw(data, 64, 48, "rgb8", 64 * 3, max_pixels=64 * 48).shape == (48, 64, 3)


def test_node_conversion_refuses_before_copying_the_data():
    pytest.importorskip("builtin_interfaces.msg", reason="ROS message packages are not importable")
    from maqbool_ros.ros.conversions import image_to_rgb

    class HugeImage:  # a sensor_msgs/Image stand-in whose payload must never be touched
        width, height, encoding, step, is_bigendian = 10000, 10000, "rgb8", 30000, False

        @property
        def data(self):
            raise AssertionError("data was read before the size check")

    with pytest.raises(ImageDecodeError, match="width/height: 10000x10000 .* max_image_pixels"):
        image_to_rgb(HugeImage())

    class Compressed:
        format = "png"
        data = zero_png(300, 200)

    from maqbool_ros.core.images.decode import UninformativeImage

    with pytest.raises(UninformativeImage, match="every pixel is 0"):  # under the limit: decoded, then blank
        image_to_rgb(Compressed())
    with pytest.raises(ImageDecodeError, match="data: PNG 300x200"):
        image_to_rgb(Compressed(), max_pixels=300 * 200 - 1)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_under_the_limit_decodes_exactly(channels):
    rng = np.random.default_rng(channels)
    shape = (45, 67) if channels == 1 else (45, 67, channels)
    img = rng.integers(0, 4096, shape).astype(np.uint16)  # a 12-bit sensor in a 16-bit PNG
    ok, png = cv2.imencode(".png", img)
    out = decode_compressed(png.tobytes(), "png")
    expected = np.rint(img.astype(np.float64) * 255 / img.max()).astype(np.uint8)  # brute force
    if channels == 1:
        expected = np.repeat(expected[:, :, None], 3, axis=2)
    else:
        expected = expected[:, :, 2::-1]  # BGR(A) -> RGB
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


def test_16bit_decode_makes_no_float_copy():
    """Peak traced memory stays within the 16-bit image + its 8-bit copy + the RGB result
    (the float32 conversion took two 4-byte-per-sample copies on top)."""
    h, w = 500, 600
    img = np.random.default_rng(1).integers(0, 65536, (h, w, 4)).astype(np.uint16)
    png = cv2.imencode(".png", img)[1].tobytes()
    raw = img[:, :, 0].astype(">u2").tobytes()
    bound = h * w * (4 * 2 + 4 + 3) + (1 << 20)
    for decode in (lambda: decode_compressed(png, "png"),
                   lambda: decode_raw(raw, w, h, "mono16", 2 * w, is_bigendian=True)):
        tracemalloc.start()
        try:
            decode()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < bound, f"peak {peak / 1e6:.1f} MB >= {bound / 1e6:.1f} MB"


def test_read_image_uses_the_same_limit(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(zero_png(10000, 10000))
    with pytest.raises(ImageDecodeError, match=r"bomb.png .*data: PNG 10000x10000 .* max_image_pixels"):
        read_image(bomb)
    small = tmp_path / "small.png"
    small.write_bytes(zero_png(64, 48, bit_depth=8, colour_type=2))
    assert read_image(small).shape == (48, 64, 3)
    with pytest.raises(ValueError, match="small.png .*max_image_pixels"):
        read_image(small, max_pixels=64 * 48 - 1)


def test_max_image_pixels_is_a_validated_read_only_field():
    from maqbool_ros.core.images.decode import DEFAULT_MAX_IMAGE_PIXELS

    meta = FIELDS["max_image_pixels"].metadata
    assert DEFAULT_MAX_IMAGE_PIXELS == MaqboolConfig().max_image_pixels >= 3840 * 2160
    assert meta["read_only"]  # a memory limit: never raised live by another node (issue #23)
    with pytest.raises(ValueError, match="max_image_pixels"):
        MaqboolConfig().replace(max_image_pixels=0)
    with pytest.raises(ValueError, match="max_image_pixels"):
        MaqboolConfig().replace(max_image_pixels=1 << 31)
