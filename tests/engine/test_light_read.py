"""A small file with fixed input dims goes to onnx's inference as it is, with the same profile as
the loader's path gives; and profiling leaves nothing for the cyclic collector."""
from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine import graph as engine_graph
from pytest_maccbudget.engine import loader as engine_loader
from pytest_maccbudget.engine import profile as engine_profile
from pytest_maccbudget.engine.errors import ModelError
from pytest_maccbudget.engine.input_dims import DATA_PROP_MAX_ELEMENTS
from pytest_maccbudget.engine.loader import DIRECT_PARSE_BYTES
from pytest_maccbudget.engine.results import Profile

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
    """The files profiled the loader's way (parsed into Python and cleared before inference), not
    sent to onnx's inference as they are: a small file's bytes read once, or a large file walked."""
    calls: list = []
    read_paths: list = []
    read_small_file, skeleton_of = engine_profile.read_small_file, engine_profile.skeleton_of
    load_skeleton = engine_profile.load_skeleton
    monkeypatch.setattr(engine_profile, "read_small_file", lambda path: read_paths.append(path) or read_small_file(path))
    monkeypatch.setattr(engine_profile, "skeleton_of", lambda data: calls.append(read_paths[-1]) or skeleton_of(data))
    monkeypatch.setattr(engine_profile, "load_skeleton", lambda path: calls.append(path) or load_skeleton(path))
    return calls


def _same_profile(path: Path, model: onnx.ModelProto) -> Profile:
    """The profile of the file, checked equal to the loader's path's (a ModelProto is stripped
    in memory, never sent as it is)."""
    from_file, from_proto = profile_model(path), profile_model(model)
    assert (from_file.layers, from_file.totals, from_file.unknown, from_file.notes) == \
        (from_proto.layers, from_proto.totals, from_proto.unknown, from_proto.notes)
    return from_file


