"""Pooling family: FLOPs only, 0 MACs.

Rule (the contract): window pooling costs one FLOP per window tap per output,
N x C x prod(out spatial) x prod(kernel), over every spatial axis (1-D, 2-D, 3-D). For
average pooling that is exact: K - 1 adds and 1 divide per output. Stride, padding,
dilation and ceil_mode enter only through the output shape. Global pooling costs
N x C x prod(in spatial). Lp pooling adds |x| and x^p per tap: 3 per tap.
RoI pooling counts its taps per RoI; where they depend on RoI coordinates that are not
constant, the node is reported as unresolved (never guessed).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..registry import POOLING, register, register_free
from ..types import NodeView, OpCost, UnresolvedShape, UnsupportedAttributes, numel

LP_PER_TAP = 3  # |x|, x^p, and the add (the p-th root per output replaces the last add)
BILINEAR_FLOPS = 9  # one bilinear sample = 3 lerps of 3 FLOPs (sub, mul, add)
ROI_ALIGN_PER_SAMPLE = BILINEAR_FLOPS + 1  # the sample, plus its share of the bin's reduction


# ---- pure shape math -------------------------------------------------------------------

def window_pool_flops(output_elements: int, kernel_shape: Sequence[int]) -> int:
    """N x C x prod(out spatial) x prod(kernel)."""
    return output_elements * math.prod(kernel_shape)


def _round_half_away(value: float) -> int:
    """C's round(): halves go away from zero (Caffe's RoI pooling uses it)."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def max_roi_pool_taps(rois: np.ndarray, spatial_scale: float, pooled: Sequence[int], height: int, width: int) -> int:
    """Sum over RoIs and bins of the bin areas (feature cells compared), one channel.

    Follows the reference: RoI corners rounded after scaling, RoI size at least 1 cell,
    bin i spans [floor(i * size / pooled), ceil((i + 1) * size / pooled)) from the RoI
    start, clipped to the map.
    """
    total = 0
    pooled_h, pooled_w = int(pooled[0]), int(pooled[1])
    for roi in np.asarray(rois, dtype=np.float64).reshape(-1, 5):
        x1, y1, x2, y2 = (_round_half_away(float(v) * spatial_scale) for v in roi[1:5])
        rows = _bin_extents(y1, max(y2 - y1 + 1, 1), pooled_h, height)
        cols = _bin_extents(x1, max(x2 - x1 + 1, 1), pooled_w, width)
        total += sum(rows) * sum(cols)
    return total


def _bin_extents(start: int, size: int, bins: int, limit: int) -> list[int]:
    extents = []
    for i in range(bins):
        lo = min(max(start + (i * size) // bins, 0), limit)
        hi = min(max(start - ((-(i + 1) * size) // bins), 0), limit)
        extents.append(max(hi - lo, 0))
    return extents


def roi_align_adaptive_samples(rois: np.ndarray, spatial_scale: float, output_hw: Sequence[int], half_pixel: bool) -> int:
    """Sum over RoIs of the samples per bin when sampling_ratio = 0:
    ceil(roi_h / out_h) x ceil(roi_w / out_w), RoI size in feature cells."""
    total = 0
    out_h, out_w = int(output_hw[0]), int(output_hw[1])
    for roi in np.asarray(rois, dtype=np.float64).reshape(-1, 4):
        x1, y1, x2, y2 = (float(v) * spatial_scale for v in roi)
        roi_w, roi_h = x2 - x1, y2 - y1
        if not half_pixel:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        total += max(math.ceil(roi_h / out_h), 1) * max(math.ceil(roi_w / out_w), 1)
    return total


# ---- adapters ----------------------------------------------------------------------------

def _kernel_shape(node: NodeView) -> list[int]:
    kernel = node.attr("kernel_shape")
    if not kernel:
        raise UnsupportedAttributes(f"{node.op_type}: kernel_shape attribute is missing")
    return [int(k) for k in kernel]


@register("MaxPool", "AveragePool", op_class=POOLING)
def window_pool_cost(node: NodeView) -> OpCost:
    """MaxPool / AveragePool: N x C x prod(out spatial) x prod(kernel) FLOPs."""
    return OpCost(macs=0, flops=window_pool_flops(node.output_numel(0), _kernel_shape(node)))


@register("LpPool", op_class=POOLING)
def lp_pool_cost(node: NodeView) -> OpCost:
    """LpPool: 3 x N x C x prod(out spatial) x prod(kernel) FLOPs (|x|, x^p, add per tap)."""
    return OpCost(macs=0, flops=LP_PER_TAP * window_pool_flops(node.output_numel(0), _kernel_shape(node)))


@register("GlobalMaxPool", "GlobalAveragePool", op_class=POOLING)
def global_pool_cost(node: NodeView) -> OpCost:
    """GlobalMaxPool / GlobalAveragePool: N x C x prod(in spatial) FLOPs (input elements)."""
    return OpCost(macs=0, flops=numel(node.input_shape(0)))


@register("GlobalLpPool", op_class=POOLING)
def global_lp_pool_cost(node: NodeView) -> OpCost:
    """GlobalLpPool: 3 x N x C x prod(in spatial) FLOPs."""
    return OpCost(macs=0, flops=LP_PER_TAP * numel(node.input_shape(0)))


@register("MaxRoiPool", op_class=POOLING)
def max_roi_pool_cost(node: NodeView) -> OpCost:
    """MaxRoiPool: C x sum over RoIs of the cells in each bin (compares); needs constant rois."""
    x_shape = node.input_shape(0)
    pooled = node.attr("pooled_shape")
    if not pooled or len(pooled) != 2 or len(x_shape) != 4:
        raise UnsupportedAttributes("MaxRoiPool: needs a 4-D input and a 2-value pooled_shape")
    rois = node.input_value(1)  # raises UnresolvedShape(what="value") when rois are computed at run time
    taps = max_roi_pool_taps(rois, float(node.attr("spatial_scale", 1.0)), pooled, x_shape[2], x_shape[3])
    return OpCost(macs=0, flops=x_shape[1] * taps)


@register("RoiAlign", op_class=POOLING)
def roi_align_cost(node: NodeView) -> OpCost:
    """RoiAlign: 10 FLOPs per sample (bilinear 9 + 1 reduction) x S samples per output bin."""
    out_shape = node.output_shape(0)
    ratio = int(node.attr("sampling_ratio", 0))
    if ratio > 0:
        return OpCost(macs=0, flops=ROI_ALIGN_PER_SAMPLE * ratio * ratio * numel(out_shape))
    if len(out_shape) != 4:
        raise UnresolvedShape(node.outputs[0].name if node.outputs[0] else node.name)
    rois = node.input_value(1)  # adaptive sampling depends on RoI sizes
    half_pixel = str(node.attr("coordinate_transformation_mode", "half_pixel")) == "half_pixel"
    samples = roi_align_adaptive_samples(rois, float(node.attr("spatial_scale", 1.0)), out_shape[2:], half_pixel)
    per_roi_bins = out_shape[1] * out_shape[2] * out_shape[3]
    return OpCost(macs=0, flops=ROI_ALIGN_PER_SAMPLE * samples * per_roi_bins,
                  note="sampling_ratio=0: samples per bin from the constant RoI sizes")


# MaxUnpool scatters values into a zero tensor: a copy, no arithmetic.
register_free("MaxUnpool", op_class=POOLING)
