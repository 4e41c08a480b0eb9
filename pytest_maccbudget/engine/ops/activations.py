"""Activations (ONNX and com.microsoft): FLOPs per output element, 0 MACs.

Rule: an activation costs what its definition costs node by node, taking the ONNX
function body of the op (the spec's reference decomposition) and costing each node with
the engine's own numbers: a compare, add, sub, mul, div, abs, neg, exp, log, erf, pow or
sqrt is 1 per element; a select (`Where`) is free; `Sigmoid` is 4 (the contract's number)
and `Tanh` is 5 wherever they appear. Scalar constants (CastLike, Sqrt(2)...) are folded
and cost nothing. So a fused activation costs the same as the nodes an exporter would
otherwise emit for it. docs/counting.md states each number and its derivation.
"""
from __future__ import annotations

from typing import Optional

from ..registry import ACTIVATION, register, register_shape
from ..types import NodeView, OpCost, Shape, UnresolvedShape, UnsupportedAttributes
from ._common import MS_DOMAIN, SIGMOID, TANH, broadcast_shapes
from .elementwise import per_output_element, register_table

# Building blocks, FLOPs per element (SIGMOID and TANH: see _common).
SOFTPLUS = 3  # exp, add, log: log(1 + exp(x))
ELU = 4  # compare, exp, sub, mul (select free): x < 0 ? alpha * (exp(x) - 1) : x
HARD_SIGMOID = 4  # mul, add, min, max: max(0, min(1, alpha * x + beta))
GELU_ERF = 5  # div, erf, add, mul, mul: 0.5 * x * (1 + erf(x / sqrt(2)))
GELU_TANH = 7 + TANH  # pow, mul, add, mul, tanh, add, mul, mul: 0.5x(1 + tanh(c(x + 0.044715 x^3)))
FAST_GELU = 7 + TANH  # mul, mul, add, mul, tanh, add, mul, mul: 0.5x(1 + tanh(x(c x^2 + b)))

ACTIVATION_FLOPS: dict[str, int] = {
    "Relu": 1,  # max(x, 0)
    "Sigmoid": SIGMOID,
    "Tanh": TANH,
    "LeakyRelu": 2,  # compare, mul (select free): x < 0 ? alpha * x : x
    "PRelu": 2,  # compare, mul (select free): x < 0 ? slope * x : x
    "ThresholdedRelu": 1,  # compare (select free): x > alpha ? x : 0
    "Elu": ELU,
    "Selu": 6,  # exp, mul, sub, mul, mul, compare: x < 0 ? g(a e^x - a) : g x
    "Celu": 1 + ELU + 1,  # div, Elu, mul: alpha * Elu(x / alpha)
    "HardSigmoid": HARD_SIGMOID,
    "HardSwish": HARD_SIGMOID + 1,  # x * HardSigmoid(x)
    "Softplus": SOFTPLUS,
    "Softsign": 3,  # abs, add, div: x / (1 + |x|)
    "Mish": SOFTPLUS + TANH + 1,  # x * tanh(softplus(x))
    "Shrink": 4,  # compare, compare, add, sub (selects free)
}

register_table(ACTIVATION_FLOPS, op_class=ACTIVATION)
register("Gelu", domain=MS_DOMAIN, op_class=ACTIVATION, flops_per_output=GELU_ERF)(per_output_element(GELU_ERF))


def gelu_flops_per_element(approximate: str) -> int:
    """ONNX Gelu: 5 for the exact (erf) form, 12 for the tanh approximation."""
    if approximate == "none":
        return GELU_ERF
    if approximate == "tanh":
        return GELU_TANH
    raise UnsupportedAttributes(f"Gelu: approximate={approximate!r} has no counting rule")


def scaled_sigmoid_gate_flops(alpha: float) -> int:
    """x * sigmoid(alpha * x): mul, Sigmoid, mul; the alpha mul is skipped when alpha == 1."""
    return (0 if alpha == 1.0 else 1) + SIGMOID + 1


@register("Gelu", op_class=ACTIVATION)
def gelu_cost(node: NodeView) -> OpCost:
    """Gelu (opset 20): 5 FLOPs per element (erf form), 12 (approximate='tanh')."""
    per_element = gelu_flops_per_element(str(node.attr("approximate", "none")))
    return OpCost(macs=0, flops=per_element * node.output_numel(0))


@register("Swish", op_class=ACTIVATION)
def swish_cost(node: NodeView) -> OpCost:
    """Swish (opset 24): x * sigmoid(alpha * x) = 6 FLOPs per element, 5 when alpha == 1."""
    per_element = scaled_sigmoid_gate_flops(float(node.attr("alpha", 1.0)))
    return OpCost(macs=0, flops=per_element * node.output_numel(0))


@register("QuickGelu", domain=MS_DOMAIN, op_class=ACTIVATION)
def quick_gelu_cost(node: NodeView) -> OpCost:
    """com.microsoft QuickGelu: x * sigmoid(alpha * x), alpha=1.702: 6 FLOPs per element."""
    per_element = scaled_sigmoid_gate_flops(float(node.attr("alpha", 1.702)))
    return OpCost(macs=0, flops=per_element * node.output_numel(0))


@register("FastGelu", domain=MS_DOMAIN, op_class=ACTIVATION)
def fast_gelu_cost(node: NodeView) -> OpCost:
    """com.microsoft FastGelu: 12 FLOPs per element (tanh form), 13 with the bias input."""
    per_element = FAST_GELU + (1 if node.has_input(1) else 0)
    return OpCost(macs=0, flops=per_element * node.output_numel(0))


@register("BiasGelu", domain=MS_DOMAIN, op_class=ACTIVATION)
def bias_gelu_cost(node: NodeView) -> OpCost:
    """com.microsoft BiasGelu: Gelu(A + B) = 1 add + 5 = 6 FLOPs per output element."""
    return OpCost(macs=0, flops=(1 + GELU_ERF) * node.output_numel(0))


# --- output shapes of the com.microsoft activations (onnx shape inference skips them) -----


@register_shape("Gelu", "FastGelu", "BiasGelu", "QuickGelu", domain=MS_DOMAIN)
def same_shape_as_inputs(node: NodeView) -> list[Optional[Shape]]:
    """The single output has the broadcast shape of the present inputs (X, optional bias)."""
    shapes = [node.input_shape(i) for i in range(len(node.inputs)) if node.has_input(i)]
    if not shapes:
        raise UnresolvedShape(f"{node.name}:input0", "presence")
    return [broadcast_shapes(*shapes)]  # X and the optional bias that broadcasts to it
