"""Shapes that depend on data: what follows NonMaxSuppression, NonZero, Compress, Unique or a
TopK whose k is computed is costed at its largest and reported as an upper bound, distinct from
unknown; figures that do not depend on it (MACs before the NMS) stay exact."""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.profile_report import render

F32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _const(name: str, value: object, dtype: type = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def _model(nodes: list, inputs: dict[str, tuple[list, int]], inits: list, output: str = "y") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, (s, t) in inputs.items()],
                              [helper.make_tensor_value_info(output, F32, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def detection_model() -> onnx.ModelProto:
    """A conv head makes 200 boxes and 4 class scores; NMS keeps at most 5 per class; the kept
    boxes are gathered, their coordinates summed, the top min(kept, 100) of those taken."""
    nodes = [
        helper.make_node("Conv", ["img", "w"], ["feat"], name="conv", pads=[1, 1, 1, 1]),  # [1, 8, 10, 10]
        helper.make_node("Reshape", ["feat", "box_shape"], ["boxes"], name="to_boxes"),  # [1, 200, 4]
        helper.make_node("Reshape", ["feat", "score_shape"], ["scores"], name="to_scores"),  # [1, 4, 200]
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou"], ["selected"], name="nms"),
        helper.make_node("Gather", ["selected", "two"], ["box_index"], name="box_index", axis=1),  # [k]
        helper.make_node("Squeeze", ["boxes", "zero"], ["all_boxes"], name="all_boxes"),  # [200, 4]
        helper.make_node("Gather", ["all_boxes", "box_index"], ["kept"], name="kept", axis=0),  # [k, 4]
        helper.make_node("Shape", ["kept"], ["kept_shape"], name="kept_shape"),
        helper.make_node("Gather", ["kept_shape", "first"], ["count"], name="count"),
        helper.make_node("Unsqueeze", ["count", "zero"], ["count1"], name="count1"),
        helper.make_node("Min", ["count1", "hundred"], ["k"], name="k"),
        helper.make_node("ReduceSum", ["kept", "one"], ["size"], name="size", keepdims=0),  # [k]
        helper.make_node("TopK", ["size", "k"], ["top", "top_index"], name="topk"),
        helper.make_node("Relu", ["top"], ["y"], name="relu"),
    ]
    inits = [numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             _const("box_shape", [1, 200, 4]), _const("score_shape", [1, 4, 200]), _const("max_out", [5]),
             _const("iou", [0.5], np.float32), _const("two", 2), _const("zero", [0]), _const("first", 0),
             _const("one", [1]), _const("hundred", [100])]
    return _model(nodes, {"img": ([1, 3, 10, 10], F32)}, inits)


def test_nms_graph_gets_upper_bounds_and_exact_macs() -> None:
    profile = profile_model(detection_model())
    assert not profile.partial and profile.unknown == ()  # nothing unknown: the tail is costed
    conv_macs = 8 * 10 * 10 * 3 * 3 * 3
    assert profile.totals.macs == conv_macs and not profile.is_upper_bound("macs")  # every dot product is exact
    # kept: 1 batch x 4 classes x 5 = 20 boxes. NMS: 200 x 3 areas + 4 x (200 x 8 sort + 13 x (5 x 199 - 10) IoU);
    # ReduceSum 80 - 20 adds; Min 1; TopK of 20 of 20: 20 x (1 + 5); Relu 20
    nms = 200 * 3 + 4 * (200 * 8 + 13 * (5 * 199 - 10))
    assert profile.totals.flops == (2 * conv_macs - 800) + nms + 60 + 1 + 20 * 6 + 20
    assert profile.bounded and profile.is_upper_bound("flops") and profile.is_upper_bound("peak_activation_bytes")
    assert profile.layer("kept").output_bytes == 20 * 4 * 4
    assert "output_bytes" in profile.layer("kept").upper_bounds
    assert profile.layer("conv").upper_bounds == () and profile.layer("all_boxes").upper_bounds == ()
    assert any("NonMaxSuppression 'nms'" in note and "[20, 3]" in note for note in profile.notes)


def test_upper_bounds_in_the_json_and_the_table() -> None:
    profile = profile_model(detection_model())
    data = profile.to_dict()
    assert data["upper_bound"] is True and data["partial"] is False
    assert "flops" in data["total"]["upper_bound"] and "macs" not in data["total"]["upper_bound"]
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["nms"]["upper_bound"] == ["flops", "output_bytes", "bytes_written"]
    assert layers["conv"]["upper_bound"] == []
    table = render(profile, "table")
    assert "FLOPs:                  <=" in table and "MACs:                   21.6 k" in table
    assert "upper bound:" in table


def test_a_value_that_is_a_bound_has_exact_bytes() -> None:
    # kept_shape = [k, 4] with k <= 20, count = k, count1 = [k], k = Min([k], [100]): values that
    # are upper bounds, in int64 vectors of a known length, so their bytes are exact
    profile = profile_model(detection_model())
    shape, count, count1, k = (profile.layer(name) for name in ("kept_shape", "count", "count1", "k"))
    assert (shape.output_bytes, count.output_bytes, count1.output_bytes, k.output_bytes) == (16, 8, 8, 8)
    assert shape.upper_bounds == ("bytes_read",)  # it reads the kept boxes' size, at most [20, 4]
    assert count.upper_bounds == count1.upper_bounds == ()
    assert k.flops == 1 and k.upper_bounds == ()  # one Min of one element, whatever its value
    # TopK reads k as its count: its FLOPs follow from the bound, as does its output
    assert profile.layer("topk").upper_bounds == ("flops", "output_bytes", "bytes_written", "bytes_read")


def test_a_shape_set_by_a_value_that_is_a_bound_is_one() -> None:
    # n = Shape(NonZero(x)) = [2, <=12] (x has rank 2): ConstantOfShape(n) reads 16 exact bytes and
    # writes at most 2 x 12 floats
    nodes = [helper.make_node("NonZero", ["x"], ["where"], name="nz"),
             helper.make_node("Shape", ["where"], ["n"], name="n"),
             helper.make_node("ConstantOfShape", ["n"], ["ones"], name="ones",
                              value=numpy_helper.from_array(np.array([1], np.float32))),
             helper.make_node("Relu", ["ones"], ["y"], name="relu")]
    profile = profile_model(_model(nodes, {"x": ([3, 4], F32)}, []))
    ones = profile.layer("ones")
    assert (ones.bytes_read, ones.output_bytes) == (16, 2 * 12 * 4)
    assert ones.upper_bounds == ("output_bytes", "bytes_written")
    assert profile.layer("relu").upper_bounds == ("flops", "output_bytes", "bytes_written", "bytes_read")


def test_a_count_a_rule_works_out_from_a_value_that_is_a_bound_is_one() -> None:
    # axis = Shape(NonZero(m))[0] / 2: the rank of NonZero's output (2) over 2 = 1, marked as a bound
    # like every value computed from that shape. CumSum along it: 4 lines x (6 - 1) adds = 20
    # FLOPs, from the axis's value, so a bound; its bytes (x and axis read, [4, 6] written) are exact.
    nodes = [helper.make_node("NonZero", ["m"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["s"], name="s"),
             helper.make_node("Gather", ["s", "first"], ["rank"], name="rank", axis=0),
             helper.make_node("Div", ["rank", "two"], ["axis"], name="axis"),
             helper.make_node("CumSum", ["x", "axis"], ["y"], name="cumsum")]
    profile = profile_model(_model(nodes, {"x": ([4, 6], F32), "m": ([1, 5], F32)},
                                   [_const("first", 0), _const("two", 2)]))
    cumsum = profile.layer("cumsum")
    assert (cumsum.flops, cumsum.bytes_read, cumsum.output_bytes) == (4 * 5, 4 * 6 * 4 + 8, 4 * 6 * 4)
    assert cumsum.upper_bounds == ("flops",)
    assert profile.layer("axis").upper_bounds == ()  # one division, whatever the value


def test_a_size_set_by_a_value_that_is_a_bound_is_one_where_the_file_declares_its_dims() -> None:
    # c = ConstantOfShape(Shape(NonZero(x))), declared [2, 12] in the file: its dims come from n,
    # at most [2, 12], so its bytes are bounds; CumSum's declared dims (its input's) would not be
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["n"], name="n"),
             helper.make_node("ConstantOfShape", ["n"], ["c"], name="c",
                              value=numpy_helper.from_array(np.array([1], np.float32))),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    model = _model(nodes, {"x": ([3, 4], F32)}, [])
    model.graph.value_info.append(helper.make_tensor_value_info("c", F32, [2, 12]))
    profile = profile_model(model)
    assert profile.layer("c").upper_bounds == ("output_bytes", "bytes_written")  # it reads n's 16 bytes, exact
    assert profile.layer("relu").upper_bounds[:1] == ("flops",) and "bytes_read" in profile.layer("relu").upper_bounds


def test_a_value_only_a_body_reads_is_resolved_as_a_bound() -> None:
    # NMS keeps at most k = Shape(NonZero(w))[1] boxes (w, 200 x 300, is never read: k <= 60,000),
    # of 10 boxes of one class: sel is at most [10, 3]. Only an If's branch reads sel: it is
    # worked out all the same, at NMS's worst case, so the branch's FLOPs and the peak are bounds
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.random((1, 10, 4)).astype(np.float32) * 10, axis=2)
    scores = rng.random((1, 1, 10)).astype(np.float32)

    def branch(tag: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("Cast", ["sel"], [f"f{tag}"], name=f"cast{tag}", to=F32),
                                  helper.make_node("ReduceSum", [f"f{tag}"], [f"o{tag}"], name=f"sum{tag}", keepdims=0)],
                                 f"b{tag}", [], [helper.make_tensor_value_info(f"o{tag}", F32, [])])
    nodes = [helper.make_node("NonZero", ["w"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["n"], name="n"),
             helper.make_node("Gather", ["n", "one"], ["k"], name="k", axis=0),
             helper.make_node("Unsqueeze", ["k", "zero"], ["k1"], name="k1"),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "k1", "iou"], ["sel"], name="nms"),
             helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch("t"), else_branch=branch("e"))]
    inits = [numpy_helper.from_array(np.ones((200, 300), np.float32), "w"), numpy_helper.from_array(boxes, "boxes"),
             numpy_helper.from_array(scores, "scores"), _const("one", 1), _const("zero", [0]),
             _const("iou", [0.0], np.float32)]
    profile = profile_model(_model(nodes, {"cond": ([], BOOL)}, inits))
    assert profile.layer("nms").output_bytes == 10 * 3 * 8 and "output_bytes" in profile.layer("nms").upper_bounds
    assert "flops" in profile.layer("if").upper_bounds
    assert profile.is_upper_bound("peak_activation_bytes")


