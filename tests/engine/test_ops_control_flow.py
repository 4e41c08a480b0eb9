"""If, Loop and Scan: costed from their bodies; counts that depend on data are upper bounds."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.results import Profile
from pytest_maccbudget.engine.registry import REGISTRY

F32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes: list, inputs: list, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", F32, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _branch(name: str, k: int) -> onnx.GraphProto:
    w = numpy_helper.from_array(np.ones((16, k), np.float32), f"{name}_w")
    return helper.make_graph([helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])], name, [],
                             [helper.make_tensor_value_info(f"{name}_y", F32, [1, k])], [w])


def _if_model(condition: object) -> onnx.ModelProto:
    node = helper.make_node("If", ["c"], ["y"], name="branchy", then_branch=_branch("small", 2),
                            else_branch=_branch("big", 8))
    inputs = [helper.make_tensor_value_info("x", F32, [1, 16])]
    inits = []
    if condition is None:
        inputs.append(helper.make_tensor_value_info("c", BOOL, []))
    else:
        inits.append(numpy_helper.from_array(np.array(condition), "c"))
    return _model([node], inputs, inits)


def test_control_flow_ops_are_registered() -> None:
    for op_type in ("If", "Loop", "Scan"):
        entry = REGISTRY.lookup(op_type)
        assert entry is not None and entry.body_cost is not None
        assert entry.traits.op_class == "control_flow"
    assert REGISTRY.traits("Loop").shape_inputs == {0, 1}


def test_if_with_a_condition_known_at_run_time_counts_the_larger_branch_as_a_bound() -> None:
    layer = profile_model(_if_model(None)).layer("branchy")
    assert (layer.macs, layer.note) == (16 * 8, "larger branch (else_branch)")
    # the branches' outputs are [1, 2] and [1, 8]: y is at most [1, 8], 8 x 4 bytes = 32
    assert layer.output_bytes == 32
    assert layer.upper_bounds == ("macs", "flops", "output_bytes", "bytes_written")


def test_if_with_a_constant_condition_counts_the_branch_it_takes() -> None:
    layer = profile_model(_if_model(True)).layer("branchy")
    assert (layer.macs, layer.note, layer.upper_bounds) == (16 * 2, "then_branch (constant condition)", ())


def _loop_body(condition_nodes: list, condition: str) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("MatMul", ["state", "w"], ["next"])] + condition_nodes, "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", BOOL, []),
         helper.make_tensor_value_info("state", F32, [1, 16])],
        [helper.make_tensor_value_info(condition, BOOL, []), helper.make_tensor_value_info("next", F32, [1, 16])])


def _loop_model(body: onnx.GraphProto) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.ones((16, 16), np.float32), "w"), numpy_helper.from_array(np.array(5, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "cond")]
    node = helper.make_node("Loop", ["trips", "cond", "x"], ["y"], name="loop", body=body)
    return _model([node], [helper.make_tensor_value_info("x", F32, [1, 16])], inits)


def test_loop_that_cannot_stop_early_is_exact() -> None:
    body = _loop_body([helper.make_node("Identity", ["cond_in"], ["cond_out"])], "cond_out")
    layer = profile_model(_loop_model(body)).layer("loop")
    assert (layer.macs, layer.note, layer.upper_bounds) == (5 * 16 * 16, "body x 5 iterations", ())


def test_loop_whose_condition_depends_on_data_is_an_upper_bound() -> None:
    # cond_out = ReduceSum(next) < 100: the loop may stop before its 5 iterations
    limit = helper.make_node("Constant", [], ["limit"], value=numpy_helper.from_array(np.array(100.0, np.float32)))
    body = _loop_body([helper.make_node("ReduceSum", ["next"], ["total"], keepdims=0), limit,
                       helper.make_node("Less", ["total", "limit"], ["go_on"])], "go_on")
    profile = profile_model(_loop_model(body))
    layer = profile.layer("loop")
    assert (layer.macs, layer.note) == (5 * 16 * 16, "body x at most 5 iterations")
    assert "macs" in layer.upper_bounds
    assert profile.is_upper_bound("macs") and not profile.partial


def test_scan_counts_the_body_per_row() -> None:
    body = helper.make_graph(
        [helper.make_node("MatMul", ["row", "w"], ["proj"]), helper.make_node("Add", ["state", "proj"], ["next"]),
         helper.make_node("Identity", ["next"], ["out_row"])], "body",
        [helper.make_tensor_value_info("state", F32, [1, 8]), helper.make_tensor_value_info("row", F32, [1, 8])],
        [helper.make_tensor_value_info("next", F32, [1, 8]), helper.make_tensor_value_info("out_row", F32, [1, 8])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["init", "x"], ["final", "y"], name="scan", body=body, num_scan_inputs=1,
                          scan_input_axes=[-3])], "g",
        [helper.make_tensor_value_info("init", F32, [1, 8]), helper.make_tensor_value_info("x", F32, [6, 1, 8])],
        [helper.make_tensor_value_info("final", F32, None), helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(np.ones((8, 8), np.float32), "w")])
    scan = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).layer("scan")
    assert (scan.macs, scan.note) == (6 * 8 * 8, "body x 6 iterations")


def test_if_counts_each_figure_at_its_largest_over_the_branches() -> None:
    # then: x[1, 4] x w[4, 4]: 16 MACs, 16 x 2 - 4 = 28 FLOPs. else: Exp over 100,000 elements
    # (100,000 FLOPs) + ReduceSum (99,999 adds) = 199,999 FLOPs, 0 MACs. The larger MACs (16) come
    # from then, the larger FLOPs (199,999) from else: both at most, neither taken from one branch.
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"], name="mm")], "then", [],
                               [helper.make_tensor_value_info("t", F32, [1, 4])])
    else_g = helper.make_graph([helper.make_node("Exp", ["big"], ["e1"], name="exp"),
                                helper.make_node("ReduceSum", ["e1"], ["e2"], name="rs", keepdims=1),
                                helper.make_node("Expand", ["e2", "shape14"], ["e"], name="ex")], "else", [],
                               [helper.make_tensor_value_info("e", F32, [1, 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"], name="cond"),
             helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_g, else_branch=else_g)]
    inits = [numpy_helper.from_array(np.zeros((4, 4), np.float32), "w"), numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array([1, 4], np.int64), "shape14")]
    model = _model(nodes, [helper.make_tensor_value_info("x", F32, [1, 4]),
                           helper.make_tensor_value_info("big", F32, [1, 100000])], inits)
    layer = profile_model(model).layer("if")
    assert (layer.macs, layer.flops) == (16, 100000 + 99999)
    assert layer.upper_bounds == ("macs", "flops")
    assert layer.note == "larger branch per count (MACs: then_branch, FLOPs: else_branch)"


def test_if_flags_only_the_counts_that_differ() -> None:
    # then: Relu over x[1, 16] (16 FLOPs); else: Neg over x (16 FLOPs): the FLOPs are the same
    # either way (exact); no MACs (0, never a bound)
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [helper.make_tensor_value_info("t", F32, [1, 16])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [helper.make_tensor_value_info("e", F32, [1, 16])])
    node = helper.make_node("If", ["c"], ["y"], name="branchy", then_branch=then_g, else_branch=else_g)
    model = _model([node], [helper.make_tensor_value_info("x", F32, [1, 16]), helper.make_tensor_value_info("c", BOOL, [])], [])
    layer = profile_model(model).layer("branchy")
    assert (layer.macs, layer.flops, layer.upper_bounds, layer.output_bytes) == (0, 16, (), 16 * 4)


def _scan_loop(trips: object, body_condition: str) -> onnx.ModelProto:
    """Loop(M = trips) whose body stacks r = Relu(x) [1, 4] each iteration (a scan output
    [iterations, 1, 4]), then y = scan x w[4, 8]."""
    condition_nodes = {"data": [helper.make_node("ReduceSum", ["r"], ["s"], name="rs", keepdims=0),
                                helper.make_node("Less", ["s", "thr"], ["c_out"], name="less")],
                       "pass": [helper.make_node("Identity", ["c_in"], ["c_out"], name="keep")]}[body_condition]
    body = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="relu")] + condition_nodes, "body",
                             [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("c_in", BOOL, [])],
                             [helper.make_tensor_value_info("c_out", BOOL, []), helper.make_tensor_value_info("r", F32, [1, 4])])
    inputs = [helper.make_tensor_value_info("x", F32, [1, 4])]
    inits = [numpy_helper.from_array(np.array(True), "cond0"), numpy_helper.from_array(np.array(5.0, np.float32), "thr"),
             numpy_helper.from_array(np.zeros((4, 8), np.float32), "w")]
    if trips is None:
        inputs.append(helper.make_tensor_value_info("M", I64, []))
    else:
        inits.append(numpy_helper.from_array(np.array(trips, np.int64), "M"))
    nodes = [helper.make_node("Loop", ["M", "cond0"], ["scan"], name="loop", body=body),
             helper.make_node("MatMul", ["scan", "w"], ["y"], name="mm")]
    return _model(nodes, inputs, inits)


def test_a_loop_that_may_stop_early_has_its_scan_outputs_at_most_m_rows() -> None:
    # at most 10 iterations: scan at most [10, 1, 4] (160 bytes); MatMul at most 10 x 4 x 8 = 320 MACs
    profile = profile_model(_scan_loop(10, "data"))
    assert not profile.partial
    loop, mm = profile.layer("loop"), profile.layer("mm")
    assert loop.output_bytes == 10 * 4 * 4 and "output_bytes" in loop.upper_bounds
    assert mm.macs == 10 * 4 * 8 and "macs" in mm.upper_bounds
    assert any(note.startswith("Loop 'loop'") and "[10, 1, 4]" in note for note in profile.notes)


def test_a_loop_that_cannot_stop_early_has_exact_scan_outputs() -> None:
    # the condition passes through: exactly 10 iterations, scan [10, 1, 4], MatMul 320 MACs exact
    profile = profile_model(_scan_loop(10, "pass"))
    assert (profile.layer("mm").macs, profile.upper_bounds, profile.partial) == (10 * 4 * 8, (), False)


def test_a_loop_without_a_known_trip_count_leaves_its_scan_outputs_unknown() -> None:
    profile = profile_model(_scan_loop(None, "data"))
    assert profile.partial
    # M is a graph input: no trip count, so neither the count nor the scan's rows are known
    assert profile.layer("loop").status == "unresolved" and "'M'" in profile.layer("loop").note
    mm = profile.layer("mm")
    assert (mm.status, mm.macs) == ("unresolved", None) and "'scan'" in mm.note


def _carrying_loop(body_nodes: list, body_inits: tuple = ()) -> Profile:
    """Loop(M = 5, cond, x [1, 64]) whose body carries v_in [1, 64] to v_out and scans
    ReduceSum(MatMul(v_in, W [64, 64])); `body_nodes` make v_out."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["v_in", "W"], ["mm"]), *body_nodes,
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("ReduceSum", ["mm"], ["scan_out"], keepdims=0)],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("scan_out", TensorProto.FLOAT, None)],
        list(body_inits))
    nodes = [helper.make_node("Loop", ["M", "cond", "x"], ["v_final", "scans"], name="loop", body=body)]
    inits = [numpy_helper.from_array(np.array(5, np.int64), "M"), numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.zeros((64, 64), np.float32), "W")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("v_final", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("scans", TensorProto.FLOAT, None)], inits)
    return profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_a_loop_whose_carried_value_changes_shape_is_unresolved() -> None:
    # v starts [1, 64] and each of the 5 iterations doubles its rows (Concat(v, v)): the body's
    # MatMul runs on 1, 2, 4, 8, 16 rows, (1 + 2 + 4 + 8 + 16) x 64 x 64 = 126,976 MACs, not
    # 5 x 1 x 64 x 64 = 20,480: the Loop is unresolved, not counted from the first iteration's shape
    profile = _carrying_loop([helper.make_node("Concat", ["v_in", "v_in"], ["v_out"], axis=0)])
    loop = profile.layer("loop")
    assert loop.status == "unresolved" and loop.macs is None and profile.partial


