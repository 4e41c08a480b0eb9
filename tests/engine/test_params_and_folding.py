"""Parameters (each stored constant once, by dtype) and the BatchNorm folding rules."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.errors import ModelError
from pytest_maccbudget.engine.results import COSTED, FOLDED
from pytest_maccbudget.engine.tables import read_nodes

F32 = TensorProto.FLOAT
rng = np.random.default_rng(0)


def _init(name: str, *shape: int, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.standard_normal(shape).astype(dtype), name)


def _bn_inits(prefix: str, channels: int) -> list[onnx.TensorProto]:
    return [_init(f"{prefix}_{k}", channels) for k in ("scale", "bias", "mean")] + [
        numpy_helper.from_array(np.ones(channels, np.float32), f"{prefix}_var")]


def _bn(prefix: str, x: str, y: str) -> onnx.NodeProto:
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in ("scale", "bias", "mean", "var")], [y], name=prefix)


def _model(nodes: Sequence[onnx.NodeProto], inits: Sequence[onnx.TensorProto], x_shape: list[int], outputs: Sequence[str]) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", [helper.make_tensor_value_info("x", F32, x_shape)],
                              [helper.make_tensor_value_info(o, F32, None) for o in outputs], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# ---- parameters -------------------------------------------------------------------------------

def test_shared_weight_counts_once_and_shape_targets_are_not_parameters() -> None:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"], name="fc1"),
             helper.make_node("MatMul", ["a", "W"], ["b"], name="fc2"),
             helper.make_node("Reshape", ["b", "target"], ["c"], name="flat")]
    inits = [_init("W", 16, 16), numpy_helper.from_array(np.array([1, -1], np.int64), "target")]
    profile = profile_model(_model(nodes, inits, [1, 16], ["c"]))
    assert profile.layer("fc1").params == 16 * 16
    assert profile.layer("fc2").params == 0  # the same tensor, already counted
    assert profile.totals.params == 256
    assert profile.totals.param_bytes == 256 * 4


def test_parameter_bytes_follow_the_dtype() -> None:
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16, name="cast"),
             helper.make_node("MatMul", ["h", "W16"], ["y"], name="fc")]
    profile = profile_model(_model(nodes, [_init("W16", 8, 4, dtype=np.float16)], [2, 8], ["y"]))
    assert (profile.totals.params, profile.totals.param_bytes) == (32, 32 * 2)


def test_constant_of_shape_and_constant_nodes_are_parameters() -> None:
    # the zoo graphs make every weight with ConstantOfShape(shape initializer)
    shape = numpy_helper.from_array(np.array([8, 5], np.int64), "w_shape")
    value = helper.make_tensor("v", F32, [1], [0.5])
    bias = helper.make_tensor("b", F32, [5], [0.1] * 5)
    nodes = [helper.make_node("ConstantOfShape", ["w_shape"], ["W"], value=value, name="make_w"),
             helper.make_node("Constant", [], ["B"], value=bias, name="make_b"),
             helper.make_node("MatMul", ["x", "W"], ["y0"], name="fc"),
             helper.make_node("Add", ["y0", "B"], ["y"], name="bias")]
    profile = profile_model(_model(nodes, [shape], [1, 8], ["y"]))
    assert profile.layer("fc").params == 8 * 5
    assert profile.layer("bias").params == 5
    assert profile.totals.params == 45  # the int64 shape [8, 5] is not a parameter
    assert profile.layer("make_w").status == "constant"


def test_weights_routed_through_constant_ops_count_at_their_source() -> None:
    # dynamo's LSTM export: W -> Slice -> Concat -> Unsqueeze -> consumer
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([4], np.int64), "ends")
    nodes = [helper.make_node("Slice", ["W", "starts", "ends"], ["w_top"]),
             helper.make_node("Concat", ["w_top", "w_top"], ["w2"], axis=0),
             helper.make_node("MatMul", ["x", "w2"], ["y"], name="fc")]
    profile = profile_model(_model(nodes, [_init("W", 6, 3), starts, ends], [1, 8], ["y"]))
    assert profile.layer("fc").params == 6 * 3
    assert profile.totals.params == 18
    assert profile.layer("fc").macs == 8 * 3



def _weight_from_a_computed_shape(side: int) -> onnx.ModelProto:
    """y = x @ W, W = ConstantOfShape(Max([side, side], [1, 1])): onnx's inference does not
    propagate Max, so W's shape is not in the file, and y's shape is declared."""
    shapes = [numpy_helper.from_array(np.array([side, side], np.int64), "big"),
              numpy_helper.from_array(np.array([1, 1], np.int64), "small")]
    nodes = [helper.make_node("Max", ["big", "small"], ["w_shape"], name="shape"),
             helper.make_node("ConstantOfShape", ["w_shape"], ["W"], value=helper.make_tensor("v", F32, [1], [0.5]),
                              name="make_w"),
             helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")]
    model = _model(nodes, shapes, [1, side], [])
    model.graph.output.append(helper.make_tensor_value_info("y", F32, [1, side]))
    return model


def test_a_weight_whose_shape_onnx_does_not_infer_is_still_counted() -> None:
    # 8 x 8 = 64 elements (small enough to compute) and 1024 x 1024 (only its shape is worked
    # out); both were 0 params and an unknown bytes_read when y's shape was declared
    for side in (8, 1024):
        layer = profile_model(_weight_from_a_computed_shape(side)).layer("fc")
        assert (layer.params, layer.param_bytes) == (side * side, side * side * 4)
        assert layer.bytes_read == side * 4 + side * side * 4  # x and W



def test_a_weight_whose_size_cannot_be_worked_out_is_named_in_a_note() -> None:
    # W's shape comes from an op of a custom domain, which the engine cannot evaluate: W is not
    # counted, and the profile says so rather than giving a silent 0
    model = _weight_from_a_computed_shape(8)
    model.graph.node[0].CopyFrom(helper.make_node("Mystery", ["big"], ["w_shape"], name="shape", domain="custom.dom"))
    model.opset_import.append(helper.make_opsetid("custom.dom", 1))
    profile = profile_model(model)
    assert profile.layer("fc").params == 0 and profile.layer("fc").bytes_read is None
    assert ("params incomplete: 1 stored tensor(s) that layers read have no known size and are not counted, "
            "e.g. 'W'") in profile.notes
    assert not any(note.startswith("params") for note in profile_model(_weight_from_a_computed_shape(8)).notes)



def test_the_note_on_unsized_weights_names_the_same_one_every_run() -> None:
    # two weights whose shapes come from a custom op, joined by a Concat the MatMul reads: a set,
    # whose order varies from run to run; the note names the first found, the sources in order of name
    nodes = [helper.make_node("Mystery", ["big"], ["b_shape"], name="b_shape", domain="custom.dom"),
             helper.make_node("ConstantOfShape", ["b_shape"], ["Wb"], name="make_b"),
             helper.make_node("Mystery", ["big"], ["a_shape"], name="a_shape", domain="custom.dom"),
             helper.make_node("ConstantOfShape", ["a_shape"], ["Wa"], name="make_a"),
             helper.make_node("Concat", ["Wb", "Wa"], ["W"], name="join", axis=0),
             helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1, 8])],
                              [helper.make_tensor_value_info("y", F32, None)],
                              [numpy_helper.from_array(np.array([4, 8], np.int64), "big")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.dom", 1)])
    assert ("params incomplete: 2 stored tensor(s) that layers read have no known size and are not counted, "
            "e.g. 'Wa'") in profile_model(model).notes


def test_a_weight_a_layer_reads_only_the_dims_of_is_no_parameter() -> None:
    # y = k + Shape(W) and y = k + Shape(NonZero(W)): the Add reads W's dims (or its nonzero
    # count), never its data; before, it (or the Shape) counted W's 12 elements
    weight = numpy_helper.from_array(np.array([[1, 0, 2, 0], [0, 3, 0, 4], [5, 0, 0, 0]], np.float32), "W")
    for dims_of in ([helper.make_node("Shape", ["W"], ["s"], name="shape")],
                    [helper.make_node("NonZero", ["W"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["s"], name="shape")]):
        graph = helper.make_graph([*dims_of, helper.make_node("Add", ["k", "s"], ["y"], name="add")], "g",
                                  [helper.make_tensor_value_info("k", TensorProto.INT64, [2])],
                                  [helper.make_tensor_value_info("y", TensorProto.INT64, [2])], [weight])
        profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
        assert (profile.layer("add").flops, profile.totals.params) == (2, 0)


def _int_constant(name: str, value: object) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.array(value, np.int64)))


def _range_of_x_dim(dim: int, out: str) -> list[onnx.NodeProto]:
    """out = Range(0, x.shape[dim], 1) from Constant nodes: a length onnx's Range inference does not propagate."""
    return [_int_constant(f"{out}_start", 0), _int_constant(f"{out}_step", 1), _int_constant(f"{out}_dim", dim),
            helper.make_node("Shape", ["x"], [f"{out}_shape"], name=f"{out}_shape"),
            helper.make_node("Gather", [f"{out}_shape", f"{out}_dim"], [f"{out}_length"], name=f"{out}_length", axis=0),
            helper.make_node("Range", [f"{out}_start", f"{out}_length", f"{out}_step"], [out], name=out)]


