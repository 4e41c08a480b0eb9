"""Input shapes (symbolic dims, overrides), unknown ops and malformed graphs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.errors import ModelError
from pytest_maccbudget.engine.results import UNKNOWN, UNRESOLVED

F32 = TensorProto.FLOAT


def _fc_model(x_dims: list) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((16, 4), np.float32) * 0.5, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", F32, x_dims)], [helper.make_tensor_value_info("y", F32, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_symbolic_batch_counts_as_one_and_says_so() -> None:
    profile = profile_model(_fc_model(["N", 16]))
    assert profile.totals.macs == 16 * 4
    assert profile.inputs == {"x": (1, 16)}
    assert any("'N'" in note and "taken as 1" in note for note in profile.notes)


def test_batch_and_input_overrides() -> None:
    assert profile_model(_fc_model(["N", 16]), batch=8).totals.macs == 8 * 16 * 4
    assert profile_model(_fc_model(["N", 16]), {"x": [3, 16]}).totals.macs == 3 * 16 * 4
    assert profile_model(_fc_model(["N", 16]), {"N": 5}).totals.macs == 5 * 16 * 4
    assert profile_model(_fc_model(["N", 16]), {"x": [3, 16]}).notes == ()


def test_wrong_input_name_or_rank_is_an_error() -> None:
    with pytest.raises(ModelError, match="no model input or symbolic dim named .images.; inputs are x; symbolic dims are N"):
        profile_model(_fc_model(["N", 16]), {"images": [1, 16]})
    with pytest.raises(ModelError, match="input 'x' has rank 2"):
        profile_model(_fc_model(["N", 16]), {"x": [1, 3, 16]})


def test_unresolved_dimension_is_named_by_layer_never_guessed() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "g",
                              [helper.make_tensor_value_info("x", F32, [2, "seq"])], [helper.make_tensor_value_info("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    act = profile.layer("act")
    assert (act.status, act.macs, act.flops) == (UNRESOLVED, None, None)
    assert [u.name for u in profile.unknown] == ["act"]
    assert "'x'" in profile.unknown[0].reason
    assert profile.partial


def test_unknown_op_is_listed_and_the_rest_still_counted() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("Mystery", ["r"], ["y"], name="magic", domain="acme.ops")], "g",
        [helper.make_tensor_value_info("x", F32, [1, 10])], [helper.make_tensor_value_info("y", F32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme.ops", 1)])
    profile = profile_model(model)
    assert profile.layer("relu").flops == 10
    magic = profile.layer("magic")
    assert (magic.status, magic.macs, magic.flops) == (UNKNOWN, None, None)
    assert [(u.op_type, u.domain, u.name) for u in profile.unknown] == [("Mystery", "acme.ops", "magic")]
    assert profile.coverage == 0.5
    assert profile.to_dict()["partial"] is True


def test_undeclared_domain_is_an_error() -> None:
    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], name="magic", domain="acme.ops")], "g",
                              [helper.make_tensor_value_info("x", F32, [1, 10])], [helper.make_tensor_value_info("y", F32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="node 'magic' uses op 'Mystery' from domain 'acme.ops'"):
        profile_model(model)


def test_cycle_is_an_error() -> None:
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["a"], name="first"),
                               helper.make_node("Relu", ["a"], ["b"], name="second")], "g",
                              [helper.make_tensor_value_info("x", F32, [1, 10])], [helper.make_tensor_value_info("a", F32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="cycle"):
        profile_model(model)


def test_opset_newer_than_installed_onnx_is_an_error() -> None:
    model = _fc_model([1, 16])
    model.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    with pytest.raises(ModelError, match="newer than the installed onnx"):
        profile_model(model)


def test_ir3_graph_lists_weights_as_inputs() -> None:
    model = _fc_model([1, 16])
    model.graph.input.append(helper.make_tensor_value_info("w", F32, [16, 4]))
    model.ir_version = 3
    model.opset_import[0].version = 9
    profile = profile_model(model)
    assert profile.inputs == {"x": (1, 16)}
    assert profile.totals.params == 64


def test_local_function_is_inlined_and_counted() -> None:
    body = [helper.make_node("MatMul", ["a", "b"], ["c"]), helper.make_node("Relu", ["c"], ["out"])]
    function = helper.make_function("local", "Dense", ["a", "b"], ["out"], body, [helper.make_opsetid("", 17)])
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Dense", ["x", "w"], ["y"], name="dense", domain="local")], "g",
                              [helper.make_tensor_value_info("x", F32, [2, 16])], [helper.make_tensor_value_info("y", F32, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)], functions=[function])
    profile = profile_model(model)
    assert profile.totals.macs == 2 * 16 * 4
    assert profile.totals.flops == (2 * 16 - 1) * 2 * 4 + 2 * 4
    assert not profile.partial


def test_loop_with_constant_trip_count_multiplies_its_body() -> None:
    body = helper.make_graph(
        [helper.make_node("MatMul", ["state", "w"], ["next"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state", F32, [1, 16])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("next", F32, [1, 16])])
    inits = [numpy_helper.from_array(np.ones((16, 16), np.float32), "w"), numpy_helper.from_array(np.array(5, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "cond")]
    graph = helper.make_graph([helper.make_node("Loop", ["trips", "cond", "x"], ["y"], name="loop", body=body)], "g",
                              [helper.make_tensor_value_info("x", F32, [1, 16])], [helper.make_tensor_value_info("y", F32, None)], inits)
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    loop = profile.layer("loop")
    assert loop.macs == 5 * 16 * 16
    assert loop.note == "body x 5 iterations"


def test_if_counts_the_larger_branch() -> None:
    def branch(name: str, k: int) -> onnx.GraphProto:
        w = numpy_helper.from_array(np.ones((16, k), np.float32), f"{name}_w")
        return helper.make_graph([helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])], name, [],
                                 [helper.make_tensor_value_info(f"{name}_y", F32, [1, k])], [w])
    graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], name="branchy", then_branch=branch("small", 2), else_branch=branch("big", 8))], "g",
                              [helper.make_tensor_value_info("x", F32, [1, 16]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    layer = profile.layer("branchy")
    assert layer.macs == 16 * 8
    assert layer.note == "larger branch (else_branch)"
    assert layer.params == 16 * 2 + 16 * 8


def test_scan_multiplies_its_body_by_the_scan_length() -> None:
    # body: state [1, 8] + row [1, 8] @ w [8, 8]; scanned over 6 rows of x [6, 1, 8]
    body = helper.make_graph(
        [helper.make_node("MatMul", ["row", "w"], ["proj"]), helper.make_node("Add", ["state", "proj"], ["next"]),
         helper.make_node("Identity", ["next"], ["out_row"])],
        "body",
        [helper.make_tensor_value_info("state", F32, [1, 8]), helper.make_tensor_value_info("row", F32, [1, 8])],
        [helper.make_tensor_value_info("next", F32, [1, 8]), helper.make_tensor_value_info("out_row", F32, [1, 8])])
    inits = [numpy_helper.from_array(np.ones((8, 8), np.float32), "w")]
    graph = helper.make_graph([helper.make_node("Scan", ["init", "x"], ["final", "rows"], name="scan", body=body, num_scan_inputs=1)], "g",
                              [helper.make_tensor_value_info("init", F32, [1, 8]), helper.make_tensor_value_info("x", F32, [6, 1, 8])],
                              [helper.make_tensor_value_info("final", F32, None), helper.make_tensor_value_info("rows", F32, None)], inits)
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    scan = profile.layer("scan")
    assert scan.macs == 6 * 8 * 8
    # per step: MatMul (2*8 - 1) * 8 + Add 8
    assert scan.flops == 6 * ((2 * 8 - 1) * 8 + 8)
    assert scan.note == "body x 6 iterations"


def test_loop_without_a_constant_trip_count_is_unresolved() -> None:
    body = helper.make_graph(
        [helper.make_node("Relu", ["state"], ["next"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state", F32, [1, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("next", F32, [1, 4])])
    graph = helper.make_graph([helper.make_node("Loop", ["n", "c", "x"], ["y"], name="loop", body=body)], "g",
                              [helper.make_tensor_value_info("n", TensorProto.INT64, []), helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                               helper.make_tensor_value_info("x", F32, [1, 4])], [helper.make_tensor_value_info("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    loop = profile.layer("loop")
    assert (loop.status, loop.macs) == ("unresolved", None)
    assert "'n'" in loop.note


def test_mistyped_symbol_name_is_an_error() -> None:
    with pytest.raises(ModelError, match="no model input or symbolic dim named 'batchsize'"):
        profile_model(_fc_model(["N", 16]), {"batchsize": 4})


def test_unresolved_op_is_marked_unresolved_in_the_unknown_list() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "g",
                              [helper.make_tensor_value_info("x", F32, [2, "seq"])], [helper.make_tensor_value_info("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [u.status for u in profile.unknown] == [UNRESOLVED]
    assert profile.to_dict()["unknown"][0]["status"] == "unresolved"


def test_declared_output_shapes_do_not_survive_an_input_override() -> None:
    # the file declares y as [1, 4] (exported at batch 1); at batch 3 the MatMul makes [3, 4]
    model = _fc_model([1, 16])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", F32, [1, 4]))
    model.graph.value_info.append(helper.make_tensor_value_info("y", F32, [1, 4]))
    profile = profile_model(model, {"x": [3, 16]})
    assert profile.layer("fc").output_bytes == 3 * 4 * 4
    assert profile.totals.flops == (2 * 16 - 1) * 3 * 4


def test_batch_sets_a_fixed_leading_dim_too() -> None:
    assert profile_model(_fc_model([1, 16]), batch=4).totals.macs == 4 * 16 * 4


def test_hard_coded_reshape_target_makes_the_rest_unresolved() -> None:
    # Reshape to [1, 16] is right at batch 1; at batch 2 it would drop half the elements
    target = numpy_helper.from_array(np.array([1, 16], np.int64), "target")
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="act"), helper.make_node("Reshape", ["r", "target"], ["flat"], name="flatten"),
         helper.make_node("MatMul", ["flat", "w"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", F32, [1, 4, 2, 2])], [helper.make_tensor_value_info("y", F32, None)], [target, w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert not profile_model(model).partial
    profile = profile_model(model, batch=2)
    assert profile.layer("act").flops == 2 * 16
    assert profile.layer("fc").status == UNRESOLVED
    assert any("Reshape 'flatten' maps 32 elements [2, 4, 2, 2] to 16 [1, 16]" in note for note in profile.notes)


def test_shape_arithmetic_onnx_cannot_propagate_is_computed() -> None:
    # TorchScript's MultiheadAttention export: Reshape(h, Concat(Slice(Shape(h), 0, Reshape(Mod(c, c), [1])), [4, 8]))
    # with Constant nodes; onnx's data propagation stops at the Reshape of the Mod, so without
    # computing it the Relu's shape (and the peak memory) would be unknown
    def constant(name: str, values: list, shape: list) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], name=f"make_{name}", value=helper.make_tensor(name, TensorProto.INT64, shape, values))
    nodes = [
        constant("zero", [0], [1]), constant("seven", [7], []), constant("five", [5], []), constant("one", [1], [1]),
        constant("heads", [4, 8], [2]),
        helper.make_node("Relu", ["x"], ["h"], name="pre"),
        helper.make_node("Shape", ["h"], ["shape"], name="shape"),
        helper.make_node("Mod", ["seven", "five"], ["end_scalar"], name="mod"),
        helper.make_node("Reshape", ["end_scalar", "one"], ["end"], name="as_list"),
        helper.make_node("Slice", ["shape", "zero", "end"], ["lead"], name="slice"),
        helper.make_node("Concat", ["lead", "heads"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["h", "target"], ["split"], name="split_heads"),
        helper.make_node("Relu", ["split"], ["y"], name="act"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1, 16, 32])],
                              [helper.make_tensor_value_info("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert not profile.partial, profile.unknown
    assert profile.layer("act").flops == 1 * 16 * 4 * 8
    assert profile.layer("act").output_bytes == 16 * 4 * 8 * 4
    # x, h and y are 2 KB each, split aliases h: at most two live at a time
    assert profile.totals.peak_activation_bytes == 2 * 2048


def test_input_shapes_given_as_a_list_apply_in_order() -> None:
    assert profile_model(_fc_model(["N", 16]), [[6, 16]]).totals.macs == 6 * 16 * 4
    with pytest.raises(ModelError, match=r"2 input shape\(s\) given for 1 model input\(s\) \(x\)"):
        profile_model(_fc_model(["N", 16]), [[6, 16], [1, 2]])


def test_batch_leaves_rank_one_inputs_and_other_fixed_leading_dims_alone() -> None:
    # y = (x * s) @ w with x [N, 16], s [16]: --batch 4 makes x [4, 16] and leaves s [16]
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["m"], name="scale"), helper.make_node("MatMul", ["m", "w"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", F32, ["N", 16]), helper.make_tensor_value_info("s", F32, [16])],
        [helper.make_tensor_value_info("y", F32, None)], [w])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), batch=4)
    assert profile.inputs == {"x": (4, 16), "s": (16,)}
    assert profile.totals.macs == 4 * 16 * 4


def test_a_cost_rule_that_fails_makes_an_unknown_layer_not_a_crash() -> None:
    from pytest_maccbudget.engine.registry import REGISTRY

    registry = REGISTRY.copy()

    @registry.register("Broken", domain="acme")
    def broken(node):  # a rule meeting a malformed node
        return 1 // 0

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="act"), helper.make_node("Broken", ["r"], ["y"], name="odd", domain="acme")], "g",
        [helper.make_tensor_value_info("x", F32, [1, 10])], [helper.make_tensor_value_info("y", F32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
    profile = profile_model(model, registry=registry)
    assert profile.layer("act").flops == 10
    assert profile.layer("odd").macs is None
    assert profile.unknown[0].reason == "cost rule failed: ZeroDivisionError: integer division or modulo by zero"


# ---- --batch: the batch dim by its name, wherever it sits ------------------------------------

def _lstm_model(x_dims: list) -> onnx.ModelProto:
    """A sequence-first LSTM: X [seq, batch, 10], hidden 20."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((1, 80, 10)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 80, 20)).astype(np.float32), "R")]
    graph = helper.make_graph([helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=20)], "g",
                              [helper.make_tensor_value_info("x", F32, x_dims)], [helper.make_tensor_value_info("y", F32, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


LSTM_MACS_PER_ROW = 4 * (10 + 20) * 20  # per time step and batch row


def test_batch_finds_a_batch_dim_by_its_name_wherever_it_sits() -> None:
    profile = profile_model(_lstm_model([5, "batch", 10]), batch=4)
    assert profile.inputs == {"x": (5, 4, 10)}
    assert profile.totals.macs == 5 * 4 * LSTM_MACS_PER_ROW
    assert "--batch 4 set dim 1 ('batch') of input 'x' [5, batch, 10]" in profile.notes


def test_a_named_batch_dim_with_no_value_is_one_and_says_which() -> None:
    profile = profile_model(_lstm_model([5, "B", 10]))
    assert profile.inputs == {"x": (5, 1, 10)}
    assert any("'B' (dim 1) of input 'x' taken as 1" in note for note in profile.notes)


def test_batch_says_why_it_set_nothing() -> None:
    # exported at batch 1 with every dim fixed, sequence first: the leading dim is the sequence
    profile = profile_model(_lstm_model([5, 1, 10]), batch=4)
    assert profile.totals.macs == 5 * 1 * LSTM_MACS_PER_ROW
    assert any(note.startswith("--batch 4 left input 'x' [5, 1, 10] as it is") and "fixed at 5" in note
               for note in profile.notes)


def test_batch_names_the_dim_it_set_on_a_leading_symbolic_dim() -> None:
    profile = profile_model(_fc_model(["N", 16]), batch=3)
    assert profile.notes == ("--batch 3 set dim 0 ('N') of input 'x' [N, 16]",)


def test_a_declared_zero_dim_is_named_in_the_note() -> None:
    profile = profile_model(_fc_model([0, 16]))
    assert profile.totals.macs == 16 * 4
    assert any("input 'x' declares dim 0 as 0" in note and "taken as 1" in note for note in profile.notes)
    assert profile_model(_fc_model([0, 16]), batch=2).notes == ("--batch 2 set dim 0 (declared 0) of input 'x' [0, 16]",)


def _reshape_model(x_dims: list, target: list) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Reshape", ["r", "target"], ["heads"], name="/encoder/attention/Reshape"),
             helper.make_node("Relu", ["heads"], ["y"], name="after")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, x_dims)],
                              [helper.make_tensor_value_info("y", F32, None)],
                              [numpy_helper.from_array(np.array(target, np.int64), "target")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_hard_coded_batch_reshape_is_named_with_its_constant_shape() -> None:
    # exported at batch 4 with [4, -1, 8]: at batch 1, 1 x 6 x 4 = 24 elements do not split into 4 x ? x 8
    model = _reshape_model(["batch", 6, 4], [4, -1, 8])
    assert not profile_model(model, batch=4).partial
    profile = profile_model(model, batch=1)
    assert profile.layer("act").flops == 24
    assert profile.layer("after").status == UNRESOLVED
    assert any("Reshape '/encoder/attention/Reshape' cannot map 24 elements [1, 6, 4] to its constant shape "
               "[4, -1, 8]" in note and "hard-coded" in note for note in profile.notes)


def test_a_hard_coded_batch_reshape_without_a_free_dim_says_what_it_maps() -> None:
    profile = profile_model(_reshape_model(["batch", 6, 4], [1, 6, 2, 2]), batch=2)
    assert profile.layer("after").status == UNRESOLVED
    assert any("maps 48 elements [2, 6, 4] to 24 [1, 6, 2, 2]: its constant shape [1, 6, 2, 2] is hard-coded" in note
               for note in profile.notes)


def test_a_declared_zero_dim_that_is_not_the_batch_is_named_in_a_note() -> None:
    # [10, 0, 10]: the leading dim is fixed, so no dim is read as the batch; the 0 in dim 1 is what
    # the file says, an empty batch (0 rows x 10 steps: 0 MACs), no longer silently
    for batch in (None, 4):
        profile = profile_model(_lstm_model([10, 0, 10]), batch=batch)
        assert profile.totals.macs == 0 and not profile.partial and profile.inputs == {"x": (10, 0, 10)}
        assert any(note.startswith("input 'x' declares dim 1 as 0 where no batch dim is read") and "--input" in note
                   for note in profile.notes)


def test_batch_does_not_take_a_sequence_dim_when_another_dim_has_no_size() -> None:
    # [seq, 0, 10], sequence first: dim 0 is named like a sequence and dim 1 has no size, so dim 1 is
    # the batch (it was dim 0, leaving a batch of 0); seq has no value, so the LSTM is unresolved
    profile = profile_model(_lstm_model(["seq", 0, 10]), batch=4)
    assert profile.notes[0] == ("--batch 4 set dim 1 (declared 0) of input 'x' [seq, 0, 10]: dim 0 ('seq') is "
                                "named like a sequence and dim 1 has no size")
    assert profile.partial and profile.layer("lstm").macs is None
    # given the sequence length: 7 steps x 4 rows
    profile = profile_model(_lstm_model(["seq", 0, 10]), {"seq": 7}, batch=4)
    assert profile.inputs == {"x": (7, 4, 10)} and profile.totals.macs == 7 * 4 * LSTM_MACS_PER_ROW


def test_without_batch_the_same_dim_is_the_batch_taken_as_one() -> None:
    # [seq, 0, 10] with no --batch: dim 1 is the batch, as --batch would read it, and is taken as 1;
    # seq stays unknown (not a batch of 1 beside an empty dim 1 that would make the LSTM cost 0)
    profile = profile_model(_lstm_model(["seq", 0, 10]))
    assert any(note.startswith("input 'x' declares dim 1 as 0 (no size): read as a symbolic batch dimension, taken as 1")
               and "dim 0 ('seq') is named like a sequence" in note for note in profile.notes)
    assert not any("where no batch dim is read" in note for note in profile.notes)
    assert profile.partial and profile.layer("lstm").macs is None
    profile = profile_model(_lstm_model(["seq", 0, 10]), {"seq": 7})
    assert profile.inputs == {"x": (7, 1, 10)} and profile.totals.macs == 7 * 1 * LSTM_MACS_PER_ROW
    # the note names the dims as the file declares them, also once seq has its value
    assert any("dim 0 ('seq') is named like a sequence" in note for note in profile.notes)
    # a dim 1 that really is empty is given in full: nothing to count
    profile = profile_model(_lstm_model(["seq", 0, 10]), {"x": [7, 0, 10]})
    assert profile.inputs == {"x": (7, 0, 10)} and profile.totals.macs == 0 and not profile.partial


def test_a_dim_given_a_value_is_a_size_not_the_batch() -> None:
    # [seq, d, 16] x [16, 4] with d = 64 given: d is no dim without a size, so seq is the batch dim
    # (taken as 1 with no --batch): 64 x 16 x 4 MACs
    profile = profile_model(_fc_model(["seq", "d", 16]), {"d": 64})
    assert profile.inputs == {"x": (1, 64, 16)} and profile.totals.macs == 64 * 16 * 4
    # seq and d both given: --batch has no dim left to set, and says why; the given values hold
    profile = profile_model(_fc_model(["seq", "d", 16]), {"seq": 10, "d": 64}, batch=2)
    assert profile.inputs == {"x": (10, 64, 16)} and profile.totals.macs == 10 * 64 * 16 * 4
    assert profile.notes[0] == ("--batch 2 left input 'x' [seq, d, 16] as it is: no dim is named like a batch "
                                "(batch, N, batch_size...) and its leading dim 'seq' is given as 10")
    # a batch dim given a value keeps it too, and --batch says so
    profile = profile_model(_fc_model(["batch", 16]), {"batch": 3}, batch=2)
    assert profile.inputs == {"x": (3, 16)} and profile.totals.macs == 3 * 16 * 4
    assert profile.notes[0] == "--batch 2 left input 'x' [batch, 16] as it is: its batch dim 'batch' is given as 3"
    # without --batch, the sequence dim beside a given batch dim is not taken as 1: it stays unknown
    profile = profile_model(_fc_model(["seq", "batch", 16]), {"batch": 3})
    assert profile.partial and not any("taken as 1" in note for note in profile.notes)
    # sequence first means dim 1: a later dim with no size is not the batch ([seq, 3, 0]: seq is, taken as 1)
    profile = profile_model(_fc_model(["seq", 3, 0]))
    assert any("symbolic batch dimension 'seq' of input 'x' taken as 1" in note for note in profile.notes)
    # a symbolic dim with a name is not taken for the batch beside a sequence: [seq, rows, 16] keeps
    # rows unknown rather than counting it as 1
    profile = profile_model(_fc_model(["seq", "rows", 16]), {"seq": 10})
    assert profile.partial and profile.layer("fc").macs is None


def test_a_negative_dim_is_a_batch_where_the_batch_is_read_and_refused_elsewhere() -> None:
    profile = profile_model(_fc_model([-1, 16]))
    assert profile.totals.macs == 16 * 4
    assert any("declares dim 0 as -1" in note and "taken as 1" in note for note in profile.notes)
    with pytest.raises(ModelError, match="declares a negative dim"):
        profile_model(_lstm_model([10, -1, 10]))


def test_dims_given_where_the_file_fixes_other_sizes_are_taken_and_named() -> None:
    # [N, 16] given as [3, 8]: the 16 the file fixes becomes 8 (profiling at another size is allowed),
    # and a note names it, so a mistyped dim does not pass unnoticed
    model = _fc_model(["N", 16])
    profile = profile_model(model, {"x": [3, 16]})
    assert profile.notes == ()
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    model.graph.initializer[0].CopyFrom(w)
    profile = profile_model(model, {"x": [3, 8]})
    assert profile.totals.macs == 3 * 8 * 4
    assert profile.notes == ("input 'x' is profiled at [3, 8] as given, where the file fixes other sizes: dim 1 (16 -> 8)",)


def test_a_symbol_one_input_reads_as_its_sequence_is_not_the_batch_of_another() -> None:
    # 'seq' is one size in both inputs: input 'a' [seq, 0, 4] reads it as its sequence (dim 1 is the
    # batch), so [seq, 4] does not take it as a batch of 1 while 'a' leaves it unknown
    inputs = [helper.make_tensor_value_info("a", F32, ["seq", 0, 4]), helper.make_tensor_value_info("b", F32, ["seq", 4])]
    nodes = [helper.make_node("ReduceSum", ["a"], ["ra"], keepdims=0, name="sum"),
             helper.make_node("Relu", ["b"], ["o"], name="relu")]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("o", F32, None),
                                                   helper.make_tensor_value_info("ra", F32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    profile = profile_model(model)
    assert profile.inputs == {} and profile.layer("relu").flops is None
    assert ("dim 0 ('seq') of input 'b' [seq, 4] is not read as a batch dim: input 'a' reads 'seq' as its sequence "
            "dim; give it with --input seq=N") in profile.notes
    profile = profile_model(model, batch=2)
    assert profile.inputs == {} and profile.layer("relu").flops is None
    assert ("--batch 2 left input 'b' [seq, 4] as it is: no dim is named like a batch (batch, N, batch_size...) and "
            "its leading dim 'seq' is the sequence dim of input 'a'") in profile.notes
    # given, seq is one size everywhere: 5 x 2 x 4 elements summed, 5 x 4 ReLUs
    profile = profile_model(model, {"seq": 5}, batch=2)
    assert profile.inputs == {"a": (5, 2, 4), "b": (5, 4)} and profile.layer("relu").flops == 5 * 4


def _two_inputs(a_dims: list, b_dims: list) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("a", F32, a_dims), helper.make_tensor_value_info("b", F32, b_dims)]
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="relu_a"), helper.make_node("Relu", ["b"], ["z"], name="relu_b")]
    outputs = [helper.make_tensor_value_info(name, F32, None) for name in ("y", "z")]
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)])


