"""Normalization and softmax family: FLOPs only, 0 MACs.

Rule: each op costs the primitives of its definition (the ONNX function body where the
spec has one), split into work per element (E = elements of the input) and work per
normalized group (G = number of groups that share one mean / variance / sum). The shared
building blocks are:

- moments core (mean and variance, then normalize) = 5 per element + 4 per group:
  mean 1, square 1, mean of squares 1, subtract mean 1, divide 1 per element; square of
  the mean, subtract, add epsilon, sqrt per group (LayerNormalization's function body).
- RMS core = 3 per element + 2 per group: square, mean, divide per element; add epsilon,
  sqrt per group (RMSNormalization's function body).
- an affine scale or shift adds 1 per element each.
- Softmax = 5 per element: max-reduce compare, subtract, exp, sum, divide.

BatchNormalization here is the unfolded case (2 per element); whether a BN folds into a
neighbouring Conv/Gemm is decided by a graph pass, not here.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from onnx import TensorProto

from ..registry import AFFINE_WHOLE, NORMALIZATION, TypedShape, register, register_shape
from ..types import NodeView, OpCost, Shape, UnsupportedAttributes, numel
from ._common import MS_DOMAIN, SOFTMAX, normalize_axis

# Per-element and per-group FLOPs of the shared building blocks.
MOMENTS_PER_ELEMENT = 5  # mean, square, mean of squares, subtract mean, divide
MOMENTS_PER_GROUP = 4  # mean squared, variance subtract, add epsilon, sqrt
RMS_PER_ELEMENT = 3  # square, mean, divide
RMS_PER_GROUP = 2  # add epsilon, sqrt
AFFINE_PER_ELEMENT = 1  # one multiply (scale) or one add (shift)
BATCHNORM_PER_ELEMENT = 2  # scale and shift with precomputed per-channel constants
LOG_SOFTMAX_PER_ELEMENT = 5  # max-reduce compare, subtract, exp, sum, subtract log-sum
LRN_FIXED_PER_ELEMENT = 4  # alpha/size multiply, add bias, pow beta, divide (plus square and window adds)


# ---- pure shape math -------------------------------------------------------------------

def groups_before_axis(shape: Sequence[int], axis: int) -> int:
    """Groups when axes [axis, rank) are normalized together: prod(shape[:axis])."""
    return math.prod(shape[:axis])


def groups_over_axes(shape: Sequence[int], axes: Sequence[int]) -> int:
    """Groups when the listed axes are reduced: E / prod(shape[a] for a in axes)."""
    reduced = math.prod(shape[a] for a in axes)
    return numel(shape) // reduced if reduced else 0


def moments_norm_flops(elements: int, groups: int, affine_terms: int) -> int:
    """Mean/variance normalization: 5E + 4G, plus E per affine term (scale, shift)."""
    return (MOMENTS_PER_ELEMENT + AFFINE_PER_ELEMENT * affine_terms) * elements + MOMENTS_PER_GROUP * groups


def rms_norm_flops(elements: int, groups: int, affine_terms: int) -> int:
    """RMS normalization: 3E + 2G, plus E per affine term."""
    return (RMS_PER_ELEMENT + AFFINE_PER_ELEMENT * affine_terms) * elements + RMS_PER_GROUP * groups


def lrn_flops(elements: int, size: int) -> int:
    """LRN: square 1 + (size - 1) window adds + 4 (scale, bias, pow, divide) per element."""
    return (1 + (size - 1) + LRN_FIXED_PER_ELEMENT) * elements


def lp_norm_flops(elements: int, groups: int, p: int) -> int:
    """LpNormalization: p=2: square E, adds E-G, sqrt G, divide E = 3E; p=1: abs E, adds E-G, divide E."""
    if p == 2:
        return elements + (elements - groups) + groups + elements
    if p == 1:
        return elements + (elements - groups) + elements
    raise UnsupportedAttributes(f"LpNormalization: p={p} has no counting rule (the spec allows 1 or 2)")


# ---- adapters ----------------------------------------------------------------------------

def _flops(flops: int, note: str = "") -> OpCost:
    return OpCost(macs=0, flops=flops, note=note)


@register("BatchNormalization", op_class=NORMALIZATION, affine=AFFINE_WHOLE)
def batch_normalization_cost(node: NodeView) -> OpCost:
    """BatchNormalization (inference, not folded): 2 FLOPs per element (scale, shift)."""
    if int(node.attr("training_mode", 0)) == 1:
        raise UnsupportedAttributes("BatchNormalization: training_mode=1 has no counting rule (inference only)")
    return _flops(BATCHNORM_PER_ELEMENT * numel(node.input_shape(0)))


@register("InstanceNormalization", op_class=NORMALIZATION)
def instance_normalization_cost(node: NodeView) -> OpCost:
    """InstanceNormalization: 7E + 4G FLOPs, G = N x C (moments core, scale, shift)."""
    shape = node.input_shape(0)
    return _flops(moments_norm_flops(numel(shape), math.prod(shape[:2]), affine_terms=2))


@register("LayerNormalization", op_class=NORMALIZATION)
def layer_normalization_cost(node: NodeView) -> OpCost:
    """LayerNormalization: 6E + 4G FLOPs (+E with bias B), G = prod(shape[:axis])."""
    shape = node.input_shape(0)
    axis = normalize_axis(int(node.attr("axis", -1)), len(shape), node.op_type)
    affine = 1 + (1 if node.has_input(2) else 0)
    return _flops(moments_norm_flops(numel(shape), groups_before_axis(shape, axis), affine))


@register("GroupNormalization", op_class=NORMALIZATION)
def group_normalization_cost(node: NodeView) -> OpCost:
    """GroupNormalization: 7E + 4G FLOPs, G = N x num_groups."""
    shape = node.input_shape(0)
    num_groups = node.attr("num_groups")
    if num_groups is None:
        raise UnsupportedAttributes("GroupNormalization: num_groups attribute is missing")
    return _flops(moments_norm_flops(numel(shape), shape[0] * int(num_groups), affine_terms=2))


@register("RMSNormalization", op_class=NORMALIZATION)
def rms_normalization_cost(node: NodeView) -> OpCost:
    """RMSNormalization: 4E + 2G FLOPs (RMS core + scale), G = prod(shape[:axis])."""
    shape = node.input_shape(0)
    axis = normalize_axis(int(node.attr("axis", -1)), len(shape), node.op_type)
    return _flops(rms_norm_flops(numel(shape), groups_before_axis(shape, axis), affine_terms=1))


@register("SimplifiedLayerNormalization", op_class=NORMALIZATION)
@register("SimplifiedLayerNormalization", domain=MS_DOMAIN, op_class=NORMALIZATION)
def simplified_layer_normalization_cost(node: NodeView) -> OpCost:
    """SimplifiedLayerNormalization (ORT RMSNorm): 4E + 2G FLOPs, G = prod(shape[:axis])."""
    return rms_normalization_cost(node)


@register("MeanVarianceNormalization", op_class=NORMALIZATION)
def mean_variance_normalization_cost(node: NodeView) -> OpCost:
    """MeanVarianceNormalization: 5E + 4G FLOPs, G = E / prod(shape[axes]) (axes default [0, 2, 3])."""
    shape = node.input_shape(0)
    axes = [normalize_axis(int(a), len(shape), node.op_type) for a in node.attr("axes", [0, 2, 3])]
    return _flops(moments_norm_flops(numel(shape), groups_over_axes(shape, axes), affine_terms=0))


@register("LpNormalization", op_class=NORMALIZATION)
def lp_normalization_cost(node: NodeView) -> OpCost:
    """LpNormalization: p=2: 3E FLOPs; p=1: 3E - G FLOPs; G = E / shape[axis]."""
    shape = node.input_shape(0)
    axis = normalize_axis(int(node.attr("axis", -1)), len(shape), node.op_type)
    return _flops(lp_norm_flops(numel(shape), groups_over_axes(shape, [axis]), int(node.attr("p", 2))))


@register("LRN", op_class=NORMALIZATION)
def lrn_cost(node: NodeView) -> OpCost:
    """LRN: (size + 4) FLOPs per element (square, size-1 window adds, scale, bias, pow, divide)."""
    size = node.attr("size")
    if size is None:
        raise UnsupportedAttributes("LRN: size attribute is missing")
    return _flops(lrn_flops(numel(node.input_shape(0)), int(size)))


@register("Softmax", op_class=NORMALIZATION)
def softmax_cost(node: NodeView) -> OpCost:
    """Softmax: 5 FLOPs per element (max compare, subtract, exp, sum, divide)."""
    return _flops(SOFTMAX * numel(node.input_shape(0)))


@register("LogSoftmax", op_class=NORMALIZATION)
def log_softmax_cost(node: NodeView) -> OpCost:
    """LogSoftmax: 5E + G FLOPs (max, subtract, exp, sum, subtract per element; one log per row).

    From opset 13 a row runs along `axis`; before, a row is everything from `axis` on."""
    shape = node.input_shape(0)
    if not shape:
        return _flops(LOG_SOFTMAX_PER_ELEMENT + 1)
    elements = numel(shape)
    if 0 < node.opset < 13:
        axis = normalize_axis(int(node.attr("axis", 1)), len(shape), node.op_type)
        return _flops(LOG_SOFTMAX_PER_ELEMENT * elements + numel(shape[:axis]))
    axis = normalize_axis(int(node.attr("axis", -1)), len(shape), node.op_type)
    return _flops(LOG_SOFTMAX_PER_ELEMENT * elements + groups_over_axes(shape, [axis]))


@register("Hardmax", op_class=NORMALIZATION)
def hardmax_cost(node: NodeView) -> OpCost:
    """Hardmax: 1 FLOP (compare) per element; writing the one-hot result is free."""
    return _flops(numel(node.input_shape(0)))


@register("BiasSoftmax", domain=MS_DOMAIN, op_class=NORMALIZATION)
def bias_softmax_cost(node: NodeView) -> OpCost:
    """BiasSoftmax: 6 FLOPs per element (bias add, then Softmax's 5)."""
    return _flops((1 + SOFTMAX) * numel(node.input_shape(0)))


def _skip_adds(node: NodeView) -> int:
    """Residual adds before the norm: the skip add, plus the optional bias add."""
    return 1 + (1 if node.has_input(4 if node.op_type == "SkipLayerNormalization" else 3) else 0)


@register("SkipLayerNormalization", domain=MS_DOMAIN, op_class=NORMALIZATION)
def skip_layer_normalization_cost(node: NodeView) -> OpCost:
    """SkipLayerNormalization: (1 + [bias] + 6 + [beta])E + 4G FLOPs, G = E / hidden."""
    shape = node.input_shape(0)
    elements = numel(shape)
    affine = 1 + (1 if node.has_input(3) else 0)
    groups = elements // shape[-1] if shape and shape[-1] else 0
    return _flops(_skip_adds(node) * elements + moments_norm_flops(elements, groups, affine))


@register("SkipSimplifiedLayerNormalization", domain=MS_DOMAIN, op_class=NORMALIZATION)
def skip_simplified_layer_normalization_cost(node: NodeView) -> OpCost:
    """SkipSimplifiedLayerNormalization: (1 + [bias] + 4)E + 2G FLOPs, G = E / hidden."""
    shape = node.input_shape(0)
    elements = numel(shape)
    groups = elements // shape[-1] if shape and shape[-1] else 0
    return _flops(_skip_adds(node) * elements + rms_norm_flops(elements, groups, affine_terms=1))


# ---- output shapes of ops onnx shape inference does not know ----------------------------

def _stat_shape(shape: Shape, axis: int, dtype: int = TensorProto.FLOAT) -> TypedShape:
    """A saved statistic (mean, inv_std_var): normalized axes set to 1, float32 by default."""
    return TypedShape(tuple(shape[:axis]) + (1,) * (len(shape) - axis), dtype)


@register_shape("SkipLayerNormalization", "SkipSimplifiedLayerNormalization", domain=MS_DOMAIN)
def skip_layer_normalization_shapes(node: NodeView) -> list[Optional[Shape | TypedShape]]:
    """output, mean, inv_std_var, input_skip_bias_sum."""
    shape = node.input_shape(0)
    stat = _stat_shape(shape, len(shape) - 1)
    return [shape, stat, stat, shape][: len(node.outputs)]


@register_shape("SimplifiedLayerNormalization", domain=MS_DOMAIN)
@register_shape("SimplifiedLayerNormalization", "LayerNormalization", domain="")
def layer_normalization_shapes(node: NodeView) -> list[Optional[Shape | TypedShape]]:
    """Y like X; saved statistics with the normalized axes set to 1 (contrib / pre-opset-17 forms)."""
    shape = node.input_shape(0)
    axis = normalize_axis(int(node.attr("axis", -1)), len(shape), node.op_type)
    stat = _stat_shape(shape, axis, int(node.attr("stash_type", TensorProto.FLOAT)))
    return [shape] + [stat] * (len(node.outputs) - 1)


@register_shape("BiasSoftmax", domain=MS_DOMAIN)
def bias_softmax_shapes(node: NodeView) -> list[Optional[Shape]]:
    return [node.input_shape(0)]
