"""Reductions, ArgMax/ArgMin, TopK: closed-form FLOPs on one-node graphs."""
from __future__ import annotations

import numpy as np
import pytest

from tests.engine.onnx_build import node_cost

AXES_1 = np.array([1], dtype=np.int64)

# Input [2, 3, 4] reduced over axis 1: I = 24, O = 8.
CASES_AXIS_1 = [
    ("ReduceSum", 24 - 8),  # adds
    ("ReduceMean", (24 - 8) + 8),  # adds + divides
    ("ReduceMax", 24 - 8),  # compares
    ("ReduceMin", 24 - 8),
    ("ReduceProd", 24 - 8),  # multiplies
    ("ReduceL1", 24 + (24 - 8)),  # abs + adds
    ("ReduceL2", 24 + (24 - 8) + 8),  # squares + adds + sqrts
    ("ReduceSumSquare", 24 + (24 - 8)),  # squares + adds
    ("ReduceLogSum", (24 - 8) + 8),  # adds + logs
    ("ReduceLogSumExp", 24 + (24 - 8) + 8),  # exps + adds + logs
]


@pytest.mark.parametrize("op_type, expected", CASES_AXIS_1)
def test_reduce_axes_as_input(op_type: str, expected: int) -> None:
    cost = node_cost(op_type, {"x": [2, 3, 4], "axes": AXES_1})
    assert cost.macs == 0
    assert cost.flops == expected


@pytest.mark.parametrize("op_type, expected", CASES_AXIS_1)
def test_reduce_axes_as_attribute_old_opset(op_type: str, expected: int) -> None:
    cost = node_cost(op_type, {"x": [2, 3, 4]}, attrs={"axes": [1], "keepdims": 0}, opset=11)
    assert cost.flops == expected


@pytest.mark.parametrize("op_type, expected", [
    ("ReduceSum", 24 - 1),
    ("ReduceMean", 24),
    ("ReduceL2", 2 * 24),
    ("ReduceLogSumExp", 2 * 24),
])
def test_reduce_all_when_axes_empty(op_type: str, expected: int) -> None:
    assert node_cost(op_type, {"x": [2, 3, 4]}).flops == expected


@pytest.mark.parametrize("op_type, expected", [
    ("ReduceSum", 0),  # identity
    ("ReduceMean", 0),  # identity
    ("ReduceMax", 0),
    ("ReduceSumSquare", 24),  # squares only (function body: Mul then a no-op ReduceSum)
    ("ReduceL1", 24),  # abs only
    ("ReduceL2", 2 * 24),  # square and sqrt
    ("ReduceLogSum", 24),  # log only
    ("ReduceLogSumExp", 2 * 24),  # exp and log
])
def test_reduce_noop_with_empty_axes(op_type: str, expected: int) -> None:
    assert node_cost(op_type, {"x": [2, 3, 4]}, attrs={"noop_with_empty_axes": 1}).flops == expected


def test_reduce_noop_with_empty_axes_input() -> None:
    cost = node_cost("ReduceSum", {"x": [2, 3, 4], "axes": np.array([], dtype=np.int64)}, attrs={"noop_with_empty_axes": 1})
    assert cost.flops == 0


def test_reduce_noop_flag_with_axes_given_still_reduces() -> None:
    cost = node_cost("ReduceMean", {"x": [2, 3, 4], "axes": AXES_1}, attrs={"noop_with_empty_axes": 1})
    assert cost.flops == 24


def test_reduce_mean_spatial_keepdims() -> None:
    # global-average-pool written as ReduceMean over H, W: I = 1*256*14*14, O = 256
    cost = node_cost("ReduceMean", {"x": [1, 256, 14, 14], "axes": np.array([2, 3], dtype=np.int64)}, attrs={"keepdims": 1})
    assert cost.flops == 256 * 14 * 14


@pytest.mark.parametrize("op_type", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_arg_reduce(op_type: str, keepdims: int) -> None:
    cost = node_cost(op_type, {"x": [4, 10, 3]}, attrs={"axis": 1, "keepdims": keepdims})
    assert cost.flops == 120 - 12


def test_topk_k_input() -> None:
    # rows 2, n 10, k 3: 10 * (1 + ceil(log2 3) = 2) per row
    cost = node_cost("TopK", {"x": [2, 10], "k": np.array([3], dtype=np.int64)}, outputs=("values", "indices"))
    assert cost.flops == 2 * 10 * 3


def test_topk_k_attribute_opset_1() -> None:
    cost = node_cost("TopK", {"x": [2, 10]}, attrs={"k": 1}, outputs=("values", "indices"), opset=1)
    assert cost.flops == 2 * 10 * 1


def test_topk_axis_0_and_power_of_two() -> None:
    # axis 0 of [16, 5]: rows 5, n 16, k 4: 1 + 2 compares per element
    cost = node_cost("TopK", {"x": [16, 5], "k": np.array([4], dtype=np.int64)}, attrs={"axis": 0}, outputs=("v", "i"))
    assert cost.flops == 5 * 16 * 3


def test_topk_k_zero() -> None:
    cost = node_cost("TopK", {"x": [2, 10], "k": np.array([0], dtype=np.int64)}, outputs=("v", "i"))
    assert cost.flops == 0


# ---- Unique: sort, then compare neighbours; its outputs are upper bounds ------------------

def test_unique_flattened() -> None:
    # L = 24 items of W = 1: 24 x ceil(log2 24) = 24 x 5 sort compares + 23 neighbour compares
    cost = node_cost("Unique", {"x": [2, 3, 4]}, outputs=("y", "idx", "inverse", "counts"))
    assert (cost.macs, cost.flops) == (0, 24 * 5 + 23)


def test_unique_along_an_axis_compares_whole_slices() -> None:
    # axis 1: L = 3 slices of W = 8 elements: 8 x (3 x 2 + 2)
    cost = node_cost("Unique", {"x": [2, 3, 4]}, outputs=("y", "idx", "inverse", "counts"), attrs={"axis": 1})
    assert cost.flops == 8 * (3 * 2 + 2)


def test_unique_of_one_item_costs_nothing() -> None:
    assert node_cost("Unique", {"x": [1]}, outputs=("y",)).flops == 0