def test_a_loop_whose_carried_value_has_no_known_shape_after_an_iteration_is_unresolved() -> None:
    # v_out = Tile(v_in, [i + 1, 1]): its rows depend on the iteration number, so no shape is known
    # for the next iteration's v_in; the body's MatMul cost on the declared [1, 64] holds only for the
    # first iteration (1 + 1 + 2 + 6 + 24 rows in 5 iterations, not 5 x 1): the Loop is unresolved
    profile = _carrying_loop(
        [helper.make_node("Add", ["i", "one"], ["i1"]), helper.make_node("Unsqueeze", ["i1", "axis0"], ["rows"]),
         helper.make_node("Concat", ["rows", "one1"], ["repeats"], axis=0),
         helper.make_node("Tile", ["v_in", "repeats"], ["v_out"])],
        (numpy_helper.from_array(np.array(1, np.int64), "one"), numpy_helper.from_array(np.array([0], np.int64), "axis0"),
         numpy_helper.from_array(np.array([1], np.int64), "one1")))
    loop = profile.layer("loop")
    assert loop.status == "unresolved" and loop.macs is None and profile.partial
    assert loop.note.startswith("'v_out' has no known shape where 'v_in' is [1, 64]: the shape of a loop-carried value "
                                "may change from one iteration to the next")