def test_a_symbol_is_one_size_in_every_input_when_an_input_is_given_in_full() -> None:
    # a given as [5, 2, 4] makes seq 5: b [seq, 4] is 5 x 4, not a batch of 1 beside it
    profile = profile_model(_two_inputs(["seq", 0, 4], ["seq", 4]), {"a": [5, 2, 4]})
    assert profile.inputs == {"a": (5, 2, 4), "b": (5, 4)} and profile.layer("relu_b").flops == 5 * 4
    assert profile.notes == ("symbolic dim 'seq' of input 'b' is 5, as the dims given for input 'a' make it (a symbol "
                             "is one size in every input)",)
    with pytest.raises(ModelError, match=r"the dims given for input 'a' make its symbolic dim 'seq' 5 \(dim 0\), where "
                                         r"--input seq=6 gives it 6: a symbol is one size in every input"):
        profile_model(_two_inputs(["seq", 0, 4], ["seq", 4]), {"a": [5, 2, 4], "seq": 6})
    with pytest.raises(ModelError, match=r"input 'b' make its symbolic dim 'seq' 6 \(dim 0\), where the dims given for "
                                         r"input 'a' make it 5 \(dim 0\)"):
        profile_model(_two_inputs(["seq", 3], ["seq", 4]), {"a": [5, 3], "b": [6, 4]})
    # one input naming a symbol twice: [n, n] is square
    with pytest.raises(ModelError, match=r"input 'a' make its symbolic dim 'n' 4 \(dim 1\), where they make it 3 "
                                         r"\(dim 0\)"):
        profile_model(_two_inputs(["n", "n"], [2]), {"a": [3, 4]})
    assert profile_model(_two_inputs(["n", "n"], ["n"]), {"a": [3, 3]}).inputs == {"a": (3, 3), "b": (3,)}
    # a negative dim given is named for the input it was given for, before it sizes any symbol
    with pytest.raises(ModelError, match=r"input 'b': dims must be 0 or more, got \[-1, 4\]"):
        profile_model(_two_inputs(["N", 3], ["N", 4]), {"b": [-1, 4]})
    # --batch leaves a batch dim sized by another input's dims, and says where the size came from
    profile = profile_model(_two_inputs(["N", 3], ["N", 5]), {"a": [2, 3]}, batch=8)
    assert profile.inputs == {"a": (2, 3), "b": (2, 5)}
    assert "--batch 8 left input 'b' [N, 5] as it is: its batch dim 'N' is 2 from the dims given for input 'a'" in \
        profile.notes


