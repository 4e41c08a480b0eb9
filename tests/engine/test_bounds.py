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
    # would give 0 rows, though N = 0 runs 1000 x 64 x 64 MACs); N - 0 (what is subtracted from)
    # keeps the bound: v[0:N] <= 1000 rows, at most 1000 x 64 x 64 = 4,096,000 MACs
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
    assert profile.layer("mm_b").macs == 1000 * 64 * 64 and "macs" in profile.layer("mm_b").upper_bounds


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
