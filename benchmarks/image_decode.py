"""Image decoding: peak RSS growth and time of refusing decompression bombs and of decoding
ordinary images (issue #11, defect 2).

    python -m benchmarks.image_decode [--repeats 5] [--big]

Every case runs in a fresh interpreter that resets its peak RSS (VmHWM, via
/proc/self/clear_refs) just before the first decode, so the growth printed belongs to that
decode alone; time is the median of --repeats decodes. --big adds decoding the 10000x10000
bomb with max_image_pixels raised to 100 MP (about 1.5 GB of memory; off by default).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the test helpers (test/helpers) are no package

CASES = {  # name -> (file, description)
    "png_bomb": ("bomb.png", "refuse 10000x10000 16-bit RGBA PNG ({size}, 800 MB decoded)"),
    "jpeg_bomb": ("bomb.jpg", "refuse JPEG claiming 20000x20000 ({size})"),
    "png16_4k": ("4k16.png", "decode 4096x2160 16-bit RGBA PNG ({size})"),
    "png16_4k_float32": ("4k16.png", "  same, former float32 conversion (reference)"),
    "jpeg_vga": ("vga.jpg", "decode 640x480 JPEG ({size})"),
    "png_bomb_100mp": ("bomb.png", "decode the 10000x10000 bomb with max_image_pixels = 100 MP"),
}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _float32_reference(data: bytes) -> np.ndarray:
    """The decoder before the fix: 16-bit -> float32 -> rounded float32 -> uint8."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    img = (img.astype(np.float32) * (255.0 / max(int(img.max()), 1))).round().astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)


def child(case: str, path: str, repeats: int) -> None:
    """One case in this fresh process; prints a JSON line."""
    from maqbool_ros.core.images.decode import ImageDecodeError, decode_compressed

    data = Path(path).read_bytes()
    if case == "png16_4k_float32":
        decode = _float32_reference
    elif case == "png_bomb_100mp":
        def decode(d):
            return decode_compressed(d, "png", max_pixels=100_000_000)
    else:
        def decode(d):
            return decode_compressed(d, Path(path).suffix)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = _status("VmRSS")
    times, outcome = [], ""
    for i in range(repeats):
        t0 = time.perf_counter()
        try:
            shape = decode(data).shape  # the result is dropped at once, as the node's worker does
            outcome = f"decoded {shape[1]}x{shape[0]}"
        except ImageDecodeError as exc:
            outcome = f"refused: {exc}"
        times.append((time.perf_counter() - t0) * 1e3)
        if i == 0:
            growth = (_status("VmHWM") - before) / 1024
    print(json.dumps({"growth_mb": growth, "ms": statistics.median(times), "outcome": outcome}))


def make_inputs(folder: Path) -> None:
    import cv2

    from helpers.image_bombs import huge_jpeg, zero_png

    (folder / "bomb.png").write_bytes(zero_png(10000, 10000))
    (folder / "bomb.jpg").write_bytes(huge_jpeg(20000, 20000))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:2160, 0:4096]
    base = (x * 12 + y * 7) % 65536  # a smooth 16-bit ramp plus sensor-like noise
    img16 = np.stack([base, base[::-1], base[:, ::-1], np.full_like(base, 65535)], axis=2)
    img16 = np.clip(img16 + rng.normal(0, 200, img16.shape), 0, 65535).astype(np.uint16)
    cv2.imwrite(str(folder / "4k16.png"), img16)
    vga = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 2)
    cv2.imwrite(str(folder / "vga.jpg"), vga, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--big", action="store_true", help="also decode the bomb with the limit raised (~1.5 GB)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.repeats)
        return 0
    from maqbool_ros.core.evaluation.machine import machine_line

    print(machine_line("numpy", "cv2"))
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="maqbool-image-bench-") as tmp:
        folder = Path(tmp)
        make_inputs(folder)
        print(f"\n| case | peak RSS growth MB | ms (median of {args.repeats}) |\n|---|---|---|")
        for case, (name, label) in CASES.items():
            if case == "png_bomb_100mp" and not args.big:
                continue
            size = (folder / name).stat().st_size
            label = label.format(size=f"{size / 1e6:.2f} MB" if size > 1e5 else f"{size / 1e3:.1f} kB")
            repeats = 1 if case == "png_bomb_100mp" else args.repeats
            out = subprocess.run([sys.executable, __file__, "--repeats", str(repeats), "--child", case,
                                  str(folder / name)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{case} failed:\n{out.stderr}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {label} | {res['growth_mb']:.1f} | {res['ms']:.2f} |")
            if res["outcome"].startswith("refused"):
                print(f"|   ({res['outcome']}) | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
