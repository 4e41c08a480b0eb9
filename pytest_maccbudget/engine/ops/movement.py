"""Data movement, bookkeeping and resampling.

Free by rule (0 MACs, 0 FLOPs): ops that only alias, copy, index or generate data. Which
of them copy bytes (and so count as memory traffic) is the integrator's business; the two
frozensets below say which ones do not.

Costed here: Resize / Upsample, GridSample, AffineGrid, Col2Im, and ScatterND /
ScatterElements when they reduce into the target.
Interpolation rule: a 1-D interpolation over T taps costs 2T - 1 FLOPs (T multiplies,
T - 1 adds; a lerp a + t(b - a) is the T = 2 case: 3). An N-D interpolation is done axis
by axis, innermost axis first: with taps T_1..T_d on the resized axes (outer to inner),
FLOPs per output element = sum_j (T_1 x ... x T_(j-1)) x (2 T_j - 1). Equal taps give
linear 3 (2^d - 1): 3 / 9 / 21 for 1-/2-/3-D; cubic 7 (4^d - 1) / 3: 7 / 35 / 147.
Nearest is a copy: 0.
"""
from __future__ import annotations

import math
from typing import Sequence

from ..registry import register, register_free
from ..types import NodeView, OpCost, UnresolvedShape, UnsupportedAttributes, numel

# Outputs share the input buffer (no bytes move).
ALIAS_OPS: frozenset[str] = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})
# No copy at all: aliases, plus Concat (producers write straight into the output buffer).
NO_COPY_OPS: frozenset[str] = ALIAS_OPS | {"Concat"}

# Ops that copy or gather data into a new buffer: 0 FLOPs, bytes count as traffic.
COPY_OPS: tuple[str, ...] = (
    "Transpose", "Gather", "GatherElements", "GatherND", "Slice", "Pad", "Split", "Tile", "Expand",
    "DepthToSpace", "SpaceToDepth", "Scatter", "Compress", "ReverseSequence", "Trilu", "CenterCropPad",
    "TensorScatter", "SplitToSequence", "ConcatFromSequence", "SequenceAt", "SequenceConstruct",
    "SequenceInsert", "SequenceErase",
)
# Bookkeeping and generators: shapes, constants, casts, index/mask producers, random numbers.
BOOKKEEPING_OPS: tuple[str, ...] = (
    "Shape", "Size", "Constant", "ConstantOfShape", "Cast", "CastLike", "BitCast", "Range", "EyeLike",
    "OneHot", "NonZero", "Optional", "OptionalGetElement", "OptionalHasElement", "SequenceEmpty",
    "SequenceLength", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
    "Bernoulli", "Multinomial",
)
FREE_OPS: tuple[str, ...] = tuple(sorted(NO_COPY_OPS)) + COPY_OPS + BOOKKEEPING_OPS

register_free(*FREE_OPS)

LINEAR_TAPS = 2
CUBIC_TAPS = 4
# Per grid point and spatial axis, GridSample's coordinate work: unnormalize (3: add, mul,
# sub or div), then nearest: round (1); linear: floor and fraction (2); cubic: floor and
# fraction (2) + 4 cubic weights by Horner (6 each).
GRID_UNNORMALIZE = 3
GRID_COORD_EXTRA = {"nearest": 1, "linear": 2, "cubic": 2 + 4 * 6}


# ---- pure shape math -------------------------------------------------------------------

def interpolation_flops(taps: Sequence[int]) -> int:
    """Per output element: sum_j (prod of taps of outer axes) x (2 T_j - 1)."""
    total, outer = 0, 1
    for t in taps:
        total += outer * (2 * t - 1)
        outer *= t
    return total


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def resize_taps(mode: str, in_size: int, out_size: int, antialias: bool) -> int:
    """Taps on one resized axis. Antialiased downscaling widens the filter by in/out:
    linear 2 x ceil(in/out), cubic 2 + 2 x ceil(2 in/out) (the onnx reference's footprint)."""
    downscale = antialias and out_size < in_size
    if mode == "linear":
        return LINEAR_TAPS * ceil_div(in_size, out_size) if downscale else LINEAR_TAPS
    if mode == "cubic":
        return 2 + 2 * ceil_div(2 * in_size, out_size) if downscale else CUBIC_TAPS
    raise UnsupportedAttributes(f"Resize: mode={mode!r} has no counting rule")


def resized_axes(in_shape: Sequence[int], out_shape: Sequence[int], cropped: Sequence[int] = ()) -> list[int]:
    """Axes that are interpolated: those whose size changes, plus cropped axes."""
    return [a for a in range(len(in_shape)) if in_shape[a] != out_shape[a] or a in cropped]


