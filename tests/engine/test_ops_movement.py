"""Data movement (free ops) and resampling: closed-form counts on one-node graphs."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from pytest_maccbudget.engine.graph import prepare_graph
from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.types import OpCost, UnresolvedShape, UnsupportedAttributes
from tests.engine.onnx_build import node_cost

I64 = TensorProto.INT64


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def floats(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


# op -> (inputs, attrs, opset); every free op on a valid one-node graph
FREE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "Reshape": ({"x": [2, 3, 4], "s": ints(6, 4)}, {}, 21),
    "Flatten": ({"x": [2, 3, 4]}, {}, 21),
    "Squeeze": ({"x": [2, 1, 4], "axes": ints(1)}, {}, 21),
    "Unsqueeze": ({"x": [2, 4], "axes": ints(1)}, {}, 21),
    "Identity": ({"x": [2, 4]}, {}, 21),
    "Dropout": ({"x": [2, 4]}, {}, 21),
    "Concat": ({"a": [2, 4], "b": [2, 3]}, {"axis": 1}, 21),
    "Transpose": ({"x": [2, 3, 4]}, {"perm": [2, 0, 1]}, 21),
    "Gather": ({"x": [10, 4], "i": ([3], I64)}, {}, 21),
    "GatherElements": ({"x": [3, 4], "i": ([3, 2], I64)}, {"axis": 1}, 21),
    "GatherND": ({"x": [3, 4], "i": ([2, 2], I64)}, {}, 21),
    "Slice": ({"x": [10, 4], "starts": ints(1), "ends": ints(5)}, {}, 21),
    "Pad": ({"x": [2, 3], "pads": ints(1, 1, 1, 1)}, {"mode": "reflect"}, 21),
    "Split": ({"x": [4, 6], "split": ints(2, 4)}, {"axis": 1}, 21),
    "Tile": ({"x": [2, 3], "r": ints(2, 2)}, {}, 21),
    "Expand": ({"x": [1, 3], "s": ints(4, 3)}, {}, 21),
    "DepthToSpace": ({"x": [1, 8, 2, 2]}, {"blocksize": 2}, 21),
    "SpaceToDepth": ({"x": [1, 2, 4, 4]}, {"blocksize": 2}, 21),
    "Scatter": ({"x": [3, 4], "i": ([1, 4], I64), "u": [1, 4]}, {}, 10),
    "Compress": ({"x": [3, 4], "c": np.array([True, False, True])}, {"axis": 0}, 21),
    "ReverseSequence": ({"x": [4, 2, 3], "lens": ints(1, 2)}, {"batch_axis": 1, "time_axis": 0}, 21),
    "Trilu": ({"x": [4, 4]}, {}, 21),
    "CenterCropPad": ({"x": [5, 6], "s": ints(4, 8)}, {}, 21),
    "TensorScatter": ({"cache": [1, 2, 8, 4], "update": [1, 2, 1, 4]}, {}, 24),
    "Shape": ({"x": [2, 3]}, {}, 21),
    "Size": ({"x": [2, 3]}, {}, 21),
    "Constant": ({}, {"value_floats": [1.0, 2.0]}, 21),
    "ConstantOfShape": ({"s": ints(2, 3)}, {}, 21),
    "Cast": ({"x": [2, 3]}, {"to": TensorProto.FLOAT16}, 21),
    "CastLike": ({"x": [2, 3], "t": ([1], TensorProto.FLOAT16)}, {}, 21),
    "BitCast": ({"x": [2, 3]}, {"to": TensorProto.INT32}, 26),
    "Range": ({"start": ints(0), "limit": ints(10), "delta": ints(1)}, {}, 21),
    "EyeLike": ({"x": [3, 3]}, {}, 21),
    "OneHot": ({"i": ([4], I64), "depth": ints(10), "values": floats(0.0, 1.0)}, {}, 21),
    "NonZero": ({"x": [3, 4]}, {}, 21),
    "RandomNormal": ({}, {"shape": [2, 3]}, 21),
    "RandomUniform": ({}, {"shape": [2, 3]}, 21),
    "RandomNormalLike": ({"x": [2, 3]}, {}, 21),
    "RandomUniformLike": ({"x": [2, 3]}, {}, 21),
    "Bernoulli": ({"x": [2, 3]}, {}, 21),
    "Multinomial": ({"x": [2, 3]}, {"sample_size": 4}, 21),
    "SplitToSequence": ({"x": [4, 6]}, {"axis": 1}, 21),
    "SequenceConstruct": ({"a": [2, 3], "b": [2, 3]}, {}, 21),
    "SequenceEmpty": ({}, {}, 21),
    "Optional": ({"x": [2, 3]}, {}, 21),
}


@pytest.mark.parametrize("op_type", sorted(FREE_CASES))
def test_free_op_costs_zero(op_type: str) -> None:
    inputs, attrs, opset = FREE_CASES[op_type]
    cost = node_cost(op_type, inputs, attrs=attrs, opset=opset)
    assert (cost.macs, cost.flops) == (0, 0)
    assert REGISTRY.lookup(op_type).free


def _sequence_input_cost(op_type: str, extra_inputs: list[helper.ValueInfoProto], input_names: list[str],
                         optional: bool = False, **attrs: Any) -> OpCost:
    """One node whose first input is a tensor sequence (or an optional tensor)."""
    if optional:
        first = helper.make_value_info("s", helper.make_optional_type_proto(
            helper.make_tensor_type_proto(TensorProto.FLOAT, [2, 3])))
    else:
        first = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2, 3])
    node = helper.make_node(op_type, ["s"] + input_names, ["y"], name="node", **attrs)
    graph = helper.make_graph([node], "g", [first] + extra_inputs, [helper.make_value_info("y", helper.TypeProto())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    prepared = prepare_graph(model, REGISTRY)
    view = prepared.view(prepared.nodes[0])
    entry = REGISTRY.lookup(op_type)
    assert entry is not None and entry.free
    return entry.cost(view)


POSITION = helper.make_tensor_value_info("pos", I64, [])
TENSOR = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])


@pytest.mark.parametrize("op_type, extra, names, optional, attrs", [
    ("SequenceAt", [POSITION], ["pos"], False, {}),
    ("SequenceInsert", [TENSOR], ["t"], False, {}),
    ("SequenceErase", [], [], False, {}),
    ("SequenceLength", [], [], False, {}),
    ("ConcatFromSequence", [], [], False, {"axis": 0}),
    ("OptionalGetElement", [], [], True, {}),
    ("OptionalHasElement", [], [], True, {}),
])
def test_sequence_and_optional_ops_cost_zero(op_type: str, extra: list, names: list[str], optional: bool,
                                             attrs: dict[str, Any]) -> None:
    cost = _sequence_input_cost(op_type, extra, names, optional, **attrs)
    assert (cost.macs, cost.flops) == (0, 0)


def test_views_and_in_place_ops_are_registry_traits() -> None:
    from pytest_maccbudget.engine.registry import ALIAS, IN_PLACE

    views = {e.op_type for e in REGISTRY if e.domain == "" and e.traits.buffer == ALIAS}
    assert views == {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
    assert {e.op_type for e in REGISTRY if e.traits.buffer == IN_PLACE} == {"Concat"}
    assert REGISTRY.traits("Dropout").inference_outputs == 1


# ---- ScatterND / ScatterElements -------------------------------------------------------

@pytest.mark.parametrize("reduction, expected", [("none", 0), ("add", 2 * 4), ("mul", 2 * 4), ("max", 2 * 4), ("min", 2 * 4)])
def test_scatter_nd(reduction: str, expected: int) -> None:
    cost = node_cost("ScatterND", {"x": [4, 4], "i": ([2, 1], I64), "u": [2, 4]}, attrs={"reduction": reduction})
    assert cost.flops == expected


@pytest.mark.parametrize("reduction, expected", [("none", 0), ("add", 3 * 2)])
def test_scatter_elements(reduction: str, expected: int) -> None:
    cost = node_cost("ScatterElements", {"x": [4, 4], "i": ([3, 2], I64), "u": [3, 2]}, attrs={"reduction": reduction})
    assert cost.flops == expected


def test_scatter_elements_old_opset_without_reduction() -> None:
    assert node_cost("ScatterElements", {"x": [4, 4], "i": ([3, 2], I64), "u": [3, 2]}, opset=11).flops == 0


# ---- Resize / Upsample -----------------------------------------------------------------

def test_resize_nearest_is_a_copy() -> None:
    cost = node_cost("Resize", {"x": [1, 3, 4, 4], "roi": None, "scales": floats(1, 1, 2, 2)}, attrs={"mode": "nearest"})
    assert (cost.macs, cost.flops) == (0, 0)


def test_resize_bilinear_is_three_lerps() -> None:
    # output 1*3*8*8 = 192 elements, 3 lerps x 3 FLOPs = 9 each
    cost = node_cost("Resize", {"x": [1, 3, 4, 4], "roi": None, "scales": floats(1, 1, 2, 2)}, attrs={"mode": "linear"})
    assert cost.flops == 9 * 1 * 3 * 8 * 8


def test_resize_linear_one_axis() -> None:
    # only W changes: 1-D lerp, 3 FLOPs per output
    cost = node_cost("Resize", {"x": [1, 3, 4, 4], "roi": None, "scales": floats(1, 1, 1, 2)}, attrs={"mode": "linear"})
    assert cost.flops == 3 * 1 * 3 * 4 * 8


def test_resize_trilinear() -> None:
    cost = node_cost("Resize", {"x": [1, 2, 4, 4, 4], "roi": None, "scales": floats(1, 1, 2, 2, 2)}, attrs={"mode": "linear"})
    assert cost.flops == 21 * 2 * 8 * 8 * 8


def test_resize_bicubic() -> None:
    # 4 cubic rows (7 each) + 1 cubic across them: 5 * 7 = 35 per output
    cost = node_cost("Resize", {"x": [1, 3, 4, 4], "roi": None, "scales": floats(1, 1, 2, 2)}, attrs={"mode": "cubic"})
    assert cost.flops == 35 * 3 * 8 * 8


def test_resize_sizes_and_axes_attribute() -> None:
    cost = node_cost("Resize", {"x": [2, 3, 5, 5], "roi": None, "scales": None, "sizes": ints(10, 15)},
                     attrs={"mode": "linear", "axes": [2, 3]})
    assert cost.flops == 9 * 2 * 3 * 10 * 15


def test_resize_antialias_downscale_widens_taps() -> None:
    # 8 -> 4 on H and W with antialias: 2 * ceil(8/4) = 4 taps per axis:
    # 4 * (2*4 - 1) + 1 * (2*4 - 1) = 35 per output, 48 outputs
    cost = node_cost("Resize", {"x": [1, 3, 8, 8], "roi": None, "scales": floats(1, 1, 0.5, 0.5)},
                     attrs={"mode": "linear", "antialias": 1})
    assert cost.flops == 35 * 3 * 4 * 4


def test_resize_downscale_without_antialias_is_plain_bilinear() -> None:
    cost = node_cost("Resize", {"x": [1, 3, 8, 8], "roi": None, "scales": floats(1, 1, 0.5, 0.5)}, attrs={"mode": "linear"})
    assert cost.flops == 9 * 3 * 4 * 4


def test_resize_tf_crop_and_resize_counts_cropped_axis() -> None:
    # same size, but H is cropped to [0, 0.5]: 1-D interpolation along H, 3 per output
    roi = floats(0, 0, 0, 0, 1, 1, 0.5, 1)
    cost = node_cost("Resize", {"x": [1, 3, 8, 8], "roi": roi, "scales": None, "sizes": ints(1, 3, 8, 8)},
                     attrs={"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"})
    assert cost.flops == 3 * 3 * 8 * 8


def test_resize_tf_crop_and_resize_needs_roi_value() -> None:
    with pytest.raises(UnresolvedShape):
        node_cost("Resize", {"x": [1, 3, 8, 8], "roi": [8], "scales": None, "sizes": ints(1, 3, 4, 4)},
                  attrs={"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"})


def test_resize_opset_10_scales_input() -> None:
    cost = node_cost("Resize", {"x": [1, 3, 4, 4], "scales": floats(1, 1, 2, 2)}, attrs={"mode": "linear"}, opset=10)
    assert cost.flops == 9 * 3 * 8 * 8


def test_resize_runtime_scales_are_unresolved() -> None:
    with pytest.raises(UnresolvedShape):
        node_cost("Resize", {"x": [1, 3, 4, 4], "roi": None, "scales": [4]}, attrs={"mode": "linear"})


@pytest.mark.parametrize("mode, expected", [("nearest", 0), ("linear", 9 * 3 * 8 * 8), ("bilinear", 9 * 3 * 8 * 8)])
def test_upsample_opset_9_scales_input(mode: str, expected: int) -> None:
    cost = node_cost("Upsample", {"x": [1, 3, 4, 4], "scales": floats(1, 1, 2, 2)}, attrs={"mode": mode}, opset=9)
    assert cost.flops == expected


def test_upsample_opset_7_scales_attribute() -> None:
    cost = node_cost("Upsample", {"x": [1, 3, 4, 4]}, attrs={"mode": "linear", "scales": [1.0, 1.0, 2.0, 2.0]}, opset=7)
    assert cost.flops == 9 * 3 * 8 * 8


# ---- GridSample / AffineGrid / Col2Im --------------------------------------------------

@pytest.mark.parametrize("mode, opset, expected", [
    # outputs N*C*Hout*Wout = 1*3*5*6 = 90; grid points N*Hout*Wout = 30, 2 axes each
    ("linear", 21, 9 * 90 + 30 * 2 * 5),
    ("bilinear", 16, 9 * 90 + 30 * 2 * 5),
    ("nearest", 21, 0 * 90 + 30 * 2 * 4),
    ("cubic", 21, 35 * 90 + 30 * 2 * 29),
    ("bicubic", 16, 35 * 90 + 30 * 2 * 29),
])
def test_grid_sample_2d(mode: str, opset: int, expected: int) -> None:
    cost = node_cost("GridSample", {"x": [1, 3, 4, 4], "grid": [1, 5, 6, 2]}, attrs={"mode": mode}, opset=opset)
    assert cost.flops == expected


def test_grid_sample_3d_trilinear() -> None:
    # outputs 2*4*3*3*3 = 216, trilinear 21 each; grid points 2*27 = 54, 3 axes, 5 each
    cost = node_cost("GridSample", {"x": [2, 4, 5, 5, 5], "grid": [2, 3, 3, 3, 3]}, attrs={"mode": "linear"})
    assert cost.flops == 21 * 216 + 54 * 3 * 5


@pytest.mark.parametrize("theta, size, macs, flops", [
    # 2-D: output [2, 5, 6, 2] = 120 coordinates, each a 3-term dot product
    ([2, 2, 3], ints(2, 3, 5, 6), 3 * 120, 5 * 120),
    # 3-D: output [1, 2, 3, 4, 3] = 72 coordinates, each a 4-term dot product
    ([1, 3, 4], ints(1, 1, 2, 3, 4), 4 * 72, 7 * 72),
])
def test_affine_grid(theta: list[int], size: np.ndarray, macs: int, flops: int) -> None:
    cost = node_cost("AffineGrid", {"theta": theta, "size": size})
    assert (cost.macs, cost.flops) == (macs, flops)


def test_col2im_one_add_per_column_entry() -> None:
    # input [1, C * 2 * 2 = 12, L = 16] (C = 3, 4x4 blocks of a 5x5 image)
    cost = node_cost("Col2Im", {"x": [1, 12, 16], "image_shape": ints(5, 5), "block_shape": ints(2, 2)})
    assert cost.flops == 1 * 12 * 16


def test_resize_unknown_mode_engine_rule() -> None:
    from pytest_maccbudget.engine.ops.movement import resize_taps
    with pytest.raises(UnsupportedAttributes):
        resize_taps("area", 4, 2, False)
