"""RTAB-Map's RVL depth encoding, for tests (the bridge only decodes: core/integration/rtabmap_data.py)."""
from __future__ import annotations

import struct

import numpy as np


def rvl_encode(depth: np.ndarray) -> bytes:
    """A line-by-line port of rtabmap::RvlCodec::CompressRVL (rvl_codec.cpp), with its header."""
    words, state = [], {"word": 0, "n": 0}

    def vle(value: int) -> None:
        while True:
            nibble, value = value & 0x7, value >> 3
            if value:
                nibble |= 0x8
            state["word"] = ((state["word"] << 4) | nibble) & 0xFFFFFFFF
            state["n"] += 1
            if state["n"] == 8:
                words.append(state["word"])
                state["word"], state["n"] = 0, 0
            if not value:
                return

    flat, i, previous = [int(v) for v in depth.ravel()], 0, 0
    while i < len(flat):
        zeros = 0
        while i < len(flat) and not flat[i]:
            i, zeros = i + 1, zeros + 1
        vle(zeros)
        nonzeros = 0
        while i + nonzeros < len(flat) and flat[i + nonzeros]:
            nonzeros += 1
        vle(nonzeros)
        for _ in range(nonzeros):
            delta = flat[i] - previous
            vle((delta << 1) ^ (delta >> 31))
            previous, i = flat[i], i + 1
    if state["n"]:
        words.append((state["word"] << 4 * (8 - state["n"])) & 0xFFFFFFFF)
    return b"DEPTHRVL" + struct.pack("<II", depth.shape[1], depth.shape[0]) + np.array(words, "<u4").tobytes()