def test_a_loop_carrying_a_value_of_the_graph_around_keeps_its_count() -> None:
    # the body returns the outer x [1, 64] as its carried value (as onnx's reference evaluator runs
    # it): the shape is x's, the same each iteration, so 5 x 1 x 64 x 64 MACs
    body = helper.make_graph(
        [helper.make_node("MatMul", ["v_in", "W"], ["mm"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F32, None),
         helper.make_tensor_value_info("mm", F32, None)])
    inits = [numpy_helper.from_array(np.array(5, np.int64), "M"), numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.zeros((64, 64), np.float32), "W")]
    graph = helper.make_graph([helper.make_node("Loop", ["M", "cond", "x"], ["y", "scan"], name="loop", body=body)], "g",
                              [helper.make_tensor_value_info("x", F32, [1, 64])],
                              [helper.make_tensor_value_info("y", F32, None), helper.make_tensor_value_info("scan", F32, None)],
                              inits)
    loop = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).layer("loop")
    assert (loop.status, loop.macs) == ("costed", 5 * 64 * 64)


def test_a_body_input_hides_an_outer_value_of_the_same_name() -> None:
    # the body swaps its carried a [1, 64] and b (declared [r, c], first h [1, 4096]) and sums a;
    # the graph around has an input named b [1, 64] too, which the body's b hides: the shape of the
    # carried b after an iteration is not known, so the Loop is unresolved (it sums 64 + 4096 + 64 +
    # 4096 + 64 elements, not 5 x 64)
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("ReduceSum", ["a"], ["s"], keepdims=0)],
        "body", [vi("i", I64, []), vi("cond_in", BOOL, []), vi("a", F32, [1, 64]), vi("b", F32, ["r", "c"])],
        [vi("cond_out", BOOL, []), vi("b", F32, ["r", "c"]), vi("a", F32, [1, 64]), vi("s", F32, [])])
    inits = [numpy_helper.from_array(np.array(5, np.int64), "M"), numpy_helper.from_array(np.array(True), "cond")]
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "cond", "x", "h"], ["ya", "yb", "scan"], name="loop", body=body)], "g",
        [vi("x", F32, [1, 64]), vi("h", F32, [1, 4096]), vi("b", F32, [1, 64])],
        [vi("ya", F32, None), vi("yb", F32, None), vi("scan", F32, None)], inits)
    loop = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).layer("loop")
    assert loop.status == "unresolved" and loop.flops is None


