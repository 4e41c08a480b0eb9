"""A small file with fixed input dims goes to onnx's inference as it is, with the same profile as
the loader's path gives; and profiling leaves nothing for the cyclic collector."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine import graph as engine_graph
from pytest_maccbudget.engine import profile as engine_profile
from pytest_maccbudget.engine.errors import ModelError
from pytest_maccbudget.engine.input_dims import DATA_PROP_MAX_ELEMENTS
from pytest_maccbudget.engine.types import decode_small_tensor

F32 = TensorProto.FLOAT


def _model(nodes: list, inputs: list, outputs: list, initializers: list = (), opset: int = 17,
           domains: tuple = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(domain, 1) for domain in domains]
    return helper.make_model(graph, opset_imports=opsets)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def _nonzero_of_weight(elements: int) -> onnx.ModelProto:
    """NonZero of a float weight of ones, in the file with its data; a Relu on the indices."""
    weight = numpy_helper.from_array(np.ones(elements, np.float32), "w")
    nodes = [helper.make_node("NonZero", ["w"], ["where"], name="nz"),
             helper.make_node("Cast", ["where"], ["where_f"], name="cast", to=F32),
             helper.make_node("Add", ["where_f", "x"], ["y"], name="add")]
    return _model(nodes, [helper.make_tensor_value_info("x", F32, [1, 1])],
                  [helper.make_tensor_value_info("y", F32, None)], [weight])


@pytest.fixture
def loader_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """The paths the loader's path reads (a small file with fixed input dims is not one)."""
    calls: list = []
    load_skeleton = engine_profile.load_skeleton
    monkeypatch.setattr(engine_profile, "load_skeleton", lambda path: calls.append(path) or load_skeleton(path))
    return calls


@pytest.mark.parametrize("elements, exact", [(200, True), (300, False)], ids=["kept-data", "data-over-limit"])
def test_a_weight_over_the_data_limit_is_not_read_though_the_file_holds_it(
        tmp_path: Path, loader_calls: list, elements: int, exact: bool) -> None:
    # 200 floats (800 bytes) is within the loader's 1 KiB, so NonZero of the weight is worked out:
    # 200 indices, an Add of 200 FLOPs. 300 floats (1,200 bytes) is not: the file holds the data,
    # but the engine reads it no more than the loader keeps it, so the count is a bound of 300.
    model = _nonzero_of_weight(elements)
    from_file = profile_model(_save(model, tmp_path / "m.onnx"))
    assert loader_calls == []  # the file's own bytes went to inference
    from_proto = profile_model(model)  # the loader's path: the data cleared
    assert from_file.layers == from_proto.layers and from_file.totals == from_proto.totals
    add = from_file.layer("add")
    assert add.flops == elements
    assert set(add.upper_bounds) == (set() if exact else {"flops", "output_bytes", "bytes_read", "bytes_written"})


def test_decoded_tensors_keep_to_the_loaders_limits() -> None:
    assert decode_small_tensor(numpy_helper.from_array(np.ones(200, np.float32))).tolist() == [1.0] * 200
    assert decode_small_tensor(numpy_helper.from_array(np.ones(300, np.float32))) is None  # 1,200 bytes > 1 KiB
    assert decode_small_tensor(numpy_helper.from_array(np.arange(8000, dtype=np.int64))).shape == (8000,)
    assert decode_small_tensor(numpy_helper.from_array(np.arange(9000, dtype=np.int64))) is None  # > 64 KiB


def test_files_that_need_the_loaders_work_take_its_path(tmp_path: Path, loader_calls: list) -> None:
    relu = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    out = [helper.make_tensor_value_info("y", F32, None)]
    fixed = _save(_model(relu, [helper.make_tensor_value_info("x", F32, [2, 3])], out), tmp_path / "fixed.onnx")
    symbolic = _save(_model(relu, [helper.make_tensor_value_info("x", F32, ["batch", 3])], out), tmp_path / "sym.onnx")
    assert profile_model(fixed).layer("act").flops == 6
    assert loader_calls == []
    profile = profile_model(symbolic)  # a dim to fill (and note)
    assert loader_calls == [symbolic]
    assert profile.layer("act").flops == 3 and any("'batch'" in note for note in profile.notes)
    assert profile_model(fixed, {"x": [4, 3]}).layer("act").flops == 12  # dims given: the loader's path sets them
    assert loader_calls == [symbolic, fixed]