def test_a_body_reading_a_tensor_of_the_graph_around_whose_size_is_a_bound_is_one() -> None:
    # NonZero(x) is at most [2, 12]; a branch sums it: 2 x 12 - 1 = 23 adds at most, a bound
    def branch(tag: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("ReduceSum", ["where"], [f"o{tag}"], name=f"sum{tag}", keepdims=0)],
                                 f"b{tag}", [], [helper.make_tensor_value_info(f"o{tag}", I64, [])])
    nodes = [helper.make_node("NonZero", ["x"], ["where"], name="nz"),
             helper.make_node("If", ["cond"], ["s"], name="if", then_branch=branch("t"), else_branch=branch("e")),
             helper.make_node("Cast", ["s"], ["y"], name="cast", to=F32)]
    profile = profile_model(_model(nodes, {"x": ([3, 4], F32), "cond": ([], BOOL)}, []))
    branch_sum = profile.layer("if")
    assert branch_sum.flops == 2 * 12 - 1 and "flops" in branch_sum.upper_bounds


def test_a_value_only_a_nested_body_reads_or_a_body_returns_is_resolved() -> None:
    # NonZero(x) at most [2, 12] (192 B), read only two Ifs deep (a sum of 2 x 12 - 1 = 23 adds
    # at most), or returned as it is by both branches of an If
    def sums(tag: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("ReduceSum", ["where"], [f"o{tag}"], name=f"sum{tag}", keepdims=0)],
                                 f"b{tag}", [], [helper.make_tensor_value_info(f"o{tag}", I64, [])])

    def inner_if(tag: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("If", ["cond"], [f"m{tag}"], name=f"inner{tag}",
                                                   then_branch=sums(tag + "t"), else_branch=sums(tag + "e"))],
                                 f"m{tag}", [], [helper.make_tensor_value_info(f"m{tag}", I64, [])])

    def returns_it(tag: str) -> onnx.GraphProto:
        return helper.make_graph([], f"r{tag}", [], [helper.make_tensor_value_info("where", I64, None)])
    for branch in (inner_if, returns_it):
        nodes = [helper.make_node("NonZero", ["x"], ["where"], name="nz"),
                 helper.make_node("If", ["cond"], ["s"], name="if", then_branch=branch("t"), else_branch=branch("e")),
                 helper.make_node("Cast", ["s"], ["y"], name="cast", to=F32)]
        profile = profile_model(_model(nodes, {"x": ([3, 4], F32), "cond": ([], BOOL)}, []))
        where = profile.layer("nz")
        assert (where.output_bytes, where.upper_bounds) == (2 * 12 * 8, ("output_bytes", "bytes_written")), branch
    assert profile_model(_model([helper.make_node("NonZero", ["x"], ["where"], name="nz"),
                                 helper.make_node("If", ["cond"], ["s"], name="if", then_branch=inner_if("t"),
                                                  else_branch=inner_if("e")),
                                 helper.make_node("Cast", ["s"], ["y"], name="cast", to=F32)],
                                {"x": ([3, 4], F32), "cond": ([], BOOL)}, [])).layer("if").flops == 2 * 12 - 1


