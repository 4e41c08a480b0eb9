"""Element-wise math: arithmetic, logic, comparisons, unary math, Clip, CumSum, Det.

None of these is dot-product work, so every op here costs 0 MACs. FLOPs count one
primitive (add, sub, mul, div, pow, mod, compare/max/min, a logic or bit operation,
exp, log, sqrt, erf, a trigonometric function, floor/ceil/round...) per element,
counted on the OUTPUT elements, i.e. after broadcasting. A select (choosing one of two
values already computed, as `Where` does) is free: the compare that produced its
condition is counted where it happens. The per-element number of every op sits next to
its name in the tables below; docs/counting.md states the same numbers.
"""
from __future__ import annotations

from typing import Mapping, Optional

from ..registry import AFFINE_SCALE, AFFINE_SHIFT, ELEMENTWISE, OTHER, register, register_free
from ..types import CostFn, NodeView, OpCost, UnsupportedAttributes
from ._common import normalize_axis

# --- pure arithmetic ----------------------------------------------------------------------


def variadic_flops(output_elements: int, num_inputs: int) -> int:
    """k inputs folded pairwise into one output: k - 1 primitives per output element."""
    return output_elements * max(num_inputs - 1, 0)


def mean_flops(output_elements: int, num_inputs: int) -> int:
    """k - 1 adds plus one division per output element; a 1-input Mean is a copy (0)."""
    if num_inputs <= 1:
        return 0
    return output_elements * num_inputs


def cumsum_flops(shape: tuple[int, ...], axis: int, exclusive: bool) -> int:
    """Running sum along `axis` of length L: L - 1 adds per line (L - 2 when exclusive)."""
    length = shape[axis]
    lines = 1
    for position, extent in enumerate(shape):
        if position != axis:
            lines *= extent
    adds_per_line = max(length - (2 if exclusive else 1), 0)
    return lines * adds_per_line


def det_flops_per_matrix(n: int) -> int:
    """LU elimination of an n x n matrix plus the product of its diagonal.

    Step m = n-1 .. 1 of the elimination: m divisions (multipliers), m*m multiplications
    and m*m subtractions; then n - 1 multiplications for the diagonal. Pivot search free.
    """
    if n <= 1:
        return 0
    divisions = n * (n - 1) // 2
    mul_and_sub = (n - 1) * n * (2 * n - 1) // 3  # 2 * sum(m*m for m in 1..n-1)
    return divisions + mul_and_sub + (n - 1)


# --- factories (fvcore's elementwise_flop_counter style) ---------------------------------


def per_output_element(flops_per_element: int) -> CostFn:
    """A cost function charging `flops_per_element` FLOPs per output element, 0 MACs."""

    def cost(node: NodeView) -> OpCost:
        return OpCost(macs=0, flops=flops_per_element * node.output_numel(0))

    cost.__doc__ = f"{flops_per_element} FLOP(s) per output element, 0 MACs."
    cost.__name__ = f"per_output_element_{flops_per_element}"
    return cost


def per_extra_input() -> CostFn:
    """A cost function for variadic ops (Sum, Max, Min): k - 1 FLOPs per output element."""

    def cost(node: NodeView) -> OpCost:
        return OpCost(macs=0, flops=variadic_flops(node.output_numel(0), _present_inputs(node)))

    cost.__doc__ = "k - 1 FLOPs per output element for k inputs, 0 MACs."
    cost.__name__ = "per_extra_input"
    return cost


def register_table(table: Mapping[str, int], domain: str = "", op_class: str = ELEMENTWISE,
                   traits_by_op: Optional[Mapping[str, Mapping[str, object]]] = None) -> None:
    """Register `per_output_element(n)` for every `op: n` of a table, with the op class and
    any further traits of single ops."""
    for op_type, flops_per_element in table.items():
        traits = dict((traits_by_op or {}).get(op_type, {}))
        register(op_type, domain=domain, op_class=op_class, flops_per_output=flops_per_element,
                 **traits)(per_output_element(flops_per_element))


def _present_inputs(node: NodeView) -> int:
    return sum(1 for tensor in node.inputs if tensor is not None)


# --- tables: FLOPs per output element -----------------------------------------------------

