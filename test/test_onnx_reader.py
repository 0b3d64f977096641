"""The runtime's ONNX reader (core/descriptor/onnx_reader.py) against the onnx package: metadata
and float initializers in every encoding onnx writes (raw_data, float_data, packed and unpacked
dims), models it must refuse, and the engine's head read from it equal to onnx's."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from maqbool_ros.core.descriptor.onnx_reader import read_onnx


def _model(initializers: list[TensorProto], props: dict[str, str]) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y], initializers)
    model = helper.make_model(graph)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def test_reads_metadata_and_float_initializers_like_onnx():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    c = rng.standard_normal((2, 1, 3)).astype(np.float32)
    raw = numpy_helper.from_array(a, "raw")  # raw_data
    listed = helper.make_tensor("listed", TensorProto.FLOAT, [7], b.tolist())  # float_data
    big = numpy_helper.from_array(c, "wpca.weight")
    ints = numpy_helper.from_array(np.arange(3, dtype=np.int64), "ints")  # not wanted: skipped
    data = _model([raw, listed, big, ints], {"backbone": "mobilenetv2", "mean": "[0.1, 0.2]", "é": "ü"})
    meta, tensors = read_onnx(data, {"raw", "listed", "wpca.weight", "absent"})
    proto = onnx.load_from_string(data)
    assert meta == {p.key: p.value for p in proto.metadata_props}
    assert set(tensors) == {"raw", "listed", "wpca.weight"}
    for init in proto.graph.initializer:
        if init.name in tensors:
            np.testing.assert_array_equal(tensors[init.name], numpy_helper.to_array(init))
            assert tensors[init.name].dtype == np.float32


@pytest.mark.parametrize("data, says", [
    (b"", "no graph"),
    (b"\x3a\xff\xff\xff\xff\x0f", "past its message"),  # graph field longer than the file
    (b"\x38", "truncated"),  # a key with no value
    (b"\x3b", "wire type"),  # group start: not in ONNX
])
def test_malformed_bytes_are_a_value_error(data, says):
    with pytest.raises(ValueError, match=says):
        read_onnx(data)


def test_refuses_wanted_tensors_it_cannot_read():
    ints = numpy_helper.from_array(np.arange(3, dtype=np.int64), "w")
    with pytest.raises(ValueError, match="data type 7"):
        read_onnx(_model([ints], {}), {"w"})
    ext = numpy_helper.from_array(np.zeros(3, np.float32), "e")
    ext.data_location = TensorProto.EXTERNAL
    ext.ClearField("raw_data")
    with pytest.raises(ValueError, match="external file"):
        read_onnx(_model([ext], {}), {"e"})


def test_engine_head_equals_the_onnx_package_reading(tmp_path):
    """The NetVLAD head the engine reads (bytes, no onnx) equals the one read through onnx's
    ModelProto, on a model written by the project's own export path."""
    from maqbool_ros.core.descriptor.export import INITIALIZER_NAMES
    from maqbool_ros.core.descriptor.onnx_contract import read_head_and_metadata

    rng = np.random.default_rng(1)
    k, d = 4, 6
    arrays = {"netvlad.centroids": rng.standard_normal((k, d)), "netvlad.assign_weight": rng.standard_normal((k, d)),
              "wpca.weight": rng.standard_normal((3, k * d)), "wpca.bias": rng.standard_normal(3)}
    assert set(arrays) <= set(INITIALIZER_NAMES.values())
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in arrays.items()]
    props = {"backbone": "test", "descriptor_dim": "3", "stride": "8", "mean": "[0,0,0]", "std": "[1,1,1]"}
    data = _model(inits, props)
    head_bytes, meta_bytes = read_head_and_metadata(data)
    head_proto, meta_proto = read_head_and_metadata(onnx.load_from_string(data))
    assert meta_bytes == meta_proto == props
    for name in ("centroids", "assign_weight", "pca_weight", "pca_bias"):
        np.testing.assert_array_equal(getattr(head_bytes, name), getattr(head_proto, name))
    np.testing.assert_allclose(head_bytes.centroids, arrays["netvlad.centroids"].astype(np.float32))