def test_an_undeclared_domain_is_named_as_on_the_loaders_path(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gelu", ["x"], ["y"], name="odd", domain="com.example")]
    path = _save(_model(nodes, [helper.make_tensor_value_info("x", F32, [1, 4])],
                        [helper.make_tensor_value_info("y", F32, None)]), tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="node 'odd' uses op 'Gelu' from domain 'com.example', which the model "
                                         "does not declare"):
        profile_model(path)


def test_an_opset_newer_than_onnx_is_refused_as_on_the_loaders_path(tmp_path: Path) -> None:
    relu = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    newer = onnx.defs.onnx_opset_version() + 1
    model = _model(relu, [helper.make_tensor_value_info("x", F32, [1, 4])],
                   [helper.make_tensor_value_info("y", F32, None)], opset=newer)
    model.ir_version = 10
    with pytest.raises(ModelError, match=f"uses opset {newer} of ai.onnx, newer than the installed onnx"):
        profile_model(_save(model, tmp_path / "m.onnx"))


def test_a_corrupt_input_type_is_a_clean_error(tmp_path: Path) -> None:
    relu = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    data = _model(relu, [helper.make_tensor_value_info("x", F32, [7, 9])],
                  [helper.make_tensor_value_info("y", F32, None)]).SerializeToString()
    type_bytes = helper.make_tensor_type_proto(F32, [7, 9]).SerializeToString()
    assert data.count(type_bytes) == 1
    path = tmp_path / "m.onnx"
    path.write_bytes(data.replace(type_bytes, b"\xff" * len(type_bytes)))  # lengths kept: only the type is corrupt
    with pytest.raises(ModelError, match="not a valid ONNX file: truncated or corrupt protobuf"):
        profile_model(path)


@pytest.mark.parametrize("long_input, long_weight", [(False, False), (True, False), (False, True)],
                         ids=["short", "long-input", "long-weight"])
def test_data_propagation_is_off_for_a_long_vector_as_on_the_loaders_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_input: bool, long_weight: bool) -> None:
    data_props: list = []
    infer = engine_graph._infer_serialized
    monkeypatch.setattr(engine_graph, "_infer_serialized",
                        lambda data, check, strict, data_prop: data_props.append(data_prop) or infer(data, check, strict, data_prop))
    length = DATA_PROP_MAX_ELEMENTS + 1 if long_input else 4
    weight = TensorProto(name="w", data_type=F32, dims=[DATA_PROP_MAX_ELEMENTS + 1 if long_weight else 4],
                         data_location=TensorProto.EXTERNAL)  # (dims only: no data to write)
    weight.external_data.add(key="location", value="absent.bin")
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act"), helper.make_node("Shape", ["w"], ["n"], name="n")]
    model = _model(nodes, [helper.make_tensor_value_info("x", F32, [length])],
                   [helper.make_tensor_value_info("y", F32, None), helper.make_tensor_value_info("n", TensorProto.INT64, None)],
                   [weight])
    assert profile_model(_save(model, tmp_path / "m.onnx")).layer("act").flops == length
    assert data_props == [not (long_input or long_weight)]


def _model_with_bodies() -> onnx.ModelProto:
    """A MatMul by a weight, a Reshape by a computed target and an If whose branches read the weight."""
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    then_graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"], name="then_mm")], "then", [],
                                   [helper.make_tensor_value_info("t", F32, [2, 4])])
    else_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["e"], name="else_relu")], "else", [],
                                   [helper.make_tensor_value_info("e", F32, [2, 4])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Shape", ["h"], ["shape"], name="shape"),
             helper.make_node("Reshape", ["h", "shape"], ["r"], name="reshape"),
             helper.make_node("If", ["cond"], ["branch"], name="if", then_branch=then_graph, else_branch=else_graph)]
    return _model(nodes, [helper.make_tensor_value_info("x", F32, [2, 4]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                  [helper.make_tensor_value_info("r", F32, None), helper.make_tensor_value_info("branch", F32, None)],
                  [weight])


@pytest.mark.parametrize("source", ["small file", "loader", "model"])
def test_profiling_leaves_nothing_for_the_cyclic_collector(tmp_path: Path, source: str) -> None:
    # (every table of the graph is freed when the call returns, not left in reference cycles for
    # the collector to find: 21,000 objects, 3 ms, after each call on a 5,000-node decoder)
    model = _model_with_bodies()
    if source == "loader":  # a symbolic dim: the loader's path
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    target = model if source == "model" else _save(model, tmp_path / "m.onnx")
    expected = profile_model(target)
    assert expected.layer("mm").macs == (16 if source == "loader" else 32)  # (the loader's path: batch 1)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # (what the collector finds is kept in gc.garbage)
    try:
        profile = profile_model(target)
        gc.collect()
        # (of the engine's and onnx's objects: another library's cache may drop its own cycle meanwhile)
        left = [type(found).__name__ for found in gc.garbage
                if type(found).__module__.startswith(("pytest_maccbudget", "onnx", "google"))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []
    assert profile == expected