def test_the_sequence_note_is_only_where_the_symbol_would_have_been_the_batch() -> None:
    # b reads seq as its own sequence, or has a batch dim by name: no note about a's sequence for b
    for b_dims in (["seq", 0, 8], ["seq", "batch", 8]):
        profile = profile_model(_two_inputs(["seq", 0, 4], b_dims))
        assert not any("is not read as a batch dim" in note for note in profile.notes)
    # a rank-1 [seq] (taken as 1 on its own) is left unknown too, and said, with --batch as well
    for batch in (None, 2):
        profile = profile_model(_two_inputs(["seq", 0, 4], ["seq"]), batch=batch)
        assert "b" not in profile.inputs and profile.layer("relu_b").flops is None
        assert ("dim 0 ('seq') of input 'b' [seq] is not read as a batch dim: input 'a' reads 'seq' as its sequence "
                "dim; give it with --input seq=N") in profile.notes


def test_no_replaced_dims_note_for_the_batch_dim_or_a_dim_with_no_size() -> None:
    # the batch dim given another value (what --batch does), a dim declared 0: nothing the file fixes
    assert profile_model(_two_inputs([1, 3, 8], [2]), {"a": [4, 3, 8]}).notes == ()
    assert profile_model(_two_inputs([0, 3, 8], [2]), {"a": [4, 3, 8]}).notes == ()
    assert profile_model(_two_inputs([1, 3, 8], [2]), {"a": [4, 3, 9]}).notes == (
        "input 'a' is profiled at [4, 3, 9] as given, where the file fixes other sizes: dim 2 (8 -> 9)",)