def test_a_layer_reading_a_constant_onnx_leaves_unsized_reads_its_worked_out_bytes() -> None:
    # a GPT-style position embedding: pe = Gather(wpe [16, 64], Unsqueeze(Range(0, seq, 1))) with
    # seq read from the input's shape. pe is [1, 4, 64] floats (1,024 B), as is x: the Add reads
    # 2,048 B (it read "unknown" before, and the total left it out, so 0; a device estimate of
    # the model was unknown)
    nodes = [*_range_of_x_dim(1, "positions"), _int_constant("axes", [0]),
             helper.make_node("Unsqueeze", ["positions", "axes"], ["ids"], name="ids"),
             helper.make_node("Gather", ["wpe", "ids"], ["pe"], name="pe"),
             helper.make_node("Add", ["x", "pe"], ["y"], name="add")]
    profile = profile_model(_model(nodes, [_init("wpe", 16, 64)], [1, 4, 64], ["y"]))
    add = profile.layer("add")
    assert (add.flops, add.params, add.bytes_read, add.bytes_written) == (4 * 64, 16 * 64, 1024 + 1024, 1024)
    assert profile.totals.bytes_read == 2048 and profile.notes == ()


def test_a_rule_that_needs_the_shape_of_a_constant_onnx_leaves_unsized_gets_it() -> None:
    # a 1x1 conv whose filters are rows of a bank picked by Range(0, width of x): W = [5, 2, 1, 1],
    # a shape onnx's inference does not propagate; y declared [1, 5, 5, 5]. The rule needs W's
    # dims: 5 x 5 x 5 outputs x 2 MACs = 250 (it was unresolved), and it reads x and W: 200 + 40 B
    nodes = [*_range_of_x_dim(3, "picks"), _int_constant("last_axes", [2, 3]),
             helper.make_node("Gather", ["bank", "picks"], ["rows"], name="rows"),
             helper.make_node("Unsqueeze", ["rows", "last_axes"], ["w"], name="w"),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    model = _model(nodes, [_init("bank", 16, 2)], [1, 2, 5, 5], [])
    model.graph.output.append(helper.make_tensor_value_info("y", F32, [1, 5, 5, 5]))
    conv = profile_model(model).layer("conv")
    assert (conv.status, conv.macs, conv.params, conv.bytes_read) == ("costed", 5 * 5 * 5 * 2, 16 * 2, 200 + 40)


def test_a_constant_with_dims_no_tensor_has_is_an_error_naming_its_node() -> None:
    # Pad(W, pads = Max(...) = [0, 0, -400, 0]) of a 300 x 300 weight would be [-100, 300]: the
    # graph cannot run. Its Shape asks for its dims, and the error names the node (the tree
    # before this check profiled the graph, counting W's 90,000 elements at the Shape)
    inits = [numpy_helper.from_array(np.zeros((300, 300), np.float32), "W"),
             numpy_helper.from_array(np.array([0, 0, -400, 0], np.int64), "p1"),
             numpy_helper.from_array(np.array([0, 0, -400, 0], np.int64), "p2")]
    nodes = [helper.make_node("Max", ["p1", "p2"], ["pads"], name="pads"),
             helper.make_node("Pad", ["W", "pads"], ["P"], name="pad"),
             helper.make_node("Shape", ["P"], ["s"], name="shape"),
             helper.make_node("Add", ["x", "x"], ["y"], name="add")]
    with pytest.raises(ModelError, match=r"node 'pad' \(Pad\): its output 'P' would have the dims \[-100, 300\]"):
        profile_model(_model(nodes, inits, [1, 4], ["y"]))
    # the same when a layer reads it as data (its bytes) or as a weight (a rule needs its dims):
    # p = MaxPool(ones [1, 1, 3], kernel 5) = [1, 1, -1], a shape onnx leaves unknown (Max)
    inits = [numpy_helper.from_array(np.array([1, 1, 3], np.int64), "a"), numpy_helper.from_array(np.array([1, 1, 2], np.int64), "b")]
    for reader in ("Add", "Conv"):
        nodes = [helper.make_node("Max", ["a", "b"], ["dims"], name="dims"),
                 helper.make_node("ConstantOfShape", ["dims"], ["ones"], name="ones",
                                  value=numpy_helper.from_array(np.array([1], np.float32))),
                 helper.make_node("MaxPool", ["ones"], ["p"], name="p", kernel_shape=[5]),
                 helper.make_node(reader, ["x", "p"], ["y"], name="reader")]
        model = _model(nodes, inits, [1, 1, 3], [])
        model.graph.output.append(helper.make_tensor_value_info("y", F32, [1, 1, 3 if reader == "Add" else 1]))
        with pytest.raises(ModelError, match=r"node 'p' \(MaxPool\): its output 'p' would have the dims \[1, 1, -1\]"):
            profile_model(model)


# ---- folding ---------------------------------------------------------------------------------

def _conv_inits(cin: int = 3, cout: int = 4) -> list[onnx.TensorProto]:
    return [_init("w", cout, cin, 3, 3)]


def test_bn_after_conv_is_folded_and_free() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]), _bn("bn1", "c", "y")]
    profile = profile_model(_model(nodes, _conv_inits() + _bn_inits("bn1", 4), [1, 3, 8, 8], ["y"]))
    bn = profile.layer("bn1")
    assert (bn.status, bn.macs, bn.flops, bn.note) == (FOLDED, 0, 0, "folded into conv1")
    assert bn.params == 4 * 4  # scale, bias, mean, var still stored in the graph
    assert profile.totals.macs == 3 * 3 * 3 * 8 * 8 * 4


