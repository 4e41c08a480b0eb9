"""Reductions, ArgMax/ArgMin, TopK and Unique: FLOPs only, 0 MACs.

Rule: with I = input elements and O = output elements (each output reduces I / O inputs),
a reduction of I / O values into one costs I / O - 1 adds / compares / multiplies, i.e.
I - O per node, plus the element-wise work of the op's definition (the ONNX function
body): a square, abs or exp per input element, a divide, sqrt or log per output element.
The reduced axes come from the `axes` attribute (old opsets) or input (opset 13 / 18+),
but the count only needs I and O, which shape inference gives either way.
With empty axes and noop_with_empty_axes=1 nothing is reduced (O = I): the function
bodies then still apply the element-wise part (ReduceSumSquare squares, ReduceL2 takes
sqrt(x^2)...), so the same formulas hold; ReduceMean is the identity then and costs 0.
"""
from __future__ import annotations

from typing import Optional

from onnx import TensorProto

from ..registry import REDUCTION, TypedShape, register
from ..types import NodeView, OpCost, Shape, numel
from ._common import normalize_axis

# FLOPs = a * I + b * O for each reduction (I input elements, O output elements).
#   ReduceSum        I - O adds
#   ReduceMean       I - O adds + O divides
#   ReduceMax/Min    I - O compares
#   ReduceProd       I - O multiplies
#   ReduceL1         I abs + I - O adds
#   ReduceL2         I squares + I - O adds + O sqrts
#   ReduceSumSquare  I squares + I - O adds
#   ReduceLogSum     I - O adds + O logs
#   ReduceLogSumExp  I exps + I - O adds + O logs
REDUCE_COEFFICIENTS: dict[str, tuple[int, int]] = {
    "ReduceSum": (1, -1),
    "ReduceMean": (1, 0),
    "ReduceMax": (1, -1),
    "ReduceMin": (1, -1),
    "ReduceProd": (1, -1),
    "ReduceL1": (2, -1),
    "ReduceL2": (2, 0),
    "ReduceSumSquare": (2, -1),
    "ReduceLogSum": (1, 0),
    "ReduceLogSumExp": (2, 0),
}


# ---- pure shape math -------------------------------------------------------------------

def reduce_flops(op_type: str, input_elements: int, output_elements: int) -> int:
    """a * I + b * O with the op's coefficients (see REDUCE_COEFFICIENTS)."""
    if output_elements == 0 or input_elements == 0:
        return 0
    per_input, per_output = REDUCE_COEFFICIENTS[op_type]
    return per_input * input_elements + per_output * output_elements


def ceil_log2(value: int) -> int:
    """Smallest e with 2**e >= value (0 for value <= 1)."""
    return (value - 1).bit_length() if value > 1 else 0


def topk_flops(rows: int, length: int, k: int) -> int:
    """Heap selection of k of n per row: n x (1 + ceil(log2 k)) compares per row."""
    if k == 0 or length == 0:
        return 0
    return rows * length * (1 + ceil_log2(k))


def unique_flops(items: int, item_size: int) -> int:
    """Sort the items (L ceil(log2 L) compares), then compare each with the next (L - 1), every
    compare over the item's W elements: W x (L ceil(log2 L) + L - 1)."""
    if items <= 1:
        return 0
    return item_size * (items * ceil_log2(items) + items - 1)


# ---- adapters ----------------------------------------------------------------------------

def _axes_empty(node: NodeView) -> bool:
    """True when no axes are given (attribute absent or empty, input omitted or empty)."""
    if node.attr("axes") is not None:
        return len(node.attr("axes")) == 0
    if node.has_input(1):
        axes = node.input(1)
        if axes.value is not None:
            return axes.value.size == 0
        return axes.shape is not None and numel(axes.shape) == 0
    return True


def _is_noop(node: NodeView) -> bool:
    return int(node.attr("noop_with_empty_axes", 0)) == 1 and _axes_empty(node)


@register(*REDUCE_COEFFICIENTS, op_class=REDUCTION, shape_inputs=[1])
def reduce_cost(node: NodeView) -> OpCost:
    """Reduce*: a x I + b x O FLOPs (I input, O output elements; coefficients per op)."""
    input_elements = numel(node.input_shape(0))
    if _is_noop(node):
        if node.op_type == "ReduceMean":
            return OpCost(note="noop_with_empty_axes: identity")
        return OpCost(flops=reduce_flops(node.op_type, input_elements, input_elements),
                      note="noop_with_empty_axes: element-wise part only")
    return OpCost(flops=reduce_flops(node.op_type, input_elements, node.output_numel(0)))


@register("ArgMax", "ArgMin", op_class=REDUCTION)
def arg_reduce_cost(node: NodeView) -> OpCost:
    """ArgMax / ArgMin: I - O compares."""
    input_elements = numel(node.input_shape(0))
    output_elements = node.output_numel(0)
    return OpCost(flops=input_elements - output_elements if output_elements else 0)


def topk_bounds(node: NodeView) -> list[Optional[Shape | TypedShape]]:
    """A K computed from data: at most the whole axis."""
    shape = node.input_shape(0)
    axis = normalize_axis(int(node.attr("axis", -1)), len(shape), node.op_type)
    k = node.input(1).value if node.has_input(1) else None
    kept = shape[axis] if k is None or k.size != 1 else min(int(k.reshape(-1)[0]), shape[axis])
    out = (*shape[:axis], kept, *shape[axis + 1:])
    return [out, TypedShape(out, TensorProto.INT64)]


@register("TopK", op_class=REDUCTION, shape_inputs=[1], bounds=topk_bounds)
def topk_cost(node: NodeView) -> OpCost:
    """TopK: rows x n x (1 + ceil(log2 k)) compares; n = axis length, rows = I / n."""
    in_shape = node.input_shape(0)
    out_shape = node.output_shape(0)
    rank = len(in_shape)
    axis = normalize_axis(int(node.attr("axis", -1)), rank, node.op_type)
    length, k = in_shape[axis], out_shape[axis]
    rows = numel(in_shape) // length if length else 0
    return OpCost(flops=topk_flops(rows, length, k))


def _unique_items(node: NodeView) -> tuple[int, int, Optional[int]]:
    """(items L, elements per item W, axis or None) of Unique's input."""
    shape = node.input_shape(0)
    axis = node.attr("axis")
    if axis is None:
        return numel(shape), 1, None
    axis = normalize_axis(int(axis), len(shape), node.op_type)
    items = shape[axis]
    return items, (numel(shape) // items if items else 0), axis


def unique_bounds(node: NodeView) -> list[Optional[Shape | TypedShape]]:
    """Every item may be unique: Y, indices and counts at most L items; inverse_indices exactly L."""
    shape = node.input_shape(0)
    items, _, axis = _unique_items(node)
    y = (items,) if axis is None else shape
    return [y, TypedShape((items,), TensorProto.INT64), TypedShape((items,), TensorProto.INT64),
            TypedShape((items,), TensorProto.INT64)]


@register("Unique", op_class=REDUCTION, bounds=unique_bounds)
def unique_cost(node: NodeView) -> OpCost:
    """Unique: W x (L ceil(log2 L) + L - 1) compares for L items of W elements (sort, then
    compare neighbours); L = all elements, or the slices along `axis`."""
    items, item_size, _ = _unique_items(node)
    return OpCost(flops=unique_flops(items, item_size))