def test_given_dims_are_checked_as_sizes_and_none_is_not_given() -> None:
    model = _two_inputs(["N", 3], ["N", 5])
    # None for an input (by name or in order) is not a shape given: N comes from a's dims
    assert profile_model(model, {"a": [2, 3], "b": None}).inputs == {"a": (2, 3), "b": (2, 5)}
    assert profile_model(model, [[2, 3], None]).inputs == {"a": (2, 3), "b": (2, 5)}
    # numpy integers are sizes; text, fractions and a string of digits are not
    assert profile_model(model, {"a": np.array([2, 3]), "N": np.int64(2)}).inputs == {"a": (2, 3), "b": (2, 5)}
    for dims in (["x", 3], ["2", "3"], [2.7, 3], "23"):
        with pytest.raises(ModelError, match=r"input 'a': dims must be whole numbers, got "):
            profile_model(model, {"a": dims})
    with pytest.raises(ModelError, match=r"input 'a': a dim is at most 2\*\*63 - 1"):
        profile_model(model, {"a": [2**63, 3]})
    # a negative symbol value is the user's, not a dim the file declares
    with pytest.raises(ModelError, match="symbolic dim 'N' is given as -2: a size is 0 or more"):
        profile_model(model, {"N": -2})
    for batch in (0, 2**70, 2.5, "2", True):
        with pytest.raises(ModelError, match=r"--batch .*: a batch size is a whole number, 1 or more"):
            profile_model(model, batch=batch)  # type: ignore[arg-type]
    for dims in ([float("inf"), 3], [True, 3]):
        with pytest.raises(ModelError, match=r"input 'a': dims must be whole numbers, got "):
            profile_model(model, {"a": dims})
    assert profile_model(model, [[2, 3], np.array([2, 5])]).inputs == {"a": (2, 3), "b": (2, 5)}