def test_a_bound_found_while_counting_bytes_marks_the_row() -> None:
    # NonZero of a weight of 100,000 floats, never read: at most [1, 100000]; it is sized only when
    # the Add reading it counts its bytes (y is declared), and that row is then a bound
    nodes = [helper.make_node("NonZero", ["w"], ["idx"], name="nz"), helper.make_node("Add", ["x", "idx"], ["y"], name="add")]
    model = _model(nodes, {"x": ([1, 100_000], I64)}, [numpy_helper.from_array(np.ones(100_000, np.float32), "w")])
    model.graph.output[0].type.tensor_type.elem_type = I64
    model.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 100_000
    add = profile_model(model).layer("add")
    assert (add.flops, add.bytes_read, add.upper_bounds) == (100_000, 2 * 800_000, ("flops", "bytes_read"))


def test_a_loops_scan_outputs_are_bounds_and_its_carried_values_exact_where_declared() -> None:
    # a Loop of m = Shape(NonZero(x))[1] <= 12 iterations: s [4] carried (declared), scans stacked
    # one row per iteration, declared [12, 4]: at most 12 rows (a bound), while s stays [4]
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"], name="cid"),
         helper.make_node("Relu", ["s_in"], ["s_out"], name="relu"),
         helper.make_node("Identity", ["s_out"], ["row"], name="rid")],
        "body", [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("c_in", BOOL, []),
                 helper.make_tensor_value_info("s_in", F32, [4])],
        [helper.make_tensor_value_info("c_out", BOOL, []), helper.make_tensor_value_info("s_out", F32, [4]),
         helper.make_tensor_value_info("row", F32, [4])])
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["n"], name="n"),
             helper.make_node("Gather", ["n", "one"], ["m"], name="m", axis=0),
             helper.make_node("Loop", ["m", "", "s0"], ["s", "rows"], name="loop", body=body),
             helper.make_node("Relu", ["s"], ["y"], name="after")]
    model = _model(nodes, {"x": ([3, 4], F32), "s0": ([4], F32)}, [_const("one", 1)])
    model.graph.output.append(helper.make_tensor_value_info("rows", F32, None))
    model.graph.value_info.extend([helper.make_tensor_value_info("s", F32, [4]),
                                   helper.make_tensor_value_info("rows", F32, [12, 4])])
    profile = profile_model(model)
    loop = profile.layer("loop")
    assert (loop.output_bytes, loop.upper_bounds) == (4 * 4 + 12 * 4 * 4, ("flops", "output_bytes", "bytes_written"))
    assert (profile.layer("after").flops, profile.layer("after").upper_bounds) == (4, ())


def test_a_body_whose_counts_are_exact_makes_an_exact_row() -> None:
    # a branch reads NonZero(x)'s size (a bound: at most [2, 12]) through Shape, then casts the 2
    # dims: 2 FLOPs, exact, though the bytes Shape reads are a bound
    def branch(tag: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("Shape", ["where"], [f"n{tag}"], name=f"n{tag}"),
                                  helper.make_node("Cast", [f"n{tag}"], [f"o{tag}"], name=f"cast{tag}", to=F32),
                                  helper.make_node("Relu", [f"o{tag}"], [f"r{tag}"], name=f"relu{tag}")],
                                 f"b{tag}", [], [helper.make_tensor_value_info(f"r{tag}", F32, [2])])
    nodes = [helper.make_node("NonZero", ["x"], ["where"], name="nz"),
             helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch("t"), else_branch=branch("e"))]
    branches = profile_model(_model(nodes, {"x": ([3, 4], F32), "cond": ([], BOOL)}, [])).layer("if")
    assert (branches.flops, branches.upper_bounds) == (2, ())


def test_peak_memory_of_values_that_are_bounds_is_exact() -> None:
    # NonZero of a 200 x 300 weight that is never read: at most [2, 60000], computed before the
    # graph runs. At run time only s = its Shape (2 int64, a bound as a value) and y = Cast(s)
    # (2 float32) exist: 16 + 8 bytes, exact.
    nodes = [helper.make_node("NonZero", ["w"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["s"], name="s"),
             helper.make_node("Cast", ["s"], ["y"], name="y", to=F32)]
    weight = numpy_helper.from_array(np.ones((200, 300), np.float32), "w")
    profile = profile_model(_model(nodes, {}, [weight]))
    assert profile.layer("s").upper_bounds == ("bytes_read",)  # it reads nz, whose size is a bound
    assert profile.layer("y").upper_bounds == ()
    assert profile.totals.peak_activation_bytes == 16 + 8
    assert profile.upper_bounds == ("bytes_read", "memory_traffic_bytes")


def test_exact_graphs_say_nothing_about_bounds() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], {"x": ([2, 3], F32)}, [])
    profile = profile_model(model)
    assert not profile.bounded and profile.upper_bounds == () and profile.to_dict()["upper_bound"] is False