BINARY_FLOPS: dict[str, int] = {
    # arithmetic: one primitive each (pow and mod count as one primitive by the contract)
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Pow": 1, "Mod": 1,
    # integer bit operations and boolean logic: one operation each
    "BitShift": 1, "BitwiseAnd": 1, "BitwiseOr": 1, "BitwiseXor": 1,
    "And": 1, "Or": 1, "Xor": 1,
    # comparisons: one compare each (>= and <= are single compares, not Greater|Equal)
    "Equal": 1, "Greater": 1, "GreaterOrEqual": 1, "Less": 1, "LessOrEqual": 1,
}

UNARY_FLOPS: dict[str, int] = {
    "Abs": 1, "Neg": 1, "Sign": 1, "Reciprocal": 1, "Sqrt": 1, "Exp": 1, "Log": 1,
    "Ceil": 1, "Floor": 1, "Round": 1, "Erf": 1,
    "Sin": 1, "Cos": 1, "Tan": 1, "Asin": 1, "Acos": 1, "Atan": 1,
    "Sinh": 1, "Cosh": 1, "Asinh": 1, "Acosh": 1, "Atanh": 1,
    "Not": 1, "BitwiseNot": 1,
    "IsNaN": 1,  # one compare (x != x)
    "IsInf": 1,  # one compare of |x| (or x) against infinity
}

VARIADIC_OPS: tuple[str, ...] = ("Sum", "Max", "Min")  # k - 1 per output element

# An exporter may spell a BatchNorm as Mul by a per-channel constant, then Add of one: such a
# pair can fold like a BatchNorm (see fusion.py).
AFFINE_PARTS = {"Mul": {"affine": AFFINE_SCALE}, "Add": {"affine": AFFINE_SHIFT}}

register_table(BINARY_FLOPS, traits_by_op=AFFINE_PARTS)
register_table(UNARY_FLOPS)
register(*VARIADIC_OPS, op_class=ELEMENTWISE)(per_extra_input())

# Where(cond, a, b) is a select: free by the select rule (its bytes still count as traffic).
register_free("Where", op_class=ELEMENTWISE)


# --- ops whose count depends on the node -------------------------------------------------


@register("Mean", op_class=ELEMENTWISE)
def mean_cost(node: NodeView) -> OpCost:
    """Mean of k inputs: k - 1 adds + 1 div = k FLOPs per output element (k = 1: 0)."""
    return OpCost(macs=0, flops=mean_flops(node.output_numel(0), _present_inputs(node)))


def clip_bounds(node: NodeView) -> int:
    """How many of min/max the node gives: inputs 1 and 2 (opset >= 11) or attributes (< 11)."""
    if len(node.inputs) > 1 or ("min" not in node.attrs and "max" not in node.attrs):
        return int(node.has_input(1)) + int(node.has_input(2))
    return int("min" in node.attrs) + int("max" in node.attrs)


@register("Clip", op_class=ELEMENTWISE, shape_inputs=[1, 2])
def clip_cost(node: NodeView) -> OpCost:
    """Clip: 1 compare per given bound (min, max) per output element; 2 with both, 0 with none."""
    return OpCost(macs=0, flops=clip_bounds(node) * node.output_numel(0))


@register("CumSum", op_class=ELEMENTWISE, shape_inputs=[1])
def cumsum_cost(node: NodeView) -> OpCost:
    """CumSum: (L - 1) adds per line along the axis of length L, (L - 2) when exclusive."""
    shape = node.output_shape(0)
    axis_value = node.input_value(1).reshape(-1)
    if axis_value.size != 1:
        raise UnsupportedAttributes(f"CumSum: axis must be a scalar, got {axis_value.size} values")
    axis = normalize_axis(int(axis_value[0]), len(shape), "CumSum")
    exclusive = bool(node.attr("exclusive", 0))
    return OpCost(macs=0, flops=cumsum_flops(shape, axis, exclusive))


@register("Det", op_class=OTHER)
def det_cost(node: NodeView) -> OpCost:
    """Det of [*, n, n]: per matrix n(n-1)/2 + (n-1)n(2n-1)/3 + (n-1) FLOPs (LU), 0 MACs."""
    shape = node.input_shape(0)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise UnsupportedAttributes(f"Det: input must be [*, n, n], got {list(shape)}")
    matrices = 1
    for extent in shape[:-2]:
        matrices *= extent
    return OpCost(macs=0, flops=matrices * det_flops_per_matrix(shape[-1]))