def test_a_rank_one_batch_left_by_batch_says_only_input_sets_it() -> None:
    profile = profile_model(_two_inputs([1, 3], ["L"]), batch=2)
    assert profile.inputs["b"] == (1,)
    assert "symbolic batch dimension 'L' of input 'b' taken as 1 (set it with --input)" in profile.notes
    profile = profile_model(_two_inputs([1, 3], ["L"]))
    assert "symbolic batch dimension 'L' of input 'b' taken as 1 (set it with --batch or --input)" in profile.notes


def test_a_symbol_another_input_reads_as_its_batch_is_the_batch_everywhere() -> None:
    # a dynamo export's [s0, 3] beside a rank-1 [s0]: --batch sets s0 in a, and b's s0 is the same size
    # (it was left at 1 beside a batch of 2); without --batch both are 1
    for batch, size in ((2, 2), (None, 1)):
        for order in ((["s0", 3], ["s0"]), (["s0"], ["s0", 3])):
            profile = profile_model(_two_inputs(*order), batch=batch)
            assert sorted(profile.inputs.values()) == sorted([(size, 3), (size,)])
    profile = profile_model(_two_inputs(["s0", 3], ["s0"]), batch=2)
    assert profile.notes == ("--batch 2 set dim 0 ('s0') of input 'a' [s0, 3]",
                             "--batch 2 set dim 0 ('s0') of input 'b' [s0]: input 'a' reads 's0' as its batch dim")


