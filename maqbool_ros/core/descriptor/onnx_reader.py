"""Read an ONNX model's metadata and named float initializers without the ``onnx`` package.

Why: ``import onnx`` costs 1.0–1.7 s on the project's 2-core machine (its ml_dtypes extension),
more than half of the node's start-up, only to read a few tensors and strings that the engine
needs besides the onnxruntime session (the NetVLAD head and metadata_props). This is a small
reader of the protobuf wire format for exactly those fields of onnx.proto (IR v3+):

    ModelProto:  graph = 7, metadata_props = 14 (StringStringEntryProto: key = 1, value = 2)
    GraphProto:  initializer = 5 (TensorProto)
    TensorProto: dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9, data_location = 14

Everything else is skipped by its wire type. Tensors kept in external files are refused (the
project's models embed their weights). The export side (offline) keeps using ``onnx``; a test
checks this reader against it.
"""
from __future__ import annotations

import numpy as np

_FLOAT = 1  # TensorProto.FLOAT
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class _Buffer:
    """A cursor over protobuf bytes: varints, length-delimited fields, skipping."""

    def __init__(self, data: memoryview, start: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, start, len(data) if end is None else end

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= self.end or shift > 63:
                raise ValueError("truncated or malformed varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def fields(self):
        """(field number, wire type, value) until the end: value is an int for varints, a
        (start, end) span for length-delimited fields, None for skipped fixed-size ones."""
        while self.pos < self.end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                yield number, wire, self.varint()
            elif wire == 2:
                size = self.varint()
                start, self.pos = self.pos, self.pos + size
                if self.pos > self.end:
                    raise ValueError("a length-delimited field runs past its message")
                yield number, wire, (start, self.pos)
            elif wire in (1, 5):
                self.pos += 8 if wire == 1 else 4
                yield number, wire, None
            else:
                raise ValueError(f"unsupported protobuf wire type {wire}")
        if self.pos != self.end:
            raise ValueError("a field runs past its message")

    def text(self, span: tuple[int, int]) -> str:
        return bytes(self.data[span[0]:span[1]]).decode("utf-8")


def _packed_ints(buf: _Buffer, span: tuple[int, int]) -> list[int]:
    inner = _Buffer(buf.data, *span)
    out = []
    while inner.pos < inner.end:
        out.append(inner.varint())
    return out


def _tensor(buf: _Buffer, span: tuple[int, int], wanted: set[str]) -> tuple[str, np.ndarray] | None:
    """(name, float32 array) of a TensorProto whose name is wanted, else None."""
    dims: list[int] = []
    name, dtype, raw, floats, external = "", _FLOAT, None, [], False
    for number, wire, value in _Buffer(buf.data, *span).fields():
        if number == 1:
            dims += _packed_ints(buf, value) if wire == 2 else [value]
        elif number == 2 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            floats.append(value)
        elif number == 8 and wire == 2:
            name = buf.text(value)
        elif number == 9 and wire == 2:
            raw = value
        elif number == 14 and wire == 0:
            external = value == _EXTERNAL
    if name not in wanted:
        return None
    if external:
        raise ValueError(f"initializer {name!r} is stored in an external file (embed the weights)")
    if dtype != _FLOAT:
        raise ValueError(f"initializer {name!r} has ONNX data type {dtype}, expected FLOAT (1)")
    if raw is not None:
        data = np.frombuffer(buf.data[raw[0]:raw[1]], dtype="<f4")
    else:
        data = np.concatenate([np.frombuffer(buf.data[a:b], dtype="<f4") for a, b in floats]) if floats \
            else np.zeros(0, np.float32)
    if data.size != int(np.prod(dims, dtype=np.int64)):
        raise ValueError(f"initializer {name!r}: {data.size} values for dims {dims}")
    return name, data.astype(np.float32).reshape(dims)


def read_onnx(data: bytes, wanted: set[str] | frozenset[str] = frozenset()
              ) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata_props as a dict, {name: float32 array} of the wanted initializers present) of
    a serialized ONNX model. ValueError when the bytes are not a well-formed model."""
    buf = _Buffer(memoryview(data))
    wanted = set(wanted)
    meta: dict[str, str] = {}
    tensors: dict[str, np.ndarray] = {}
    saw_graph = False
    try:
        for number, wire, value in buf.fields():
            if number == 14 and wire == 2:
                key = val = ""
                for n, w, v in _Buffer(buf.data, *value).fields():
                    if w == 2 and n in (1, 2):
                        key, val = (buf.text(v), val) if n == 1 else (key, buf.text(v))
                meta[key] = val
            elif number == 7 and wire == 2:
                saw_graph = True
                for n, w, v in _Buffer(buf.data, *value).fields():
                    if n == 5 and w == 2 and (found := _tensor(buf, v, wanted)) is not None:
                        tensors[found[0]] = found[1]
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a well-formed ONNX model ({exc})") from None
    if not saw_graph:
        raise ValueError("not an ONNX model (no graph)")
    return meta, tensors