def resize_flops(mode: str, in_shape: Sequence[int], out_shape: Sequence[int],
                 antialias: bool = False, cropped: Sequence[int] = ()) -> int:
    """Output elements x interpolation FLOPs over the resized axes; nearest is 0."""
    if mode == "nearest":
        return 0
    axes = resized_axes(in_shape, out_shape, cropped)
    if any(out_shape[a] == 0 for a in range(len(out_shape))):
        return 0
    taps = [resize_taps(mode, in_shape[a], out_shape[a], antialias) for a in axes]
    return numel(out_shape) * interpolation_flops(taps)


def grid_sample_flops(mode: str, out_shape: Sequence[int]) -> int:
    """Interpolation per output element + coordinate work per grid point and axis."""
    spatial = len(out_shape) - 2
    taps = {"nearest": 0, "linear": LINEAR_TAPS, "cubic": CUBIC_TAPS}[mode]
    per_output = interpolation_flops([taps] * spatial) if taps else 0
    grid_points = out_shape[0] * math.prod(out_shape[2:])
    return per_output * numel(out_shape) + grid_points * spatial * (GRID_UNNORMALIZE + GRID_COORD_EXTRA[mode])


# ---- adapters ----------------------------------------------------------------------------

_MODE_ALIASES = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}


def _mode(node: NodeView, default: str) -> str:
    mode = str(node.attr("mode", default)).lower()
    return _MODE_ALIASES.get(mode, mode)


def _cropped_axes(node: NodeView, rank: int) -> list[int]:
    """tf_crop_and_resize: axes whose roi is not the full [0, 1] range are interpolated."""
    if str(node.attr("coordinate_transformation_mode", "half_pixel")) != "tf_crop_and_resize":
        return []
    if not node.has_input(1):
        return []
    roi = [float(v) for v in node.input_value(1).reshape(-1)]
    axes = [int(a) % rank for a in node.attr("axes", list(range(rank)))]
    if len(roi) != 2 * len(axes):
        raise UnsupportedAttributes(f"Resize: roi has {len(roi)} values for {len(axes)} axes")
    starts, ends = roi[: len(axes)], roi[len(axes):]
    return [a for a, s, e in zip(axes, starts, ends) if s != 0.0 or e != 1.0]


@register("Resize", "Upsample")
def resize_cost(node: NodeView) -> OpCost:
    """Resize / Upsample: nearest 0; linear / cubic: output elements x interpolation FLOPs."""
    mode = _mode(node, "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise UnsupportedAttributes(f"{node.op_type}: mode={mode!r} has no counting rule")
    in_shape, out_shape = node.input_shape(0), node.output_shape(0)
    if len(in_shape) != len(out_shape):
        raise UnresolvedShape(node.outputs[0].name if node.outputs[0] else node.name)
    cropped = _cropped_axes(node, len(in_shape)) if node.op_type == "Resize" and mode != "nearest" else []
    antialias = int(node.attr("antialias", 0)) == 1
    return OpCost(flops=resize_flops(mode, in_shape, out_shape, antialias, cropped))


@register("GridSample")
def grid_sample_cost(node: NodeView) -> OpCost:
    """GridSample: output elements x interpolation FLOPs + grid points x axes x coordinate FLOPs."""
    mode = _mode(node, "linear")
    if mode not in GRID_COORD_EXTRA:
        raise UnsupportedAttributes(f"GridSample: mode={mode!r} has no counting rule")
    return OpCost(flops=grid_sample_flops(mode, node.output_shape(0)))


@register("AffineGrid")
def affine_grid_cost(node: NodeView) -> OpCost:
    """AffineGrid: a MatMul of each (d+1)-vector (x, y[, z], 1) by theta: (d+1) MACs, 2d+1 FLOPs per output."""
    out_shape = node.output_shape(0)
    d = out_shape[-1] if out_shape else 0
    elements = numel(out_shape)
    return OpCost(macs=(d + 1) * elements, flops=(2 * d + 1) * elements)


@register("Col2Im")
def col2im_cost(node: NodeView) -> OpCost:
    """Col2Im: 1 add per input element (each column entry accumulated into the image)."""
    return OpCost(flops=numel(node.input_shape(0)))


@register("ScatterND", "ScatterElements")
def scatter_cost(node: NodeView) -> OpCost:
    """ScatterND / ScatterElements: 0 (a copy); with reduction add/mul/max/min, 1 FLOP per update element."""
    reduction = str(node.attr("reduction", "none"))
    if reduction == "none":
        return OpCost()
    if reduction not in ("add", "mul", "max", "min"):
        raise UnsupportedAttributes(f"{node.op_type}: reduction={reduction!r} has no counting rule")
    return OpCost(flops=numel(node.input_shape(2)))