def _relu_after(op_nodes: list, inputs: dict, inits: list, last: str) -> onnx.ModelProto:
    return _model(op_nodes + [helper.make_node("Relu", [last], ["y"], name="relu")], inputs, inits)


def _relu(model: onnx.ModelProto) -> tuple[Optional[int], tuple[str, ...]]:
    layer = profile_model(model).layer("relu")
    return layer.flops, layer.upper_bounds


def test_nonzero_keeps_at_most_every_element() -> None:
    nodes = [helper.make_node("NonZero", ["x"], ["where"]), helper.make_node("Cast", ["where"], ["f"], to=F32)]
    flops, bounds = _relu(_relu_after(nodes, {"x": ([3, 4], F32)}, [], "f"))
    assert flops == 2 * 12 and "flops" in bounds  # [rank, at most 12 non-zero elements]


def test_compress_keeps_at_most_the_condition_length() -> None:
    nodes = [helper.make_node("Compress", ["x", "keep"], ["kept"], axis=0)]
    flops, bounds = _relu(_relu_after(nodes, {"x": ([6, 5], F32), "keep": ([4], BOOL)}, [], "kept"))
    assert flops == 4 * 5 and "flops" in bounds


def test_topk_with_k_from_data_keeps_at_most_the_axis() -> None:
    nodes = [helper.make_node("TopK", ["x", "k"], ["top", "index"])]
    flops, bounds = _relu(_relu_after(nodes, {"x": ([3, 10], F32), "k": ([1], I64)}, [], "top"))
    assert flops == 3 * 10 and "flops" in bounds


def test_topk_with_a_constant_k_is_exact() -> None:
    nodes = [helper.make_node("TopK", ["x", "k"], ["top", "index"])]
    flops, bounds = _relu(_relu_after(nodes, {"x": ([3, 10], F32)}, [_const("k", [4])], "top"))
    assert (flops, bounds) == (3 * 4, ())


def test_unique_keeps_at_most_every_element() -> None:
    nodes = [helper.make_node("Unique", ["x"], ["values"])]
    flops, bounds = _relu(_relu_after(nodes, {"x": ([2, 5], F32)}, [], "values"))
    assert flops == 10 and "flops" in bounds


# ---- a bound is carried only where a larger value never gives a smaller output ----------------

def _count_then_slice(mask: int, starts: str, ends: str) -> onnx.ModelProto:
    """N = NonZero(mask[mask]).shape[1] (N <= mask, known only as that bound); then
    tail = Slice(v[1000, 64], starts, ends) on axis 0 and y = tail x w[64, 64]."""
    nodes = [
        helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
        helper.make_node("Shape", ["nz"], ["nz_shape"], name="nz_shape"),
        helper.make_node("Slice", ["nz_shape", "one", "two"], ["count"], name="count"),
        helper.make_node("Slice", ["v", starts, ends, "zero"], ["tail"], name="tail"),
        helper.make_node("MatMul", ["tail", "w"], ["y"], name="mm"),
    ]
    inits = [_const("one", [1]), _const("two", [2]), _const("zero", [0]), _const("end", [1000]),
             numpy_helper.from_array(np.zeros((64, 64), np.float32), "w")]
    return _model(nodes, {"mask": ([mask], F32), "v": ([1000, 64], F32)}, inits)


def test_a_bound_where_a_larger_value_gives_a_smaller_output_makes_what_follows_unknown() -> None:
    # tail = v[N:1000] has 1000 - N rows: from 0 (N = 1000) to 1000 (N = 0), so the MatMul does
    # between 0 and 1000 x 64 x 64 = 4,096,000 MACs. Taking N at its bound 1000 gave 0 rows (0 MACs,
    # reported exact); with mask[600], N <= 600 gave 400 x 64 x 64 = 1,638,400 "at most", below
    # the 4,096,000 the graph runs at N = 0. Neither is a count: the MatMul is unresolved.
    for mask in (1000, 600):
        profile = profile_model(_count_then_slice(mask, "count", "end"))
        mm = profile.layer("mm")
        assert (mm.status, mm.macs, mm.flops) == ("unresolved", None, None)
        assert profile.partial and profile.layer("tail").output_bytes is None
        assert not profile.is_upper_bound("macs")
        assert any(note.startswith("Slice 'tail': input 1 ('count') depends on data") for note in profile.notes)


def test_a_bound_in_a_slice_end_stays_an_upper_bound() -> None:
    # tail = v[0:N] has N <= 1000 rows: at most 1000 x 64 x 64 = 4,096,000 MACs, an upper bound
    profile = profile_model(_count_then_slice(1000, "zero", "count"))
    mm = profile.layer("mm")
    assert (mm.status, mm.macs) == ("costed", 1000 * 64 * 64) and "macs" in mm.upper_bounds
    assert not profile.partial and profile.is_upper_bound("macs")