def test_a_loop_body_declared_for_other_input_dims_is_unresolved() -> None:
    # x [batch, 64] profiled with --batch 2, the body declaring v_in [1, 64] (exported at batch 1):
    # it runs 5 x 2 x 64 x 64 = 40,960 MACs, not the 20,480 the body's own shapes give
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("MatMul", ["v_in", "W"], ["mm"]),
         helper.make_node("Relu", ["mm"], ["v_out"])], "body",
        [vi("i", I64, []), vi("cond_in", BOOL, []), vi("v_in", F32, [1, 64])],
        [vi("cond_out", BOOL, []), vi("v_out", F32, [1, 64])])
    inits = [numpy_helper.from_array(np.array(5, np.int64), "M"), numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.ones((64, 64), np.float32), "W")]
    graph = helper.make_graph([helper.make_node("Loop", ["M", "cond", "x"], ["y"], name="loop", body=body)], "g",
                              [vi("x", F32, ["batch", 64])], [vi("y", F32, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    loop = profile_model(model, batch=2).layer("loop")
    assert loop.status == "unresolved" and loop.macs is None
    assert loop.note.startswith("'x' is [2, 64] going in where the body declares 'v_in' as [1, 64]")
    # at the batch the body was exported for, it is counted: 5 x 1 x 64 x 64
    assert profile_model(model).layer("loop").macs == 5 * 64 * 64


def test_what_a_body_notes_reaches_the_report_named_by_its_place() -> None:
    # a NonZero inside an If branch: its bound note is the profile's, prefixed with the branch
    vi = helper.make_tensor_value_info
    then = helper.make_graph([helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
                              helper.make_node("Cast", ["nz"], ["out"], name="cast", to=F32)],
                             "then", [], [vi("out", F32, None)])
    other = helper.make_graph([helper.make_node("Identity", ["alt"], ["out2"], name="id")], "else", [], [vi("out2", F32, None)])
    graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other)],
                              "g", [vi("c", BOOL, []), vi("mask", F32, [100]), vi("alt", F32, [1, 100])],
                              [vi("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert ("branch/then_branch: NonZero 'nz': its output depends on data and is counted at its largest, [1, 100]; "
            "the figures that follow from it are upper bounds") in profile.notes


# ---- parameters read inside bodies: each stored tensor once in the whole model --------------

def _capturing_if(then_reads: str, else_reads: str, main_reads: str = "", extra: tuple = ()) -> onnx.ModelProto:
    """y = x @ W[8, 8] in the graph when main_reads is given; an If whose branches compute
    x @ (the tensor each reads) from the graph around them."""
    vi = helper.make_tensor_value_info

    def branch(name: str, reads: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("MatMul", ["x", reads], [f"{name}_y"], name=f"{name}_mm")], name,
                                 [], [vi(f"{name}_y", F32, [1, 8])])
    nodes = list(extra)
    if main_reads:
        nodes.append(helper.make_node("MatMul", ["x", main_reads], ["main_y"], name="main_mm"))
    nodes.append(helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch("then", then_reads),
                                  else_branch=branch("else", else_reads)))
    weight = numpy_helper.from_array(np.ones((8, 8), np.float32), "W")
    return _model(nodes, [vi("x", F32, [1, 8]), vi("c", BOOL, [])], [weight])


