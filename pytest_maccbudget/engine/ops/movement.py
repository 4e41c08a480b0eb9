"""Data movement, bookkeeping and resampling.

Free by rule (0 MACs, 0 FLOPs): ops that only alias, copy, index or generate data. Their
registrations say which of them move no bytes (views, Concat), which inputs are shapes
rather than weights, and, for NonZero and Compress, the largest output the data can give.

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
from typing import Optional, Sequence, Union

from onnx import TensorProto

from ..registry import (
    ALIAS,
    ELEMENTWISE,
    FROM_SHAPE,
    IN_PLACE,
    MATMUL,
    MOVEMENT,
    OTHER,
    RANDOM,
    STORED,
    TypedShape,
    register,
    register_free,
)
from ..types import NodeView, OpCost, Shape, UnresolvedShape, UnsupportedAttributes, numel
from ._common import normalize_axis

# ---- free ops and their traits ------------------------------------------------------------
# Views: the output shares the input's buffer (no bytes move). Inputs listed in shape_inputs
# are shapes, axes or scalars: constants fed there are not parameters.
register_free("Reshape", "Squeeze", "Unsqueeze", op_class=MOVEMENT, buffer=ALIAS, shape_inputs=[1])
register_free("Flatten", "Identity", op_class=MOVEMENT, buffer=ALIAS)
# Inference-mode Dropout is the identity: its mask output is never produced.
register_free("Dropout", op_class=MOVEMENT, buffer=ALIAS, shape_inputs=[1, 2], inference_outputs=1)
# Concat's producers write straight into its output buffer: no copy.
register_free("Concat", op_class=MOVEMENT, buffer=IN_PLACE)

# Copies into a new buffer: 0 FLOPs, their bytes count as memory traffic.
register_free("Transpose", "GatherND", "DepthToSpace", "SpaceToDepth", "Scatter", "ReverseSequence",
              "CenterCropPad", "TensorScatter", "SplitToSequence", "ConcatFromSequence", "SequenceAt",
              "SequenceConstruct", "SequenceInsert", "SequenceErase", op_class=MOVEMENT)
register_free("Gather", "GatherElements", "Split", "Tile", "Expand", "Trilu", op_class=MOVEMENT, shape_inputs=[1])
register_free("Slice", op_class=MOVEMENT, shape_inputs=[1, 2, 3, 4])
register_free("Pad", op_class=MOVEMENT, shape_inputs=[1, 2, 3])


def compress_bounds(node: NodeView) -> list[Optional[Shape]]:
    """Compress keeps the slices whose condition is true: at most all of them, and never more
    than the condition has entries."""
    shape, condition = node.input_shape(0), numel(node.input_shape(1))
    axis = node.attr("axis")
    if axis is None:
        return [(min(numel(shape), condition),)]
    axis = normalize_axis(int(axis), len(shape), node.op_type)
    return [(*shape[:axis], min(shape[axis], condition), *shape[axis + 1:])]


register_free("Compress", op_class=MOVEMENT, bounds=compress_bounds)

# Bookkeeping and generators: shapes, constants, casts, index/mask producers, random numbers.
register_free("Shape", "Size", op_class=OTHER, constant=FROM_SHAPE)
register_free("Constant", op_class=OTHER, constant=STORED)
register_free("ConstantOfShape", op_class=OTHER, constant=STORED, shape_inputs=[0])
register_free("Cast", "CastLike", "BitCast", op_class=ELEMENTWISE)
register_free("Range", op_class=OTHER, shape_inputs=[0, 1, 2])
register_free("OneHot", op_class=OTHER, shape_inputs=[1])
register_free("EyeLike", "Optional", "OptionalGetElement", "OptionalHasElement", "SequenceEmpty", "SequenceLength",
              op_class=OTHER)
register_free("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
              op_class=OTHER, constant=RANDOM)


def nonzero_bounds(node: NodeView) -> list[Optional[Union[Shape, TypedShape]]]:
    """NonZero: one int64 column per non-zero element, at most every element."""
    shape = node.input_shape(0)
    return [TypedShape((len(shape), numel(shape)), TensorProto.INT64)]


register_free("NonZero", op_class=OTHER, bounds=nonzero_bounds)

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
    axes = [normalize_axis(int(a), rank, node.op_type) for a in node.attr("axes", list(range(rank)))]
    if len(roi) != 2 * len(axes):
        raise UnsupportedAttributes(f"Resize: roi has {len(roi)} values for {len(axes)} axes")
    starts, ends = roi[: len(axes)], roi[len(axes):]
    return [a for a, s, e in zip(axes, starts, ends) if s != 0.0 or e != 1.0]


@register("Resize", op_class=MOVEMENT, shape_inputs=[1, 2, 3])
@register("Upsample", op_class=MOVEMENT, shape_inputs=[1])
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


@register("GridSample", op_class=MOVEMENT)
def grid_sample_cost(node: NodeView) -> OpCost:
    """GridSample: output elements x interpolation FLOPs + grid points x axes x coordinate FLOPs."""
    mode = _mode(node, "linear")
    if mode not in GRID_COORD_EXTRA:
        raise UnsupportedAttributes(f"GridSample: mode={mode!r} has no counting rule")
    return OpCost(flops=grid_sample_flops(mode, node.output_shape(0)))


@register("AffineGrid", op_class=MATMUL)
def affine_grid_cost(node: NodeView) -> OpCost:
    """AffineGrid: a MatMul of each (d+1)-vector (x, y[, z], 1) by theta: (d+1) MACs, 2d+1 FLOPs per output."""
    out_shape = node.output_shape(0)
    d = out_shape[-1] if out_shape else 0
    elements = numel(out_shape)
    return OpCost(macs=(d + 1) * elements, flops=(2 * d + 1) * elements)


@register("Col2Im", op_class=MOVEMENT)
def col2im_cost(node: NodeView) -> OpCost:
    """Col2Im: 1 add per input element (each column entry accumulated into the image)."""
    return OpCost(flops=numel(node.input_shape(0)))


@register("ScatterND", "ScatterElements", op_class=MOVEMENT)
def scatter_cost(node: NodeView) -> OpCost:
    """ScatterND / ScatterElements: 0 (a copy); with reduction add/mul/max/min, 1 FLOP per update element."""
    reduction = str(node.attr("reduction", "none"))
    if reduction == "none":
        return OpCost()
    if reduction not in ("add", "mul", "max", "min"):
        raise UnsupportedAttributes(f"{node.op_type}: reduction={reduction!r} has no counting rule")
    return OpCost(flops=numel(node.input_shape(2)))