def test_a_bound_subtracted_from_a_constant_is_not_a_bound() -> None:
    # rest = 1000 - N: the larger N, the smaller rest, so v[0:rest] is not known (taking N = 1000
    # would give 0 rows, though N = 0 runs 1000 x 64 x 64 MACs)
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
             helper.make_node("Shape", ["nz"], ["nz_shape"], name="nz_shape"),
             helper.make_node("Slice", ["nz_shape", "one", "two"], ["count"], name="count"),
             helper.make_node("Sub", ["end", "count"], ["rest"], name="rest"),
             helper.make_node("Sub", ["count", "zero"], ["same"], name="same"),
             helper.make_node("Mul", ["count", "minus_one"], ["negated"], name="negated"),
             helper.make_node("Add", ["negated", "end"], ["rest2"], name="rest2"),
             helper.make_node("Slice", ["v", "zero", "rest2", "zero"], ["c"], name="c"),
             helper.make_node("MatMul", ["c", "w"], ["yc"], name="mm_c"),
             helper.make_node("Slice", ["v", "zero", "rest", "zero"], ["a"], name="a"),
             helper.make_node("Slice", ["v", "zero", "same", "zero"], ["b"], name="b"),
             helper.make_node("MatMul", ["a", "w"], ["ya"], name="mm_a"),
             helper.make_node("MatMul", ["b", "w"], ["y"], name="mm_b")]
    inits = [_const("one", [1]), _const("two", [2]), _const("zero", [0]), _const("end", [1000]),
             _const("minus_one", [-1]), numpy_helper.from_array(np.zeros((64, 64), np.float32), "w")]
    model = _model(nodes, {"mask": ([1000], F32), "v": ([1000, 64], F32)}, inits)
    model.graph.output.extend([helper.make_tensor_value_info(name, F32, None) for name in ("ya", "yc")])
    profile = profile_model(model)
    assert profile.layer("a").output_bytes is None and profile.layer("c").output_bytes is None
    assert profile.layer("mm_a").status == "unresolved" and profile.layer("mm_a").macs is None
    # N x -1 + 1000 is 1000 - N again: a product with a negative number does not keep a bound
    assert profile.layer("mm_c").status == "unresolved" and profile.layer("mm_c").macs is None
    # N - 0: Sub never keeps a bound (N - c can be negative, and a product of it then shrinks
    # as N grows), so v[0:N - 0] is unknown too: conservative, never too small
    assert profile.layer("mm_b").status == "unresolved" and profile.layer("mm_b").macs is None


def test_range_from_a_bound_start_is_unknown_and_to_a_bound_limit_is_a_bound() -> None:
    # Range(N, 1000, 1) has 1000 - N elements (0 at the bound): unknown; Range(0, N, 1) has
    # N <= 1000: at most 1000 elements, and Relu on it at most 1000 FLOPs
    def model(start: str, limit: str) -> onnx.ModelProto:
        nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
                 helper.make_node("Shape", ["nz"], ["nz_shape"], name="nz_shape"),
                 helper.make_node("Gather", ["nz_shape", "idx"], ["count"], name="count", axis=0),
                 helper.make_node("Range", [start, limit, "step"], ["r"], name="range"),
                 helper.make_node("Cast", ["r"], ["f"], name="cast", to=F32),
                 helper.make_node("Relu", ["f"], ["y"], name="relu")]
        inits = [_const("idx", 1), _const("lo", 0), _const("hi", 1000), _const("step", 1)]
        return _model(nodes, {"mask": ([1000], F32)}, inits)

    relu = profile_model(model("count", "hi")).layer("relu")
    assert (relu.status, relu.flops) == ("unresolved", None)
    relu = profile_model(model("lo", "count")).layer("relu")
    assert relu.flops == 1000 and "flops" in relu.upper_bounds


# ---- NonZero of a constant: exact when its value is known, else its worst case ----------------

def _constant_mask_model(mask: np.ndarray) -> onnx.ModelProto:
    """idx = NonZero(mask) (3 of 1000 set); y = Gather(x[1000, 64], idx) x w[64, 64]."""
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
             helper.make_node("Squeeze", ["nz", "zero"], ["idx"], name="sq"),
             helper.make_node("Gather", ["x", "idx"], ["g"], name="gather", axis=0),
             helper.make_node("MatMul", ["g", "w"], ["y"], name="mm")]
    inits = [numpy_helper.from_array(mask, "mask"), _const("zero", [0]),
             numpy_helper.from_array(np.zeros((64, 64), np.float32), "w")]
    return _model(nodes, {"x": ([1000, 64], F32)}, inits)


def _three_of_1000(dtype: type) -> np.ndarray:
    mask = np.zeros(1000, dtype)
    mask[[5, 50, 500]] = 1
    return mask


def test_nonzero_of_a_mask_kept_in_the_file_is_exact() -> None:
    # a bool mask of 1,000 bytes keeps its data (small): NonZero runs before the graph, 3 indices,
    # g = [3, 64], MatMul 3 x 64 x 64 = 12,288 MACs, exact (the worst case was 1000 x 64 x 64)
    profile = profile_model(_constant_mask_model(_three_of_1000(np.bool_)))
    assert profile.totals.macs == 3 * 64 * 64
    assert profile.upper_bounds == () and not profile.partial and profile.notes == ()
    assert profile.layer("gather").output_bytes == 3 * 64 * 4


def test_nonzero_of_a_weight_that_is_not_read_is_its_worst_case() -> None:
    # a float32 mask of 4,000 bytes is a weight: its data is never read, so NonZero's output is
    # at most [1, 1000], g at most [1000, 64], MatMul at most 1000 x 64 x 64 = 4,096,000 MACs
    profile = profile_model(_constant_mask_model(_three_of_1000(np.float32)))
    assert not profile.partial
    assert profile.totals.macs == 1000 * 64 * 64 and profile.is_upper_bound("macs")
    assert "output_bytes" in profile.layer("gather").upper_bounds
    assert any(note.startswith("NonZero 'nz'") and "[1, 1000]" in note and "not read" in note
               for note in profile.notes)


# ---- bounds that used to come out below what the graph runs (review reproducers) -------------

def _rows_from(tail: list, out: str, inits: list, mask_len: int, count: str = "slice",
               opset: int = 17) -> onnx.ModelProto:
    """N = NonZero count (<= mask_len); `tail` computes `out` ([rows]) from n1 = [N] (or the
    scalar n with count="gather"); then y = Expand(x, [rows, 64]) @ W[64, 64]."""
    head = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
            helper.make_node("Shape", ["nz"], ["s"], name="s")]
    if count == "gather":
        head.append(helper.make_node("Gather", ["s", "one0"], ["n"], name="n", axis=0))
    else:
        head.append(helper.make_node("Slice", ["s", "one1", "two1"], ["n1"], name="n1"))
    nodes = head + tail + [helper.make_node("Concat", [out, "c64"], ["tgt"], name="tgt", axis=0),
                           helper.make_node("Expand", ["x", "tgt"], ["e"], name="e"),
                           helper.make_node("MatMul", ["e", "W"], ["y"], name="mm")]
    inits = inits + [_const("one0", 1), _const("one1", [1]), _const("two1", [2]), _const("c64", [64]),
                     numpy_helper.from_array(np.zeros((64, 64), np.float32), "W")]
    model = _model(nodes, {"mask": ([mask_len], F32), "x": ([1, 1], F32)}, inits)
    model.opset_import[0].version = opset
    return model