def test_a_weight_of_the_graph_read_again_in_a_body_is_counted_once() -> None:
    profile = profile_model(_capturing_if("W", "W", main_reads="W"))
    assert profile.layer("main_mm").params == 64 and profile.layer("if").params == 0
    assert (profile.totals.params, profile.totals.param_bytes) == (8 * 8, 8 * 8 * 4)


def test_a_weight_both_branches_read_is_counted_once_at_the_if() -> None:
    profile = profile_model(_capturing_if("W", "W"))
    assert (profile.layer("if").params, profile.totals.params) == (64, 64)


def test_a_body_reading_a_weight_computed_from_another_counts_it_at_its_source() -> None:
    # Wt = Transpose(W) is worked out before the graph runs; the branch reading it uses W's 64
    # elements, which the MatMul in the graph already counted
    transpose = helper.make_node("Transpose", ["W"], ["Wt"], name="wt")
    profile = profile_model(_capturing_if("Wt", "W", main_reads="W", extra=(transpose,)))
    assert (profile.layer("if").params, profile.totals.params) == (0, 64)


def test_weights_a_body_used_first_stay_on_the_row_of_an_op_that_cannot_be_counted() -> None:
    # the then-branch reads W (64 params) and then an op with no cost rule, so the If is not
    # counted; the MatMul after it reads W again: W's 64 params are the If's, not lost
    vi = helper.make_tensor_value_info
    then = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["t"], name="t"),
                              helper.make_node("Mystery", ["t"], ["ty"], name="ty", domain="custom.dom")],
                             "then", [], [vi("ty", F32, [1, 8])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["ey"])], "else", [], [vi("ey", F32, [1, 8])])
    nodes = [helper.make_node("If", ["c"], ["i"], name="if", then_branch=then, else_branch=other),
             helper.make_node("MatMul", ["i", "W"], ["y"], name="after")]
    model = _model(nodes, [vi("x", F32, [1, 8]), vi("c", BOOL, [])],
                   [numpy_helper.from_array(np.ones((8, 8), np.float32), "W")])
    model.opset_import.append(helper.make_opsetid("custom.dom", 1))
    profile = profile_model(model)
    assert profile.layer("if").status == "unknown" and profile.layer("if").params == 64
    assert profile.layer("after").params == 0 and profile.totals.params == 64


