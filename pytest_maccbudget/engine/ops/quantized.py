"""Quantized ops: integer dot products (QLinear*, *Integer, QGemm, MatMulNBits...) and
the quantize / dequantize primitives, ONNX and com.microsoft.

MACs of an integer dot product are those of its float counterpart (one integer
multiply-accumulate each). FLOPs count the dot product as 2 x MACs - outputs (K
multiplies and K - 1 adds per output), plus the per-element primitives around it:

- quantize one value (float or int32 accumulator -> 8-bit): 1 scale multiply/divide,
  1 round, 1 zero-point add (only when a zero-point input is given), 2 for saturation
  (max, min) -> 4 or 5;
- dequantize one value: 1 zero-point subtract (only when given) + 1 scale multiply -> 1 or 2.

Zero-point corrections inside integer dot products are not counted: the weight-side
terms are precomputed and fold into the bias. The engine takes byte widths from the
tensors' dtypes (int8/uint8 1 byte, int4/uint4 half a byte, int32 4); only MACs and FLOPs
are counted here. docs/counting.md states the same rules.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from onnx import TensorProto

from ..registry import (
    ACTIVATION,
    ELEMENTWISE,
    MATMUL,
    MOVEMENT,
    POOLING,
    ShapeFn,
    TypedShape,
    register,
    register_shape,
)
from ..types import NodeView, OpCost, Shape, UnresolvedShape, UnsupportedAttributes, numel
from ._common import MS_DOMAIN, SIGMOID, broadcast_shapes, normalize_axis
from .dot import (
    conv_class,
    conv_like_macs,
    dot_flops,
    gemm_inner_dim,
    gemm_output_shape,
    matmul_like_macs,
    matmul_output_shape,
)

SATURATE_FLOPS = 2  # max and min against the integer range
DYNAMIC_QUANTIZE_SCALAR_FLOPS = 7  # scale: sub, div; zero point: div, sub, round, max, min


# --- per-element primitives ---------------------------------------------------------------


def quantize_flops(has_zero_point: bool) -> int:
    """One value to 8 bits: scale (1) + round (1) + zero-point add (1 if given) + saturate (2)."""
    return 1 + 1 + (1 if has_zero_point else 0) + SATURATE_FLOPS


def dequantize_flops(has_zero_point: bool) -> int:
    """One value from 8 bits: zero-point subtract (1 if given) + scale multiply (1)."""
    return (1 if has_zero_point else 0) + 1


def dynamic_quantize_flops(elements: int) -> int:
    """DynamicQuantizeLinear on n values: min and max including 0 (n compares each),
    7 scalar ops for scale and zero point, then quantize each value with a zero point (5)."""
    return 2 * elements + DYNAMIC_QUANTIZE_SCALAR_FLOPS + elements * quantize_flops(True)


def _present(node: NodeView, index: int) -> bool:
    return node.has_input(index)


# --- ONNX ops -----------------------------------------------------------------------------


@register("QuantizeLinear", op_class=ELEMENTWISE)
def quantize_linear_cost(node: NodeView) -> OpCost:
    """0 MACs; FLOPs = elements x (4, or 5 with y_zero_point)."""
    return OpCost(0, node.output_numel(0) * quantize_flops(_present(node, 2)))


@register("DequantizeLinear", op_class=ELEMENTWISE)
def dequantize_linear_cost(node: NodeView) -> OpCost:
    """0 MACs; FLOPs = elements x (1, or 2 with x_zero_point)."""
    return OpCost(0, node.output_numel(0) * dequantize_flops(_present(node, 2)))


@register("DynamicQuantizeLinear", op_class=ELEMENTWISE)
def dynamic_quantize_linear_cost(node: NodeView) -> OpCost:
    """0 MACs; FLOPs = 7 x n + 7 for n input elements."""
    return OpCost(0, dynamic_quantize_flops(numel(node.input_shape(0))))


@register("ConvInteger", op_class=conv_class)
def conv_integer_cost(node: NodeView) -> OpCost:
    """Conv MACs (W at input 1); FLOPs = 2 x MACs - outputs (int32 output, no requantize)."""
    macs = conv_like_macs(node, x_index=0, w_index=1)
    return OpCost(macs, dot_flops(macs, node.output_numel(0)))


@register("MatMulInteger", op_class=MATMUL)
def matmul_integer_cost(node: NodeView) -> OpCost:
    """MatMul MACs; FLOPs = (2K - 1) x outputs (int32 output, no requantize)."""
    macs = matmul_like_macs(node, 0, 1)
    return OpCost(macs, dot_flops(macs, node.output_numel(0)))


@register("QLinearConv", op_class=conv_class)
def qlinear_conv_cost(node: NodeView) -> OpCost:
    """Conv MACs (W at input 3); FLOPs = 2 x MACs - outputs + outputs if B + outputs x requantize (5)."""
    macs = conv_like_macs(node, x_index=0, w_index=3)
    outputs = node.output_numel(0)
    flops = dot_flops(macs, outputs) + (outputs if _present(node, 8) else 0)
    flops += outputs * quantize_flops(_present(node, 7))
    return OpCost(macs, flops)


@register("QLinearMatMul", op_class=MATMUL)
def qlinear_matmul_cost(node: NodeView) -> OpCost:
    """MatMul MACs (B at input 3); FLOPs = (2K - 1) x outputs + outputs x requantize (5)."""
    macs = matmul_like_macs(node, 0, 3)
    outputs = node.output_numel(0)
    return OpCost(macs, dot_flops(macs, outputs) + outputs * quantize_flops(_present(node, 7)))


# --- com.microsoft: integer / low-bit dot products ----------------------------------------


@register("QGemm", domain=MS_DOMAIN, op_class=MATMUL)
def qgemm_cost(node: NodeView) -> OpCost:
    """M x K x N MACs; FLOPs = (2K - 1) x M x N, + M x N for C, + M x N x requantize (4/5)
    with y_scale, else + M x N (one scale multiply to float). alpha folds into the scale."""
    k = gemm_inner_dim(node, int(node.attr("transA", 0)), int(node.attr("transB", 0)), 0, 3)
    outputs = node.output_numel(0)
    macs = outputs * k
    flops = dot_flops(macs, outputs) + (outputs if _present(node, 6) else 0)
    if _present(node, 7):
        flops += outputs * quantize_flops(_present(node, 8))
    else:
        flops += outputs
    return OpCost(macs, flops)


@register("MatMulIntegerToFloat", domain=MS_DOMAIN, op_class=MATMUL)
def matmul_integer_to_float_cost(node: NodeView) -> OpCost:
    """MatMul MACs; FLOPs = (2K - 1) x outputs + outputs (scale multiply) + outputs if bias."""
    macs = matmul_like_macs(node, 0, 1)
    outputs = node.output_numel(0)
    flops = dot_flops(macs, outputs) + outputs + (outputs if _present(node, 6) else 0)
    return OpCost(macs, flops)


@register("DynamicQuantizeMatMul", domain=MS_DOMAIN, op_class=MATMUL)
def dynamic_quantize_matmul_cost(node: NodeView) -> OpCost:
    """MatMul MACs; FLOPs = DynamicQuantizeLinear of A (7 x numel(A) + 7) + (2K - 1) x outputs
    + outputs (scale multiply) + outputs if bias."""
    macs = matmul_like_macs(node, 0, 1)
    outputs = node.output_numel(0)
    flops = dynamic_quantize_flops(numel(node.input_shape(0)))
    flops += dot_flops(macs, outputs) + outputs + (outputs if _present(node, 4) else 0)
    return OpCost(macs, flops)


def _nbits_dims(node: NodeView) -> tuple[int, int]:
    k, n = node.attr("K"), node.attr("N")
    if k is None or n is None:
        raise UnsupportedAttributes("MatMulNBits needs its K and N attributes")
    return int(k), int(n)


@register("MatMulNBits", domain=MS_DOMAIN, op_class=MATMUL)
def matmul_nbits_cost(node: NodeView) -> OpCost:
    """MACs = outputs x K; FLOPs = (2K - 1) x outputs + 2 x N x K (dequantize each weight) + outputs if bias."""
    k, n = _nbits_dims(node)
    outputs = node.output_numel(0)
    macs = outputs * k
    flops = dot_flops(macs, outputs) + 2 * n * k + (outputs if _present(node, 5) else 0)
    return OpCost(macs, flops)


# --- com.microsoft: quantized element-wise, pooling, concat -------------------------------


def _qlinear_binary(op_flops: int) -> Callable[[NodeView], OpCost]:
    def cost(node: NodeView) -> OpCost:
        outputs = node.output_numel(0)
        flops = numel(node.input_shape(0)) * dequantize_flops(_present(node, 2))
        flops += numel(node.input_shape(3)) * dequantize_flops(_present(node, 5))
        flops += outputs * (op_flops + quantize_flops(_present(node, 7)))
        return OpCost(0, flops)

    cost.__doc__ = (f"0 MACs; FLOPs = dequantize A and B (1-2 per input element) + outputs x "
                    f"({op_flops} + quantize 4/5).")
    return cost


register("QLinearAdd", domain=MS_DOMAIN, op_class=ELEMENTWISE)(_qlinear_binary(1))
register("QLinearMul", domain=MS_DOMAIN, op_class=ELEMENTWISE)(_qlinear_binary(1))


@register("QLinearSigmoid", domain=MS_DOMAIN, op_class=ACTIVATION)
def qlinear_sigmoid_cost(node: NodeView) -> OpCost:
    """0 MACs; FLOPs = elements x (dequantize 1/2 + Sigmoid 4 + quantize 4/5)."""
    per_element = dequantize_flops(_present(node, 2)) + SIGMOID + quantize_flops(_present(node, 4))
    return OpCost(0, node.output_numel(0) * per_element)


def _global_pool_dims(shape: Shape, channels_last: bool) -> tuple[int, int]:
    """(N x C pooled outputs, spatial window size) of a global pool."""
    if len(shape) < 2:
        raise UnsupportedAttributes(f"global pooling needs rank >= 2, got {shape}")
    channels = shape[-1] if channels_last else shape[1]
    spatial = shape[1:-1] if channels_last else shape[2:]
    return shape[0] * channels, numel(spatial)


@register("QLinearGlobalAveragePool", domain=MS_DOMAIN, op_class=POOLING)
def qlinear_global_average_pool_cost(node: NodeView) -> OpCost:
    """0 MACs; FLOPs = N x C x H x W (the float global pool) + N x C x (3 + 1 per zero point given)."""
    outputs, window = _global_pool_dims(node.input_shape(0), bool(int(node.attr("channels_last", 0))))
    extra = 1 + SATURATE_FLOPS + (1 if _present(node, 2) else 0) + (1 if _present(node, 4) else 0)
    return OpCost(0, outputs * window + outputs * extra)


def _same_quantization(node: NodeView, scale_index: int, zp_index: int) -> bool:
    """True when an input's scale and zero point are known constants equal to the output's."""
    def value(index: int) -> Optional[np.ndarray]:
        if not node.has_input(index):
            return np.zeros(())  # an omitted zero point is 0
        try:
            return np.asarray(node.input_value(index))
        except UnresolvedShape:
            return None

    pairs = ((scale_index, 0), (zp_index, 1))
    for mine, output in pairs:
        a, b = value(mine), value(output)
        if a is None or b is None or a.size != 1 or b.size != 1 or a.reshape(()) != b.reshape(()):
            return False
    return True


@register("QLinearConcat", domain=MS_DOMAIN, op_class=MOVEMENT)
def qlinear_concat_cost(node: NodeView) -> OpCost:
    """0 MACs; an input quantized like the output is copied free; any other input is requantized:
    elements x (1 scale multiply + 1 round + 2 saturate + 1 per zero point given)."""
    flops = 0
    for x_index in range(2, len(node.inputs), 3):
        if _same_quantization(node, x_index + 1, x_index + 2):
            continue
        per_element = 1 + 1 + SATURATE_FLOPS + (1 if _present(node, x_index + 2) else 0) + (1 if _present(node, 1) else 0)
        flops += numel(node.input_shape(x_index)) * per_element
    return OpCost(0, flops)


# com.microsoft twins of the ONNX primitives (int16 / int4 support in onnxruntime)
register("QuantizeLinear", domain=MS_DOMAIN, op_class=ELEMENTWISE)(quantize_linear_cost)
register("DequantizeLinear", domain=MS_DOMAIN, op_class=ELEMENTWISE)(dequantize_linear_cost)


# --- output shapes of the com.microsoft ops (onnx shape inference does not know them) -----


def _typed_by_op(shape_fn: ShapeFn) -> ShapeFn:
    """Attach the output element type where it is not that of input 0."""
    def typed(node: NodeView) -> list:
        shapes = shape_fn(node)
        dtype = contrib_output_elem_type(node)
        if dtype is None or not shapes or shapes[0] is None:
            return shapes
        return [TypedShape(shapes[0], dtype), *shapes[1:]]
    typed.__doc__ = shape_fn.__doc__
    return typed


@register_shape("QGemm", domain=MS_DOMAIN)
@_typed_by_op
def qgemm_shape(node: NodeView) -> list[Optional[Shape]]:
    trans_a, trans_b = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    return [gemm_output_shape(node.input_shape(0), node.input_shape(3), trans_a, trans_b)]


@register_shape("MatMulIntegerToFloat", "DynamicQuantizeMatMul", domain=MS_DOMAIN)
@_typed_by_op
def integer_matmul_shape(node: NodeView) -> list[Optional[Shape]]:
    return [matmul_output_shape(node.input_shape(0), node.input_shape(1))]


@register_shape("MatMulNBits", domain=MS_DOMAIN)
def matmul_nbits_shape(node: NodeView) -> list[Optional[Shape]]:
    _, n = _nbits_dims(node)
    return [(*node.input_shape(0)[:-1], n)]


@register_shape("QLinearAdd", "QLinearMul", domain=MS_DOMAIN)
def qlinear_binary_shape(node: NodeView) -> list[Optional[Shape]]:
    return [broadcast_shapes(node.input_shape(0), node.input_shape(3))]


@register_shape("QLinearSigmoid", "QuantizeLinear", "DequantizeLinear", domain=MS_DOMAIN)
@_typed_by_op
def same_as_input_shape(node: NodeView) -> list[Optional[Shape]]:
    return [node.input_shape(0)]


@register_shape("QLinearGlobalAveragePool", domain=MS_DOMAIN)
def qlinear_global_average_pool_shape(node: NodeView) -> list[Optional[Shape]]:
    x = node.input_shape(0)
    if int(node.attr("channels_last", 0)):
        return [(x[0], *([1] * (len(x) - 2)), x[-1])]
    return [(x[0], x[1], *([1] * (len(x) - 2)))]


@register_shape("QLinearConcat", domain=MS_DOMAIN)
@_typed_by_op
def qlinear_concat_shape(node: NodeView) -> list[Optional[Shape]]:
    shapes = [node.input_shape(i) for i in range(2, len(node.inputs), 3)]
    if not shapes:
        raise UnsupportedAttributes("QLinearConcat without inputs")
    axis = normalize_axis(int(node.attr("axis", 0)), len(shapes[0]), node.op_type)
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [tuple(out)]


def contrib_output_elem_type(node: NodeView) -> Optional[int]:
    """Output element type of the com.microsoft ops above whose output dtype is NOT that of
    input 0 (the engine's contrib shape resolution otherwise copies input 0's)."""
    if node.op_type == "QGemm":
        if node.has_input(8):
            return node.input(8).dtype
        return TensorProto.FLOAT if not node.has_input(7) else node.input(0).dtype
    if node.op_type == "MatMulIntegerToFloat":
        return node.input(2).dtype
    if node.op_type == "QLinearConcat":
        return node.input(1).dtype
    if node.op_type == "QuantizeLinear":
        return node.input(2).dtype if node.has_input(2) else TensorProto.UINT8
    if node.op_type == "DequantizeLinear":
        return node.input(1).dtype
    return None