def _is_unknown(profile: object, layer: str = "mm") -> bool:
    cost = profile.layer(layer)  # type: ignore[attr-defined]
    return cost.macs is None and cost.status in ("unresolved", "unknown") and profile.partial  # type: ignore[attr-defined]


def test_a_square_of_a_count_minus_a_constant_is_unknown() -> None:
    # d = N - 10 with N <= 12: at the bound d = 2, d x d = 4 rows, 4 x 64 x 64 = 16,384 MACs; but
    # N = 0 gives d = -10, d x d = 100 rows, 100 x 64 x 64 = 409,600 MACs: no bound, unknown
    tail = [helper.make_node("Sub", ["n", "ten"], ["d"], name="d"),
            helper.make_node("Mul", ["d", "d"], ["sq"], name="sq"),
            helper.make_node("Unsqueeze", ["sq", "zero1"], ["rows"], name="rows")]
    profile = profile_model(_rows_from(tail, "rows", [_const("ten", 10), _const("zero1", [0])], 12, count="gather"))
    assert _is_unknown(profile)


def test_sign_changing_ops_stop_a_bound() -> None:
    # N <= 10; each row count below is 0 or small at the bound N = 10 but up to 100 at N = 0:
    # 20 - N (N = 0: 20 rows), Min(N - 10, 5)^2 (N = 0: 100), Max(N - 10, -50)^2 (N = 0: 100),
    # ReduceProd([N - 10, N - 10]) (N = 0: 100), Where(true, N - 10, 0)^2 (N = 0: 100): unknown
    cases = {
        "sub": ([helper.make_node("Sub", ["k20", "n1"], ["r"])], [_const("k20", [20])]),
        "min": ([helper.make_node("Sub", ["n1", "k10"], ["a"]), helper.make_node("Min", ["a", "k5"], ["b"]),
                 helper.make_node("Mul", ["b", "b"], ["r"])], [_const("k10", [10]), _const("k5", [5])]),
        "max": ([helper.make_node("Sub", ["n1", "k10"], ["a"]), helper.make_node("Max", ["a", "km"], ["b"]),
                 helper.make_node("Mul", ["b", "b"], ["r"])], [_const("k10", [10]), _const("km", [-50])]),
        "prod": ([helper.make_node("Sub", ["n1", "k10"], ["a"]), helper.make_node("Concat", ["a", "a"], ["b"], axis=0),
                  helper.make_node("ReduceProd", ["b"], ["r"], keepdims=1)], [_const("k10", [10])]),
        "add_negative": ([helper.make_node("Add", ["n1", "km10"], ["a"]), helper.make_node("Mul", ["a", "a"], ["r"])],
                         [_const("km10", [-10])]),
    }
    for name, (tail, inits) in cases.items():
        assert _is_unknown(profile_model(_rows_from(tail, "r", inits, 10))), name


def test_a_loop_whose_trip_count_is_a_square_of_a_count_minus_a_constant_is_unknown() -> None:
    # M = (N - 10) x (N - 10), N <= 10: 0 trips at the bound, but N = 0 runs 100 trips x 64 x 64
    # MACs = 409,600: the trip count is not known, the Loop is unresolved
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("MatMul", ["x64", "W"], ["mm"])], "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("c_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), helper.make_tensor_value_info("mm", F32, [1, 64])])
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["s"], name="s"),
             helper.make_node("Gather", ["s", "one"], ["n"], name="n", axis=0),
             helper.make_node("Sub", ["n", "ten"], ["d"], name="d"), helper.make_node("Mul", ["d", "d"], ["M"], name="M"),
             helper.make_node("Loop", ["M", ""], ["y"], name="loop", body=body)]
    inits = [_const("one", 1), _const("ten", 10), numpy_helper.from_array(np.zeros((64, 64), np.float32), "W")]
    profile = profile_model(_model(nodes, {"mask": ([10], F32), "x64": ([1, 64], F32)}, inits))
    assert _is_unknown(profile, "loop")


def test_a_value_whose_length_is_a_bound_is_not_read_by_position() -> None:
    # pre = C[:N] with C = [100, 0] and N <= 2: at the bound pre = [100, 0], but N = 1 gives [100].
    # ReduceMin: bound 0 rows, real 100 (100 x 64 x 64 = 409,600 MACs); ReduceProd likewise;
    # pre[-1] and pre[-1:]: bound 0, real 100; Concat(pre, [500, 7])[1]: bound 0, real 500
    # (2,048,000 MACs): each is unknown, never 0
    head = [helper.make_node("Slice", ["C", "zero1", "n1"], ["pre"])]
    common = [_const("C", [100, 0]), _const("zero1", [0])]
    cases = {
        "ReduceMin": ([helper.make_node("ReduceMin", ["pre"], ["r"], keepdims=1)], []),
        "ReduceProd": ([helper.make_node("ReduceProd", ["pre"], ["r"], keepdims=1)], []),
        "Gather-1": ([helper.make_node("Gather", ["pre", "m1"], ["r"], axis=0)], [_const("m1", [-1])]),
        "Slice-1:": ([helper.make_node("Slice", ["pre", "m1", "big"], ["r"])], [_const("m1", [-1]), _const("big", [9])]),
        "ConcatShift": ([helper.make_node("Concat", ["pre", "k"], ["pk"], axis=0),
                         helper.make_node("Gather", ["pk", "i1"], ["r"], axis=0)],
                        [_const("k", [500, 7]), _const("i1", [1])]),
    }
    for name, (tail, inits) in cases.items():
        assert _is_unknown(profile_model(_rows_from(head + tail, "r", common + inits, 2))), name