def test_bn_after_relu_is_not_folded() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), _bn("bn1", "r", "y")]
    profile = profile_model(_model(nodes, _conv_inits() + _bn_inits("bn1", 4), [1, 3, 8, 8], ["y"]))
    bn = profile.layer("bn1")
    assert (bn.status, bn.flops) == (COSTED, 2 * 4 * 8 * 8)


def test_bn_folds_forward_into_a_following_conv() -> None:
    nodes = [_bn("bn0", "x", "n"), helper.make_node("Conv", ["n", "w"], ["y"], name="conv1")]
    profile = profile_model(_model(nodes, _conv_inits() + _bn_inits("bn0", 3), [1, 3, 8, 8], ["y"]))
    assert profile.layer("bn0").note == "folded into conv1"


def test_second_reader_of_the_conv_output_prevents_folding() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1"), _bn("bn1", "c", "y"),
             helper.make_node("Relu", ["c"], ["side"], name="side")]
    profile = profile_model(_model(nodes, _conv_inits() + _bn_inits("bn1", 4), [1, 3, 8, 8], ["y", "side"]))
    assert profile.layer("bn1").status == COSTED


def test_mul_add_pair_after_gemm_folds_like_a_bn() -> None:
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc", transB=1),
             helper.make_node("Mul", ["g", "s"], ["m"], name="scale"),
             helper.make_node("Add", ["m", "t"], ["y"], name="shift")]
    inits = [_init("w", 6, 10), _init("b", 6), _init("s", 6), _init("t", 6)]
    profile = profile_model(_model(nodes, inits, [2, 10], ["y"]))
    assert [profile.layer(n).status for n in ("scale", "shift")] == [FOLDED, FOLDED]
    assert profile.totals.macs == 2 * 10 * 6
    # Gemm FLOPs: (2*10 - 1) * 12 outputs + 12 bias adds
    assert profile.totals.flops == 19 * 12 + 12


def test_mul_add_after_relu_is_two_elementwise_ops() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "s"], ["m"], name="scale"),
             helper.make_node("Add", ["m", "t"], ["y"], name="shift")]
    profile = profile_model(_model(nodes, [_init("s", 3, 1, 1), _init("t", 3, 1, 1)], [1, 3, 4, 4], ["y"]))
    assert [profile.layer(n).flops for n in ("scale", "shift")] == [48, 48]


def test_the_only_reader_of_a_tensor_is_the_one_node_reading_it_however_many_times() -> None:
    def table(*nodes: onnx.NodeProto):
        return read_nodes(helper.make_graph(list(nodes), "g", [], []), ["x"])

    squared = table(helper.make_node("Mul", ["x", "x"], ["y"]))
    assert squared.only_reader("x") == 0 and squared.is_read("x")
    assert squared.only_reader("y") is None and not squared.is_read("y")
    twice = table(helper.make_node("Mul", ["x", "x"], ["y"]), helper.make_node("Relu", ["x"], ["z"]))
    assert twice.only_reader("x") is None
    later = table(helper.make_node("Relu", ["w"], ["v"]), helper.make_node("Add", ["x", "v"], ["y"]))
    assert later.only_reader("x") == 1 and later.only_reader("v") == 1