def test_a_state_input_takes_its_batch_dim_from_the_input_that_names_the_symbol() -> None:
    # a batch-first LSTM exported by dynamo: x [s0, 50, 10], h0 [layers, s0, 20]; h0's leading dim is
    # the layers (2, or 1), not its batch: s0 is, as in x
    for layers in (2, 1):
        profile = profile_model(_two_inputs(["s0", 50, 10], [layers, "s0", 20]), batch=2)
        assert profile.inputs == {"a": (2, 50, 10), "b": (layers, 2, 20)}
        assert f"--batch 2 set dim 1 ('s0') of input 'b' [{layers}, s0, 20]: input 'a' reads 's0' as its batch dim" \
            in profile.notes
        assert profile_model(_two_inputs(["s0", 50, 10], [layers, "s0", 20])).inputs == {"a": (1, 50, 10),
                                                                                         "b": (layers, 1, 20)}


def test_a_symbol_another_input_has_as_a_dim_other_than_its_batch_is_not_a_rank_one_batch() -> None:
    # [s0, s1] beside a rank-1 [s1]: s1 is no batch, so b is not taken as a batch of 1 while a's s1 is unknown
    for order in ((["s0", "s1"], ["s1"]), (["s1"], ["s0", "s1"])):
        profile = profile_model(_two_inputs(*order))
        assert profile.inputs == {}
        named = "a" if order[0] == ["s0", "s1"] else "b"
        rank_one = "b" if named == "a" else "a"
        assert (f"dim 0 ('s1') of input {rank_one!r} [s1] is not read as a batch dim: it is a dim other than the batch "
                f"in input {named!r}; give it with --input s1=N") in profile.notes
    profile = profile_model(_two_inputs(["s0", "s1"], ["s1"]), {"s1": 5})
    assert profile.inputs == {"a": (1, 5), "b": (5,)}