def test_a_loop_body_and_the_graph_reading_one_weight_count_it_once() -> None:
    # two iterations of v @ W[8, 8] (2 x 64 MACs), then the loop's result @ W again (64 MACs):
    # W's 64 params on the Loop's row, where it is first read
    vi = helper.make_tensor_value_info
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("MatMul", ["v_in", "W"], ["v_out"], name="step")], "body",
                             [vi("i", I64, []), vi("cond_in", BOOL, []), vi("v_in", F32, [1, 8])],
                             [vi("cond_out", BOOL, []), vi("v_out", F32, [1, 8])])
    nodes = [helper.make_node("Loop", ["trips", "", "x"], ["v"], name="loop", body=body),
             helper.make_node("MatMul", ["v", "W"], ["y"], name="after")]
    model = _model(nodes, [vi("x", F32, [1, 8])], [numpy_helper.from_array(np.ones((8, 8), np.float32), "W"),
                                                   numpy_helper.from_array(np.array(2, np.int64), "trips")])
    model.graph.value_info.append(vi("v", F32, [1, 8]))  # (onnx's inference leaves a Loop's result unknown)
    profile = profile_model(model)
    assert profile.layer("loop").macs == 2 * 64 and profile.layer("after").macs == 64
    assert (profile.layer("loop").params, profile.layer("after").params, profile.totals.params) == (64, 0, 64)


def test_a_weight_a_branch_makes_from_a_shape_of_the_graph_around_is_counted() -> None:
    # each branch makes its own W = ConstantOfShape(w_shape [8, 8]), w_shape an initializer of
    # the graph around it: onnx's inference of a body does not know W's shape; 64 params each
    vi = helper.make_tensor_value_info

    def branch(name: str) -> onnx.GraphProto:
        make_w = helper.make_node("ConstantOfShape", ["w_shape"], [f"{name}_w"],
                                  value=helper.make_tensor("v", F32, [1], [0.5]))
        return helper.make_graph([make_w, helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])], name,
                                 [], [vi(f"{name}_y", F32, [1, 8])])
    nodes = [helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch("then"), else_branch=branch("else"))]
    shape = numpy_helper.from_array(np.array([8, 8], np.int64), "w_shape")
    profile = profile_model(_model(nodes, [vi("x", F32, [1, 8]), vi("c", BOOL, [])], [shape]))
    assert (profile.layer("if").macs, profile.layer("if").params) == (64, 2 * 64)
    assert profile.totals.param_bytes == 2 * 64 * 4


def test_a_branch_sees_the_shape_the_graph_around_learns_late() -> None:
    # nz = NonZero(W) in the graph: [2, 5] once its value is worked out (onnx says [2, ?]). The
    # then-branch reads nz: Cast(nz), then Shape(nz), whose asking works nz out in the graph
    # around; the branch must see that shape, not the one it had read first. Everything there
    # is then known before the graph runs (0 MACs); the else-branch's MatMul is [2, 5] x [5, 3]
    vi = helper.make_tensor_value_info
    then = helper.make_graph([
        helper.make_node("Cast", ["nz"], ["nzf"], to=F32, name="cast"),
        helper.make_node("Shape", ["nz"], ["s"], name="shape"),
        helper.make_node("ConstantOfShape", ["s"], ["ones"], name="ones", value=helper.make_tensor("v", F32, [1], [1.0])),
        helper.make_node("Add", ["nzf", "ones"], ["sum"], name="add"),
        helper.make_node("MatMul", ["sum", "M"], ["ty"], name="mm")], "then", [], [vi("ty", F32, None)])
    other = helper.make_graph([helper.make_node("MatMul", ["x", "M"], ["ey"], name="emm")], "else", [], [vi("ey", F32, None)])
    weights = [numpy_helper.from_array(np.array([[1, 0, 2, 0], [0, 3, 0, 4], [5, 0, 0, 0]], np.float32), "W"),
               numpy_helper.from_array(np.ones((5, 3), np.float32), "M")]
    nodes = [helper.make_node("NonZero", ["W"], ["nz"], name="nz"),
             helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other)]
    profile = profile_model(_model(nodes, [vi("c", BOOL, []), vi("x", F32, [2, 5])], weights))
    assert not profile.unknown, profile.unknown
    layer = profile.layer("if")
    assert (layer.status, layer.macs, layer.flops) == ("costed", 30, 6 * (5 + 4))  # 6 outputs, 5 products and 4 sums each