def test_a_squeeze_without_axes_of_a_bounded_shape_is_unknown() -> None:
    # nz is [1, N] with N <= 8; Squeeze without axes gives [8] at the bound but [] when N = 1, so
    # Concat(Shape(sq), [64, 64])[0:2] is [8, 64] at the bound and [64, 64] when N = 1:
    # 64 x 64 x 64 = 262,144 MACs, above the 8 x 64 x 64 = 32,768 the bound would give: unknown
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
             helper.make_node("Squeeze", ["nz"], ["sq"], name="sq"),
             helper.make_node("Shape", ["sq"], ["ssq"], name="ssq"),
             helper.make_node("Shape", ["W"], ["sw"], name="sw"),
             helper.make_node("Concat", ["ssq", "sw"], ["cat"], name="cat", axis=0),
             helper.make_node("Slice", ["cat", "zero1", "two1"], ["tgt"], name="tgt"),
             helper.make_node("Expand", ["x", "tgt"], ["e"], name="e"),
             helper.make_node("MatMul", ["e", "W"], ["y"], name="mm")]
    inits = [_const("zero1", [0]), _const("two1", [2]), numpy_helper.from_array(np.zeros((64, 64), np.float32), "W")]
    model = _model(nodes, {"mask": ([8], F32), "x": ([1, 1], F32)}, inits)
    model.opset_import[0].version = 11
    assert _is_unknown(profile_model(model))


def test_a_narrowing_cast_stops_a_bound_and_a_widening_one_keeps_it() -> None:
    # N <= 300; Cast to uint8 wraps: 300 -> 44 at the bound, but N = 200 stays 200 rows
    # (200 x 64 x 64 = 819,200 MACs > 44 x 64 x 64): unknown. A Cast to int64 (as wide) keeps the
    # bound: at most 300 x 64 x 64 = 1,228,800 MACs
    narrowing = [helper.make_node("Cast", ["n1"], ["narrow"], to=TensorProto.UINT8),
                 helper.make_node("Cast", ["narrow"], ["r"], to=I64)]
    assert _is_unknown(profile_model(_rows_from(narrowing, "r", [], 300)))
    same_width = [helper.make_node("Cast", ["n1"], ["r"], to=I64)]
    mm = profile_model(_rows_from(same_width, "r", [], 300)).layer("mm")
    assert mm.macs == 300 * 64 * 64 and "macs" in mm.upper_bounds


# ---- notes name why a shape after a bound is not known, and never blame a hard-coded target ---

def test_a_bound_stopped_in_value_arithmetic_is_named_where_the_shape_goes_unknown() -> None:
    # target = Concat(N, [-1]) with N <= 1000: Reshape(v[1000, 64], target) is [N, 64,000 / N], a
    # larger N giving a smaller -1 dim, so the Concat stops the bound and the shape is unknown; the
    # note names the Reshape's input and the Concat that stopped the bound
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
             helper.make_node("Shape", ["nz"], ["s"], name="s"),
             helper.make_node("Slice", ["s", "one", "two"], ["count"], name="count"),
             helper.make_node("Concat", ["count", "minus_one"], ["target"], name="join", axis=0),
             helper.make_node("Reshape", ["v", "target"], ["r"], name="r"),
             helper.make_node("MatMul", ["r", "w"], ["y"], name="mm")]
    inits = [_const("one", [1]), _const("two", [2]), _const("minus_one", [-1]),
             numpy_helper.from_array(np.zeros((64, 64), np.float32), "w")]
    profile = profile_model(_model(nodes, {"mask": ([1000], F32), "v": ([1000, 64], F32)}, inits))
    assert profile.layer("mm").macs is None and profile.partial
    assert ("Reshape 'r': input 1 ('target') depends on data known only as an upper bound, and Concat 'join' before it "
            "can turn a larger value into a smaller one: its output shape, and the shapes that follow from it, are not "
            "known") in profile.notes
    assert not any("hard-coded" in note for note in profile.notes)


def test_a_stopped_bound_is_named_once_through_the_ops_after_it() -> None:
    # rest = 1000 - N (Sub stops the bound), then Unsqueeze(rest) and Concat: the Slice's end is
    # unknown; the note names the Sub, once, though two Slices read it
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
             helper.make_node("Shape", ["nz"], ["nz_shape"], name="nz_shape"),
             helper.make_node("Slice", ["nz_shape", "one", "two"], ["count"], name="count"),
             helper.make_node("Sub", ["end", "count"], ["rest"], name="rest"),
             helper.make_node("Identity", ["rest"], ["rest_copy"], name="copy"),
             helper.make_node("Slice", ["v", "zero", "rest_copy", "zero"], ["a"], name="a"),
             helper.make_node("Slice", ["v", "zero", "rest", "zero"], ["b"], name="b"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    inits = [_const("one", [1]), _const("two", [2]), _const("zero", [0]), _const("end", [1000])]
    profile = profile_model(_model(nodes, {"mask": ([1000], F32), "v": ([1000, 64], F32)}, inits))
    named = [note for note in profile.notes if "Sub 'rest' before it" in note]
    assert named == ["Slice 'a': input 2 ('rest_copy') depends on data known only as an upper bound, and Sub 'rest' "
                     "before it can turn a larger value into a smaller one: its output shape, and the shapes that "
                     "follow from it, are not known"]
    assert profile.layer("add").flops is None


def test_a_constant_target_after_a_bounded_input_is_exact_not_hard_coded() -> None:
    # Reshape(Cast(NonZero(mask)) [1, <=1000], [5, 2]): the input's size depends on data; whenever
    # the Reshape runs its output is [5, 2], so the MatMul after it is exactly 5 x 2 x 64 MACs
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
             helper.make_node("Cast", ["nz"], ["nz_float"], name="cast", to=F32),
             helper.make_node("Reshape", ["nz_float", "target"], ["r"], name="r"),
             helper.make_node("MatMul", ["r", "w"], ["y"], name="mm")]
    inits = [_const("target", [5, 2]), numpy_helper.from_array(np.zeros((2, 64), np.float32), "w")]
    profile = profile_model(_model(nodes, {"mask": ([1000], F32)}, inits))
    mm = profile.layer("mm")
    assert (mm.status, mm.macs, mm.upper_bounds) == ("costed", 5 * 2 * 64, ())
    assert not any("hard-coded" in note for note in profile.notes) and not profile.partial


def _count_nodes() -> list:
    """N = NonZero(mask).shape[1], N <= the mask's length."""
    return [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"), helper.make_node("Shape", ["nz"], ["s"], name="s"),
            helper.make_node("Slice", ["s", "one", "two"], ["count"], name="count")]


