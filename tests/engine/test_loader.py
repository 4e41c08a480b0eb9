"""The weightless loader: large tensor data is never materialised; dims, dtypes and small values are kept."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.errors import ModelError
from pytest_maccbudget.engine.loader import DIRECT_PARSE_BYTES, load_skeleton, skeleton_bytes


def _model_with_weights(rows: int) -> onnx.ModelProto:
    """MatMul by a rows x 64 weight, a Reshape by a small int64 target, a big Constant inside an If."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((rows, 64)).astype(np.float32), "W")
    target = numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "target")
    big_constant = numpy_helper.from_array(np.ones((300, 64), np.float32), "big")
    then_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=big_constant)], "then", [],
        [helper.make_tensor_value_info("k", TensorProto.FLOAT, [300, 64])])
    else_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["k2"], value=big_constant)], "else", [],
        [helper.make_tensor_value_info("k2", TensorProto.FLOAT, [300, 64])])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["y"], name="fc"),
        helper.make_node("Reshape", ["y", "target"], ["z"], name="flat"),
        helper.make_node("If", ["cond"], ["branch"], name="branchy", then_branch=then_graph, else_branch=else_graph),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None), helper.make_tensor_value_info("branch", TensorProto.FLOAT, None)],
        [weight, target])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _expected_skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    expected = onnx.ModelProto()
    expected.CopyFrom(model)
    expected.graph.initializer[0].ClearField("raw_data")
    for attribute in expected.graph.node[2].attribute:
        attribute.g.node[0].attribute[0].t.ClearField("raw_data")
    return expected


@pytest.mark.parametrize("rows", [16, DIRECT_PARSE_BYTES // 256 + 1], ids=["small-file", "wire-walk"])
def test_skeleton_drops_large_data_and_keeps_the_rest(tmp_path: Path, rows: int) -> None:
    model = _model_with_weights(rows)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    skeleton = load_skeleton(path)
    expected = _expected_skeleton(model)
    if rows == 16:  # 16 x 64 floats = 4 KB: above the small-tensor limit too
        assert skeleton.graph.initializer[0].raw_data == b""
    assert skeleton == expected
    assert numpy_helper.to_array(skeleton.graph.initializer[1]).tolist() == [1, -1]


def test_wire_walk_output_parses_to_the_same_skeleton_as_clearing() -> None:
    model = _model_with_weights(2000)
    assert onnx.ModelProto.FromString(skeleton_bytes(model.SerializeToString())) == _expected_skeleton(model)


def test_missing_external_data_file_still_profiles(tmp_path: Path) -> None:
    model = _model_with_weights(4096)
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=1024)
    (tmp_path / "weights.bin").unlink()
    profile = profile_model(path, batch=1)
    fc = profile.layer("fc")
    assert fc.macs == 4096 * 64
    assert fc.params == 4096 * 64


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"\xff\xff\xff\xff this is not protobuf", "not a valid ONNX file"),
        (b"\x08\x07", "not an ONNX model"),
    ],
)
def test_bad_files_raise_model_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as info:
        profile_model(path)
    assert str(path) in str(info.value)


def test_truncated_large_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "trunc.onnx"
    onnx.save(_model_with_weights(DIRECT_PARSE_BYTES // 256 + 1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_skeleton(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        profile_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="is a directory"):
        profile_model(tmp_path)