def test_a_leading_dim_is_not_the_batch_where_another_input_has_it_as_another_dim() -> None:
    # an nn.Transformer's src [batch, seq, 8] beside its mask [seq, seq]: seq is no batch, so the mask is
    # not counted as a batch x batch square; it stays unknown until seq is given
    for batch in (None, 2):
        profile = profile_model(_two_inputs(["batch", "seq", 8], ["seq", "seq"]), batch=batch)
        assert "b" not in profile.inputs and profile.layer("relu_b").flops is None
    profile = profile_model(_two_inputs(["batch", "seq", 8], ["seq", "seq"]), {"seq": 5}, batch=2)
    assert profile.inputs == {"a": (2, 5, 8), "b": (5, 5)}
    # [s0, s1] beside [s1, 64]: s0 is a's batch; s1, a's other dim, is not b's
    profile = profile_model(_two_inputs(["s0", "s1"], ["s1", 64]), batch=2)
    assert profile.inputs == {} and profile.layer("relu_b").flops is None
    assert ("--batch 2 left input 'b' [s1, 64] as it is: no dim is named like a batch (batch, N, batch_size...) and "
            "its leading dim 's1' is a dim other than the batch in input 'a'") in profile.notes
    # [s0, s1] beside [s1, s0]: each is the other's second dim: neither is taken as a batch
    assert profile_model(_two_inputs(["s0", "s1"], ["s1", "s0"]), batch=2).inputs == {}
    # one input naming a symbol twice, [s0, s0]: a square, not batch x batch
    profile = profile_model(_two_inputs(["s0", "s0"], [3]), batch=2)
    assert "a" not in profile.inputs and profile.layer("relu_a").flops is None
    assert ("--batch 2 left input 'a' [s0, s0] as it is: no dim is named like a batch (batch, N, batch_size...) and "
            "its leading dim 's0' is also another of its dims") in profile.notes
    assert ("dim 0 ('s0') of input 'a' [s0, s0] is not read as a batch dim: it is also another of its dims; give it "
            "with --input s0=N") in profile_model(_two_inputs(["s0", "s0"], [3])).notes


def test_a_scalar_input_beside_a_batched_one_is_left_as_it_is() -> None:
    profile = profile_model(_two_inputs(["s0", 3], []), batch=2)
    assert profile.inputs == {"a": (2, 3), "b": ()}
    assert "--batch 2 left input 'b' [] as it is: no dim is named like a batch (batch, N, batch_size...) and it has " \
           "rank 0" in profile.notes


def test_a_symbol_is_not_sized_in_one_input_and_unknown_in_another() -> None:
    # input_ids [1, s1] (a batch of 1 fixed) beside position_ids [s1]: s1 is ids' sequence, so the
    # rank-1 input is not a batch of 1 while ids' s1 is unknown
    for batch in (None, 2):
        profile = profile_model(_two_inputs([1, "s1"], ["s1"]), batch=batch)
        assert profile.inputs == {} and profile.layer("relu_b").flops is None
    # a sequence-first input [seq, 0, s0] has s0 as another dim: [s0, 3] beside it is not a batch of 1
    profile = profile_model(_two_inputs(["seq", 0, "s0"], ["s0", 3]))
    assert "b" not in profile.inputs and profile.layer("relu_b").flops is None