@pytest.mark.parametrize("elements", [200, 256, 300])
@pytest.mark.parametrize("file_size", ["small", "over 4 MiB"])
def test_a_weight_keeps_its_data_as_the_loader_keeps_it(tmp_path: Path, loader_calls: list, elements: int,
                                                         file_size: str) -> None:
    # 200 floats (800 bytes) keep their data: NonZero of the weight is worked out, 200 indices, an
    # Add of 200 FLOPs; 300 floats (1,200 bytes) do not: the count is a bound of 300. 256 floats,
    # 1 KiB of data in a tensor of 1,035 bytes: a file parsed whole clears it (the tensor is over
    # 1 KiB), the walk of a large file keeps it (it measures the data alone). A small file whose
    # tensors all keep their data goes to onnx's inference as it is; any other, the loader's way.
    model = _nonzero_of_weight(elements)
    if file_size != "small":  # a weight nothing reads, of 4 MiB: the file is walked, not parsed
        model.graph.initializer.append(numpy_helper.from_array(np.zeros(DIRECT_PARSE_BYTES // 4, np.float32), "pad"))
    path = _save(model, tmp_path / "m.onnx")
    add = (_same_profile(path, model) if file_size == "small" else profile_model(path)).layer("add")
    assert bool(loader_calls) == (file_size != "small" or elements > 200)
    exact = elements == 200 or (elements == 256 and file_size != "small")
    assert add.flops == elements
    assert set(add.upper_bounds) == (set() if exact else {"flops", "output_bytes", "bytes_read", "bytes_written"})


def _table_sliced_for_a_target(where: str) -> onnx.ModelProto:
    """The first two entries of an int64 table of 9,000 (72 KB: over the loader's 64 KiB) as a
    Reshape target, the table an initializer, a Constant, or a constant of an If's branch; or a
    float Constant of 300 elements read by nothing (1.2 KB), or a sparse initializer."""
    table = np.full(9000, 7, np.int64)
    table[:2] = [4, 48]
    nodes = [helper.make_node("Slice", ["table", "starts", "ends"], ["target"], name="slice"),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
             helper.make_node("Relu", ["y"], ["z"], name="act")]
    initializers = [numpy_helper.from_array(np.array([0], np.int64), "starts"),
                    numpy_helper.from_array(np.array([2], np.int64), "ends")]
    inputs = [helper.make_tensor_value_info("x", F32, [1, 3, 8, 8])]
    outputs = [helper.make_tensor_value_info("z", F32, None)]
    if where == "initializer":
        initializers.append(numpy_helper.from_array(table, "table"))
    elif where == "Constant":
        nodes.insert(0, helper.make_node("Constant", [], ["table"], name="table", value=numpy_helper.from_array(table)))
    elif where == "If branch":
        branch = helper.make_graph([helper.make_node("Identity", ["inner"], ["out"], name="copy")], "branch", [],
                                   [helper.make_tensor_value_info("out", TensorProto.INT64, [9000])],
                                   [numpy_helper.from_array(table, "inner")])
        nodes.insert(0, helper.make_node("If", ["flag"], ["table"], name="if", then_branch=branch, else_branch=branch))
        inputs.append(helper.make_tensor_value_info("flag", TensorProto.BOOL, []))
    else:
        initializers.append(numpy_helper.from_array(table, "table"))
        unread = numpy_helper.from_array(np.ones(300, np.float32))
        if where == "unread Constant":
            nodes.append(helper.make_node("Constant", [], ["unread"], name="unread", value=unread))
        else:
            sparse = helper.make_sparse_tensor(unread, numpy_helper.from_array(np.arange(300, dtype=np.int64)), [600])
            sparse.values.name, sparse.indices.name = "unread", "unread_indices"
            graph = helper.make_graph(nodes, "g", inputs, outputs, initializers, sparse_initializer=[sparse])
            return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return _model(nodes, inputs, outputs, initializers)


@pytest.mark.parametrize("where", ["initializer", "Constant", "If branch", "unread Constant", "sparse initializer"])
def test_onnx_reads_no_tensor_the_loader_clears(tmp_path: Path, loader_calls: list, where: str) -> None:
    # onnx's inference reads the data it is given (a Reshape target, a Slice of a table): a file
    # holding a tensor over the loader's limits, anywhere, goes the loader's way, and the target
    # stays unknown as it always has
    model = _table_sliced_for_a_target(where)
    path = _save(model, tmp_path / "m.onnx")
    profile = _same_profile(path, model)
    assert loader_calls == [path]
    if where in ("initializer", "Constant"):
        assert profile.layer("act").status == "unresolved"


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
             helper.make_node("If", ["cond"], ["branch"], name="if", then_branch=then_graph, else_branch=else_graph),
             helper.make_node("Reshape", ["h", "target"], ["free"], name="by_input"),  # (a target known at run time)
             helper.make_node("Softmax", ["free"], ["unknown"], name="unresolved")]
    return _model(nodes, [helper.make_tensor_value_info("x", F32, [2, 4]), helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                          helper.make_tensor_value_info("target", TensorProto.INT64, [2])],
                  [helper.make_tensor_value_info("r", F32, None), helper.make_tensor_value_info("branch", F32, None),
                   helper.make_tensor_value_info("unknown", F32, None)],
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
    assert expected.layer("unresolved").status == "unresolved"  # (its rule raised: the error holds no frame)
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


def _nested_ifs(depth: int) -> onnx.ModelProto:
    """If inside If, `depth` deep, the innermost making and reading a sequence: the value infos
    onnx's inference adds there nest deeper than protobuf parses (100 levels) at depth 31."""
    body = helper.make_graph([helper.make_node("SequenceConstruct", ["x"], ["s"], name="seq"),
                              helper.make_node("SequenceAt", ["s", "idx"], ["o0"], name="at")], "b0", [],
                             [helper.make_tensor_value_info("o0", F32, [2])])
    for level in range(1, depth + 1):
        other = helper.make_graph([helper.make_node("Identity", ["x"], [f"e{level}"], name=f"e{level}")], f"e{level}",
                                  [], [helper.make_tensor_value_info(f"e{level}", F32, [2])])
        node = helper.make_node("If", ["c"], [f"o{level}"], name=f"if{level}", then_branch=body, else_branch=other)
        body = helper.make_graph([node], f"b{level}", [], [helper.make_tensor_value_info(f"o{level}", F32, [2])])
    return _model(list(body.node), [helper.make_tensor_value_info("x", F32, [2]),
                                    helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                  [helper.make_tensor_value_info(f"o{depth}", F32, None)],
                  [numpy_helper.from_array(np.array(0, np.int64), "idx")])


@pytest.mark.parametrize("source", ["file", "model"])
def test_what_onnx_infers_too_deep_to_read_back_is_a_clean_error(tmp_path: Path, source: str) -> None:
    model = _nested_ifs(31)
    with pytest.raises(ModelError, match="shape inference failed: .*MaxDepth"):
        profile_model(_save(model, tmp_path / "m.onnx") if source == "file" else model)


def _with_input_type_twice(model: onnx.ModelProto, first: onnx.TypeProto) -> bytes:
    """The model's bytes with its first input's `type` written twice: `first`, then its own
    (protobuf merges the two: the dims of both, one after the other)."""
    value_info = model.graph.input[0].SerializeToString()
    extra_type = first.SerializeToString()
    at = value_info.index(b"\x12")  # field 2, the type
    doubled = value_info[:at] + b"\x12" + bytes([len(extra_type)]) + extra_type + value_info[at:]
    graph = model.graph.SerializeToString()
    new_graph = graph.replace(b"\x5a" + bytes([len(value_info)]) + value_info, b"\x5a" + bytes([len(doubled)]) + doubled)
    data = model.SerializeToString()
    return data.replace(b"\x3a" + bytes([len(graph)]) + graph, b"\x3a" + bytes([len(new_graph)]) + new_graph)


def test_an_input_type_written_twice_is_read_merged_as_protobuf_does(tmp_path: Path, loader_calls: list) -> None:
    relu = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    model = _model(relu, [helper.make_tensor_value_info("x", F32, [3])], [helper.make_tensor_value_info("y", F32, None)])
    path = tmp_path / "m.onnx"
    path.write_bytes(_with_input_type_twice(model, helper.make_tensor_type_proto(F32, ["batch"])))
    assert [d.dim_param or d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim] == ["batch", 3]
    profile = profile_model(path)  # [batch, 3]: a dim to fill, the loader's way
    assert loader_calls == [path]
    assert profile.layer("act").flops == 3 and any("'batch'" in note for note in profile.notes)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_file_that_is_not_a_regular_file_is_not_read_to_its_end() -> None:
    with pytest.raises(ModelError, match="the file is empty"):  # (its size reads as 0; reading it would not end)
        profile_model("/dev/zero")


def test_what_the_light_read_refuses_takes_the_loaders_path(tmp_path: Path, loader_calls: list,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    relu = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    out = [helper.make_tensor_value_info("y", F32, None)]
    # a local function: inlined first
    function = helper.make_function("local", "F", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    calls_function = _model([helper.make_node("F", ["x"], ["y"], name="call", domain="local")],
                            [helper.make_tensor_value_info("x", F32, [2, 3])], out, domains=("local",))
    calls_function.functions.append(function)
    profile = profile_model(_save(calls_function, tmp_path / "function.onnx"))
    assert loader_calls == [tmp_path / "function.onnx"] and profile.totals.flops == 6 and not profile.unknown
    # a dim declared 0: named in a note
    zero = _save(_model(relu, [helper.make_tensor_value_info("x", F32, [2, 0, 3])], out), tmp_path / "zero.onnx")
    profile = profile_model(zero)
    assert loader_calls[-1] == zero and profile.layer("act").flops == 0
    assert any("declares dim 1 as 0" in note for note in profile.notes)
    # no IR version: refused
    no_ir = _model(relu, [helper.make_tensor_value_info("x", F32, [2, 3])], out)
    no_ir.ir_version = 0
    with pytest.raises(ModelError, match="not an ONNX model"):
        profile_model(_save(no_ir, tmp_path / "no_ir.onnx"))
    assert loader_calls[-1] == tmp_path / "no_ir.onnx"


def test_a_corrupt_input_type_never_reaches_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inferred: list = []
    monkeypatch.setattr(engine_graph, "_infer_serialized", lambda *args: inferred.append(args))
    relu = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    data = _model(relu, [helper.make_tensor_value_info("x", F32, [7, 9])],
                  [helper.make_tensor_value_info("y", F32, None)]).SerializeToString()
    type_bytes = helper.make_tensor_type_proto(F32, [7, 9]).SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data.replace(type_bytes, b"\xff" * len(type_bytes)))
    with pytest.raises(ModelError, match="not a valid ONNX file"):
        profile_model(path)
    assert inferred == []


@pytest.mark.parametrize("scoped", [True, False])
def test_node_metadata_is_read_when_the_file_names_a_source_key(tmp_path: Path, loader_calls: list,
                                                                scoped: bool) -> None:
    node = helper.make_node("Relu", ["x"], ["y"], name="node_Relu_0")
    if scoped:
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'block']")
    profile = profile_model(_save(_model([node], [helper.make_tensor_value_info("x", F32, [2, 3])],
                                         [helper.make_tensor_value_info("y", F32, None)]), tmp_path / "m.onnx"))
    assert loader_calls == []
    assert list(profile.sources) == (["node_Relu_0"] if scoped else [])
    if scoped:
        assert profile.sources["node_Relu_0"].metadata == (("pkg.torch.onnx.name_scopes", "['', 'block']"),)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int8_table_written_short(count: int) -> bytes:
    """An INT8 initializer 'c8' of [2, 3, -1, -1...], each -1 written in 5 bytes as protobuf
    allows (a parse writes it again in 10): 1,004 bytes in the file, 1,994 written again."""
    minus_one = b"\xff\xff\xff\xff\x0f"
    values = b"\x02\x03" + minus_one * (count - 2)
    return b"\x08" + _varint(count) + b"\x10" + _varint(TensorProto.INT8) + _field(5, values) + _field(8, b"c8")


def test_a_tensor_is_measured_as_the_loader_measures_it_not_as_the_file_writes_it(
        tmp_path: Path, loader_calls: list) -> None:
    # its first two values are a Reshape target: the loader clears the data (1,994 bytes written
    # again), so the target is not known and the MatMul is unresolved, on either way
    nodes = [helper.make_node("Cast", ["c8"], ["c64"], to=TensorProto.INT64, name="cast"),
             helper.make_node("Slice", ["c64", "starts", "ends"], ["target"], name="slice"),
             helper.make_node("Reshape", ["x", "target"], ["r"], name="reshape"),
             helper.make_node("MatMul", ["r", "w"], ["y"], name="mm")]
    model = _model(nodes, [helper.make_tensor_value_info("x", F32, [6])], [helper.make_tensor_value_info("y", F32, None)],
                   [numpy_helper.from_array(np.array([0], np.int64), "starts"),
                    numpy_helper.from_array(np.array([2], np.int64), "ends"),
                    numpy_helper.from_array(np.ones((3, 5), np.float32), "w")])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString() + _field(7, _field(5, _int8_table_written_short(200))))
    parsed = onnx.load(path)
    assert [t.ByteSize() for t in parsed.graph.initializer if t.name == "c8"] == [1994]
    profile = _same_profile(path, parsed)
    assert loader_calls == [path] and profile.layer("mm").status == "unresolved"


def test_an_input_listed_twice_is_read_as_its_last_listing(tmp_path: Path) -> None:
    # x first [70000] (a long vector: no data propagation), then [3, 4], the listing onnx and the
    # input dims read: data propagation on, the NonZero count bounded, the MatMul costed
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["c"], name="fill",
                              value=numpy_helper.from_array(np.array([1.0], np.float32))),
             helper.make_node("MatMul", ["c", "w"], ["y"], name="mm")]
    model = _model(nodes, [helper.make_tensor_value_info("x", F32, [70000]), helper.make_tensor_value_info("x", F32, [3, 4])],
                   [helper.make_tensor_value_info("y", F32, None)], [numpy_helper.from_array(np.ones((5, 6), np.float32), "w")])
    path = _save(model, tmp_path / "m.onnx")
    assert _same_profile(path, model).layer("mm").status == "costed"


@pytest.mark.parametrize("path", ["a\0b.onnx", b"a\0b.onnx", "\ud800.onnx"], ids=["nul", "nul-bytes", "surrogate"])
def test_a_path_the_system_cannot_open_is_no_such_file(path: object) -> None:
    with pytest.raises(ModelError, match="no such file"):
        profile_model(path)  # type: ignore[arg-type]


def test_a_file_that_changes_while_read_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(_nonzero_of_weight(4), tmp_path / "m.onnx")
    real_fstat = os.fstat
    shorter = lambda fd: os.stat_result((*real_fstat(fd)[:6], real_fstat(fd).st_size - 1, *real_fstat(fd)[7:]))  # noqa: E731
    monkeypatch.setattr(engine_loader.os, "fstat", shorter)  # (the size read before the bytes: one short)
    assert engine_loader.read_small_file(path) is None
    monkeypatch.undo()
    assert engine_loader.read_small_file(path) == path.read_bytes()


def test_a_file_descriptor_is_no_path(tmp_path: Path) -> None:
    descriptor = os.open(_save(_nonzero_of_weight(4), tmp_path / "m.onnx"), os.O_RDONLY)
    try:
        with pytest.raises(TypeError):  # (as before: not read, and not closed under the caller)
            profile_model(descriptor, name="m")  # type: ignore[arg-type]
        os.fstat(descriptor)
    finally:
        os.close(descriptor)