_COUNT_INITS = [_const("one", [1]), _const("two", [2]), _const("zero", [0]), _const("end", [1000])]


def test_the_note_names_the_op_that_stopped_the_bound_not_a_later_one() -> None:
    # rest = 1000 - N (the Sub stops the bound), then Add(rest, N) reads the bound again: the note
    # names the Sub, not the Add
    nodes = _count_nodes() + [helper.make_node("Sub", ["end", "count"], ["rest"], name="rest"),
                              helper.make_node("Add", ["rest", "count"], ["end2"], name="add"),
                              helper.make_node("Slice", ["v", "zero", "end2", "zero"], ["a"], name="slice"),
                              helper.make_node("Relu", ["a"], ["y"], name="relu")]
    profile = profile_model(_model(nodes, {"mask": ([1000], F32), "v": ([1000, 64], F32)}, _COUNT_INITS))
    stopped = [note for note in profile.notes if "before it can turn" in note]
    assert len(stopped) == 1 and "Slice 'slice': input 2 ('end2')" in stopped[0] and "Sub 'rest' before it" in stopped[0]


def test_no_note_blames_a_bound_for_a_shape_unknown_for_another_reason() -> None:
    # Slice(v, 0, e) with e a graph input: unknown because of e, whatever Sub(1000, N) feeds; and a
    # Reshape target joining N with a dim of x [2, seq, 4] is unknown because seq is
    # (also when the value left unknown mixes the stopped bound with e, or with seq)
    rest = helper.make_node("Sub", ["end", "count"], ["rest"], name="rest")
    slice_to_end = [helper.make_node("Slice", ["v", "zero", "end_", "zero"], ["a"], name="slice"),
                    helper.make_node("Relu", ["a"], ["y"], name="relu")]
    with_e = {"mask": ([1000], F32), "v": ([1000, 64], F32), "e": ([1], I64)}
    cases = [
        ([helper.make_node("Sub", ["end", "count"], ["rest"], name="rest"),
          helper.make_node("Slice", ["v", "zero", "e", "zero"], ["a"], name="slice"),
          helper.make_node("Mul", ["e", "rest"], ["em"], name="mul"),
          helper.make_node("Relu", ["a"], ["y"], name="relu")],
         with_e),
        ([rest, helper.make_node("Mul", ["e", "rest"], ["end_"], name="mul")] + slice_to_end, with_e),
        ([rest, helper.make_node("Max", ["rest", "e"], ["end_"], name="max")] + slice_to_end, with_e),
        ([rest, helper.make_node("Shape", ["x"], ["xs"], name="xs"),
          helper.make_node("Slice", ["xs", "one", "two"], ["xseq"], name="xseq"),
          helper.make_node("Concat", ["xseq", "rest"], ["target"], name="join", axis=0),
          helper.make_node("Reshape", ["v", "target"], ["r"], name="r"),
          helper.make_node("ReduceSum", ["r"], ["y"], name="sum")],
         {"mask": ([1000], F32), "v": ([1000, 64], F32), "x": ([2, "seq", 4], F32)}),
        ([helper.make_node("Shape", ["x"], ["xs"], name="xs"),
          helper.make_node("Slice", ["xs", "one", "two"], ["xseq"], name="xseq"),
          helper.make_node("Concat", ["xseq", "count"], ["target"], name="join", axis=0),
          helper.make_node("Reshape", ["v", "target"], ["r"], name="r"),
          helper.make_node("ReduceSum", ["r"], ["y"], name="sum")],
         {"mask": ([1000], F32), "v": ([1000, 64], F32), "x": ([2, "seq", 4], F32)}),
    ]
    for tail, inputs in cases:
        profile = profile_model(_model(_count_nodes() + tail, inputs, _COUNT_INITS))
        assert profile.partial and not any("upper bound, and" in note for note in profile.notes), profile.notes


def test_an_op_with_a_worst_case_rule_is_not_said_unknown_after_a_stopped_bound() -> None:
    # TopK(v[1000], k = 1000 - N): k is not a bound, but TopK keeps at most 1000: counted at that,
    # and no note says its shape is not known
    nodes = _count_nodes() + [helper.make_node("Sub", ["end", "count"], ["k"], name="rest"),
                              helper.make_node("TopK", ["v", "k"], ["top", "idx"], name="topk"),
                              helper.make_node("Relu", ["top"], ["y"], name="relu")]
    profile = profile_model(_model(nodes, {"mask": ([1000], F32), "v": ([1000], F32)}, _COUNT_INITS))
    assert profile.layer("relu").flops == 1000 and "flops" in profile.layer("relu").upper_bounds
    assert not any("are not known" in note for note in profile.notes)


def test_a_bound_found_while_costing_reaches_the_rows_after_it() -> None:
    # nz = NonZero(W) of a weight whose data is not read: a constant nothing asks for before
    # costing (m's shape is declared). CumSum's rule reads its axis, computed from nz, and so
    # finds nz's worst case [2, 300 x 300]; the Mul after it reads all of nz: 2 x 90,000 x 8
    # bytes, at most.
    weight = numpy_helper.from_array(np.ones((300, 300), np.float32), "W")  # > 65,536 elements: not read
    nodes = [helper.make_node("NonZero", ["W"], ["nz"], name="nz"),
             helper.make_node("ReduceMax", ["nz"], ["axis"], name="axis", keepdims=0),
             helper.make_node("CumSum", ["x", "axis"], ["cs"], name="cs"),
             helper.make_node("Mul", ["nz", "k"], ["m"], name="m")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [4]),
                                           helper.make_tensor_value_info("k", I64, [1])],
                              [helper.make_tensor_value_info("cs", F32, [4]),
                               helper.make_tensor_value_info("m", I64, [2, 90_000])], [weight])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert profile.layer("nz").output_bytes is None  # (its row was made before the bound was found)
    mul = profile.layer("m")
    assert mul.bytes_read == 2 * 90_000 * 8 + 8 and "bytes_read" in mul.upper_bounds
    assert profile.is_upper_bound("bytes_read") and profile.is_upper_bound("memory_traffic_bytes")
