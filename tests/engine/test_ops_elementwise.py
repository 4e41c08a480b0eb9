"""Element-wise math ops: one-node graphs, expected = output elements x FLOPs per element."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.types import UnresolvedShape, UnsupportedAttributes
from tests.engine.onnx_build import node_cost

F = TensorProto.FLOAT
I32 = TensorProto.INT32
U8 = TensorProto.UINT8
B = TensorProto.BOOL


# --- binary ops, same shape: 1 FLOP per output element ------------------------------------

BINARY_CASES = [
    # (op, inputs, attrs, expected FLOPs)
    ("Add", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Sub", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Mul", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Div", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Pow", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Mod", {"a": [8, 16], "b": [8, 16]}, {"fmod": 1}, 1 * 8 * 16),
    ("Mod", {"a": ([8, 16], I32), "b": ([8, 16], I32)}, {}, 1 * 8 * 16),
    ("BitShift", {"a": ([8, 16], U8), "b": ([8, 16], U8)}, {"direction": "LEFT"}, 1 * 8 * 16),
    ("BitShift", {"a": ([8, 16], U8), "b": ([8, 16], U8)}, {"direction": "RIGHT"}, 1 * 8 * 16),
    ("BitwiseAnd", {"a": ([8, 16], I32), "b": ([8, 16], I32)}, {}, 1 * 8 * 16),
    ("BitwiseOr", {"a": ([8, 16], I32), "b": ([8, 16], I32)}, {}, 1 * 8 * 16),
    ("BitwiseXor", {"a": ([8, 16], I32), "b": ([8, 16], I32)}, {}, 1 * 8 * 16),
    ("And", {"a": ([8, 16], B), "b": ([8, 16], B)}, {}, 1 * 8 * 16),
    ("Or", {"a": ([8, 16], B), "b": ([8, 16], B)}, {}, 1 * 8 * 16),
    ("Xor", {"a": ([8, 16], B), "b": ([8, 16], B)}, {}, 1 * 8 * 16),
    ("Equal", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Greater", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("GreaterOrEqual", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Less", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("LessOrEqual", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    # two-input Max / Min: k - 1 = 1
    ("Max", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
    ("Min", {"a": [8, 16], "b": [8, 16]}, {}, 1 * 8 * 16),
]


@pytest.mark.parametrize("op, inputs, attrs, expected", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
def test_binary_op_one_flop_per_output_element(op, inputs, attrs, expected):
    cost = node_cost(op, inputs, attrs=attrs)
    assert cost.flops == expected
    assert cost.macs == 0


# --- broadcasting: the count follows the OUTPUT elements ----------------------------------

BROADCAST_CASES = [
    ("Add", {"a": [4, 1, 5], "b": [3, 1]}, 4 * 3 * 5),  # output [4, 3, 5]
    ("Add", {"a": [1000], "b": [1]}, 1000),
    ("Sub", {"a": [1], "b": [2, 3, 7]}, 2 * 3 * 7),
    ("Mul", {"a": [2, 3, 1], "b": [1, 1, 7]}, 2 * 3 * 7),  # output [2, 3, 7], inputs 6 and 7
    ("Div", {"a": [1, 64, 56, 56], "b": [64, 1, 1]}, 64 * 56 * 56),
    ("Pow", {"a": [6, 5], "b": [1]}, 6 * 5),
    ("Greater", {"a": [8, 1], "b": [1, 9]}, 8 * 9),
    ("Equal", {"a": [3, 1, 4], "b": [5, 1]}, 3 * 5 * 4),
    ("Max", {"a": [8, 1], "b": [9]}, 8 * 9),
    ("Min", {"a": [1, 9], "b": [8, 1]}, 8 * 9),
]


@pytest.mark.parametrize("op, inputs, expected", BROADCAST_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BROADCAST_CASES)])
def test_binary_broadcast_counts_output_elements(op, inputs, expected):
    cost = node_cost(op, inputs)
    assert cost.flops == expected
    assert cost.macs == 0


def test_add_with_constant_operand():
    cost = node_cost("Add", {"x": [2, 10], "c": np.ones((10,), np.float32)})
    assert cost.flops == 1 * 2 * 10


# --- variadic Sum / Max / Min: k - 1 per output element; Mean: k ------------------------

def test_sum_three_inputs_two_flops_per_output():
    cost = node_cost("Sum", {"a": [2, 3, 4], "b": [2, 3, 4], "c": [2, 3, 4]})
    assert cost.flops == 2 * (2 * 3 * 4)
    assert cost.macs == 0


def test_sum_three_inputs_broadcast():
    cost = node_cost("Sum", {"a": [4, 1], "b": [1, 5], "c": [5]})  # output [4, 5]
    assert cost.flops == 2 * (4 * 5)


def test_sum_single_input_is_a_copy():
    assert node_cost("Sum", {"a": [7, 3]}).flops == 0


def test_max_four_inputs():
    cost = node_cost("Max", {"a": [10, 10], "b": [10, 10], "c": [10, 10], "d": [10, 10]})
    assert cost.flops == 3 * (10 * 10)


def test_min_three_inputs_broadcast():
    cost = node_cost("Min", {"a": [2, 1, 6], "b": [3, 1], "c": [1]})  # output [2, 3, 6]
    assert cost.flops == 2 * (2 * 3 * 6)


def test_mean_three_inputs_two_adds_one_div():
    cost = node_cost("Mean", {"a": [5, 6], "b": [5, 6], "c": [5, 6]})
    assert cost.flops == (2 + 1) * (5 * 6)
    assert cost.macs == 0


def test_mean_two_inputs_broadcast():
    cost = node_cost("Mean", {"a": [5, 1], "b": [6]})  # output [5, 6]
    assert cost.flops == (1 + 1) * (5 * 6)


def test_mean_single_input_is_a_copy():
    assert node_cost("Mean", {"a": [5, 6]}).flops == 0


def test_old_opset_variadic_and_broadcast_attribute_forms():
    assert node_cost("Sum", {"a": [3, 4], "b": [3, 4], "c": [3, 4]}, opset=6).flops == 2 * (3 * 4)
    cost = node_cost("Add", {"a": [2, 3, 4], "b": [3]}, attrs={"broadcast": 1, "axis": 1}, opset=6)
    assert cost.flops == 1 * (2 * 3 * 4)


# --- unary ops: 1 FLOP per element -------------------------------------------------------

UNARY_CASES = [
    ("Abs", F), ("Neg", F), ("Sign", F), ("Reciprocal", F), ("Sqrt", F), ("Exp", F), ("Log", F),
    ("Ceil", F), ("Floor", F), ("Round", F), ("Erf", F),
    ("Sin", F), ("Cos", F), ("Tan", F), ("Asin", F), ("Acos", F), ("Atan", F),
    ("Sinh", F), ("Cosh", F), ("Asinh", F), ("Acosh", F), ("Atanh", F),
    ("IsNaN", F), ("IsInf", F), ("Not", B), ("BitwiseNot", I32),
]


@pytest.mark.parametrize("op, dtype", UNARY_CASES, ids=[c[0] for c in UNARY_CASES])
def test_unary_op_one_flop_per_element(op, dtype):
    cost = node_cost(op, {"x": ([10, 20], dtype)})
    assert cost.flops == 1 * 10 * 20
    assert cost.macs == 0


def test_isinf_detect_attributes_do_not_change_the_count():
    cost = node_cost("IsInf", {"x": [10, 20]}, attrs={"detect_negative": 0})
    assert cost.flops == 1 * 10 * 20


# --- Where: a select, free --------------------------------------------------------------

def test_where_is_free_by_the_select_rule():
    cost = node_cost("Where", {"c": ([4, 1], B), "a": [1, 5], "b": [4, 5]})
    assert cost.flops == 0
    assert cost.macs == 0
    assert REGISTRY.lookup("Where").free


# --- Clip: one compare per bound ------------------------------------------------------

def test_clip_both_bounds_as_inputs():
    cost = node_cost("Clip", {"x": [3, 40], "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
    assert cost.flops == 2 * (3 * 40)
    assert cost.macs == 0


def test_clip_only_max_input():
    cost = node_cost("Clip", {"x": [3, 40], "lo": None, "hi": np.array(6, np.float32)})
    assert cost.flops == 1 * (3 * 40)


def test_clip_only_min_input():
    cost = node_cost("Clip", {"x": [3, 40], "lo": np.array(0, np.float32)}, opset=13)
    assert cost.flops == 1 * (3 * 40)


def test_clip_without_bounds_is_identity():
    assert node_cost("Clip", {"x": [3, 40]}).flops == 0


def test_clip_opset6_attribute_form():
    assert node_cost("Clip", {"x": [3, 40]}, attrs={"min": 0.0, "max": 6.0}, opset=6).flops == 2 * (3 * 40)
    assert node_cost("Clip", {"x": [3, 40]}, attrs={"min": 0.0}, opset=6).flops == 1 * (3 * 40)


# --- CumSum -------------------------------------------------------------------------

def test_cumsum_inclusive_last_axis():
    cost = node_cost("CumSum", {"x": [4, 10], "axis": np.array(1, np.int64)})
    assert cost.flops == 4 * (10 - 1)
    assert cost.macs == 0


def test_cumsum_first_axis_and_negative_axis():
    assert node_cost("CumSum", {"x": [4, 10], "axis": np.array(0, np.int64)}).flops == 10 * (4 - 1)
    assert node_cost("CumSum", {"x": [2, 3, 5], "axis": np.array(-2, np.int32)}).flops == 2 * 5 * (3 - 1)


def test_cumsum_exclusive_and_reverse():
    axis = np.array(1, np.int64)
    assert node_cost("CumSum", {"x": [4, 10], "axis": axis}, attrs={"exclusive": 1}).flops == 4 * (10 - 2)
    assert node_cost("CumSum", {"x": [4, 10], "axis": axis}, attrs={"reverse": 1}).flops == 4 * (10 - 1)


def test_cumsum_axis_not_constant_is_unresolved():
    with pytest.raises(UnresolvedShape):
        node_cost("CumSum", {"x": [4, 10], "axis": ([], TensorProto.INT64)})


# --- Det (LU) ------------------------------------------------------------------------

def test_det_2x2():
    # l = c / a (1 div), d' = d - l * b (1 mul, 1 sub), det = a * d' (1 mul)
    assert node_cost("Det", {"x": [2, 2]}).flops == 1 + 2 + 1


def test_det_batched_3x3():
    # per 3x3: divisions 2 + 1, mul+sub 2 * (4 + 1), diagonal product 2
    cost = node_cost("Det", {"x": [5, 3, 3]})
    assert cost.flops == 5 * ((2 + 1) + 2 * (4 + 1) + 2)
    assert cost.macs == 0


def test_det_4x4():
    # divisions 3 + 2 + 1, mul+sub 2 * (9 + 4 + 1), diagonal product 3
    assert node_cost("Det", {"x": [4, 4]}).flops == 6 + 28 + 3


def test_det_non_square_is_rejected():
    with pytest.raises(UnsupportedAttributes):
        node_cost("Det", {"x": [5, 3, 4]})


# --- unknown shapes are never a silent zero -------------------------------------------

def test_unknown_output_shape_raises():
    with pytest.raises(UnresolvedShape):
        node_cost("Add", {"a": [4, "M"], "b": [4, "M"]})
