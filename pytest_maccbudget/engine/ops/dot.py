"""Dot-product layers: Conv, ConvTranspose, Gemm, MatMul, Einsum (+ com.microsoft fused forms).

These are the only float ops counted in MACs. One MAC = one multiply plus one accumulate
inside a dot product. FLOPs follow the contract: a dot product of length K costs K
multiplies and K - 1 adds, i.e. 2 x MACs - outputs; a bias adds one add per output
element. Pure shape math sits in small functions; the NodeView adapters only pick the
numbers out of the node. docs/counting.md states the same rules.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from ..registry import CONV, DEPTHWISE_CONV, FOLD_BACKWARD, FOLD_FORWARD, MATMUL, register, register_shape
from ..types import InputsDoNotFit, NodeView, OpCost, Shape, UnresolvedShape, UnsupportedAttributes, numel
from ._common import MS_DOMAIN, broadcast_shapes
from .activations import ACTIVATION_FLOPS

# FLOPs per element of the activations a com.microsoft Fused* op may apply after its dot
# product: the same numbers as the stand-alone activation ops (Clip with both bounds: 2).
FUSED_ACTIVATION_FLOPS: dict[str, int] = {
    "": 0,
    "Clip": 2,
    **{name: ACTIVATION_FLOPS[name] for name in ("Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid")},
}

# --- pure shape math ----------------------------------------------------------------------


def dot_flops(macs: int, outputs: int) -> int:
    """Dot products totalling `macs` products into `outputs` sums: MACs multiplies plus
    MACs - outputs adds (= 2 x MACs - outputs). An empty dot product (K = 0) costs 0."""
    return macs + max(macs - outputs, 0)


def conv_macs(output_shape: Sequence[int], cin_per_group: int, kernel: Sequence[int]) -> int:
    """Regular convolution: every output element is a dot product of (Cin/g) x prod(kernel)."""
    return numel(output_shape) * cin_per_group * math.prod(kernel)


def conv_transpose_macs(input_shape: Sequence[int], cout_per_group: int, kernel: Sequence[int]) -> int:
    """Transposed convolution, input-based: every input element (N x Cin x spatial in)
    scatters into (Cout/g) x prod(kernel) outputs."""
    return numel(input_shape) * cout_per_group * math.prod(kernel)


def matmul_output_shape(a: Sequence[int], b: Sequence[int]) -> Shape:
    """numpy.matmul shape rule: 1-D operands get a dim prepended/appended and then dropped."""
    if not a or not b:
        raise ValueError("MatMul operands must have rank >= 1")
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise ValueError(f"MatMul inner dims differ: {a} x {b}")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = [*batch, a2[-2], b2[-1]]
    if len(b) == 1:
        out.pop(-1)
    if len(a) == 1:
        out.pop(-2 if len(b) != 1 else -1)
    return tuple(out)


def gemm_output_shape(a: Sequence[int], b: Sequence[int], trans_a: bool, trans_b: bool) -> Shape:
    """[M, N] of op(A) x op(B), op = transpose when the flag is set."""
    m = a[1] if trans_a else a[0]
    n = b[0] if trans_b else b[1]
    return (m, n)


def conv_output_shape(
    x: Sequence[int],
    w: Sequence[int],
    strides: Optional[Sequence[int]] = None,
    pads: Optional[Sequence[int]] = None,
    dilations: Optional[Sequence[int]] = None,
    auto_pad: str = "NOTSET",
) -> Shape:
    """ONNX Conv output shape [N, Cout, O1..Ok] from X [N, Cin, D1..Dk] and W [Cout, Cin/g, k1..kk]."""
    spatial = len(x) - 2
    strides = list(strides or [1] * spatial)
    dilations = list(dilations or [1] * spatial)
    pads = list(pads or [0] * (2 * spatial))
    out = [x[0], w[0]]
    for axis in range(spatial):
        size, stride = x[2 + axis], strides[axis]
        extent = (w[2 + axis] - 1) * dilations[axis] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-size // stride))
        elif auto_pad == "VALID":
            out.append((size - extent) // stride + 1)
        else:
            out.append((size + pads[axis] + pads[axis + spatial] - extent) // stride + 1)
    return tuple(out)


def transpose_touched_positions(
    input_size: int, kernel: int, stride: int, dilation: int, pad_begin: int, output_size: int
) -> int:
    """Positions of one ConvTranspose output axis that receive at least one product:
    output o is hit when o + pad_begin = i * stride + j * dilation (i < input_size, j < kernel).

    Closed form, in O(kernel) whatever the input size: the taps j whose offsets j * dilation
    share a remainder r modulo the stride hit the positions r + stride * m for m in one run of
    input_size consecutive integers each; the runs of one remainder are merged and clipped to
    the output window."""
    if input_size <= 0 or kernel <= 0 or output_size <= 0:
        return 0
    low, high = pad_begin, pad_begin + output_size - 1  # the uncropped positions kept
    runs_by_remainder: dict[int, list[int]] = {}
    for tap in range(kernel):
        offset = tap * dilation
        runs_by_remainder.setdefault(offset % stride, []).append(offset // stride)
    return sum(_hits_of_runs(sorted(set(starts)), remainder, input_size, stride, low, high)
               for remainder, starts in runs_by_remainder.items())


def _hits_of_runs(starts: list[int], remainder: int, length: int, stride: int, low: int, high: int) -> int:
    """Distinct m covered by the runs [s, s + length - 1] (s in starts, sorted) with
    low <= remainder + stride * m <= high."""
    first = max(-((remainder - low) // stride), 0)  # ceil((low - remainder) / stride), and m >= 0
    last = (high - remainder) // stride
    hits, covered_to = 0, first - 1
    for start in starts:
        begin, end = max(start, covered_to + 1), min(start + length - 1, last)
        if end >= begin:
            hits += end - begin + 1
            covered_to = end
    return hits


def transpose_pad_begin(
    input_size: int, kernel: int, stride: int, dilation: int, output_padding: int,
    output_size: int, explicit_pad: Optional[int], auto_pad: str,
) -> int:
    """The leading crop of one ConvTranspose axis, per the ONNX spec's padding equations."""
    if explicit_pad is not None:
        return explicit_pad
    total = stride * (input_size - 1) + output_padding + (kernel - 1) * dilation + 1 - output_size
    if auto_pad == "SAME_UPPER":
        return total // 2
    return total - total // 2


# --- NodeView adapters --------------------------------------------------------------------


def _ints(node: NodeView, name: str, count: int, default: int) -> list[int]:
    value = node.attr(name)
    if value is None or len(value) == 0:
        return [default] * count
    if len(value) != count:
        raise UnsupportedAttributes(f"{node.op_type} {name}={list(value)} does not match {count} spatial axes")
    return [int(v) for v in value]


def _auto_pad(node: NodeView) -> str:
    return str(node.attr("auto_pad", "NOTSET") or "NOTSET")


def _conv_weight_dims(node: NodeView, x_index: int, w_index: int, transposed: bool) -> tuple[int, list[int]]:
    """(channels per group taken from W, kernel dims) of a Conv-like node.

    Conv: W = [Cout, Cin/g, k...] gives Cin/g. ConvTranspose: W = [Cin, Cout/g, k...] gives
    Cout/g. Falls back on X's channels, `group` and `kernel_shape` when W's shape is unknown.
    """
    w = node.input(w_index).shape
    if w is not None and len(w) >= 2:
        _check_channels(node, x_index, w_index, transposed)
        return int(w[1]), [int(k) for k in w[2:]]
    kernel = node.attr("kernel_shape")
    if kernel is None:
        raise UnresolvedShape(node.input(w_index).name)
    group = int(node.attr("group", 1))
    if transposed:
        out_channels = node.output_shape(0)[1]
        return out_channels // group, [int(k) for k in kernel]
    in_channels = node.input_shape(x_index)[1]
    return in_channels // group, [int(k) for k in kernel]


def _check_channels(node: NodeView, x_index: int, w_index: int, transposed: bool) -> None:
    """X's channels are those W reads: Cin = W[1] x group for a Conv, W[0] for a ConvTranspose.
    Another count (an input given other dims than the export's) would be counted for a node
    that cannot run."""
    x, w = node.input(x_index), node.input(w_index)
    if x.shape is None or len(x.shape) < 2 or w.shape is None or x.bounded or w.bounded or not w.is_constant:
        # a channel count known only as an upper bound may be larger than the run's; a weight that
        # is a graph input may have had a dim set by --batch (W[0] is ConvTranspose's Cin)
        return
    group = int(node.attr("group", 1) or 1)
    reads = w.shape[0] if transposed else w.shape[1] * group
    if x.shape[1] != reads:
        how = f"{list(w.shape)}" + (f" with group {group}" if group != 1 and not transposed else "")
        raise InputsDoNotFit(f"input {x.name!r} {list(x.shape)} has {x.shape[1]} channels where weight {w.name!r} "
                             f"{how} reads {reads}: the inputs do not fit {node.op_type}")


def conv_class(node: NodeView, x_index: int = 0) -> str:
    """Depthwise when every group is one input channel (group == channels > 1), else conv."""
    group = int(node.attr("group", 1) or 1)
    x = node.inputs[x_index] if x_index < len(node.inputs) else None
    channels = x.shape[1] if x is not None and x.shape is not None and len(x.shape) > 1 else None
    return DEPTHWISE_CONV if group > 1 and channels == group else CONV


def conv_like_macs(node: NodeView, x_index: int = 0, w_index: int = 1) -> int:
    """MACs of a Conv-shaped node (X at `x_index`, W at `w_index`), from the output shape."""
    cin_per_group, kernel = _conv_weight_dims(node, x_index, w_index, transposed=False)
    return conv_macs(node.output_shape(0), cin_per_group, kernel)


@register("Conv", op_class=conv_class, fold_into=[FOLD_BACKWARD, FOLD_FORWARD])
def conv_cost(node: NodeView) -> OpCost:
    """MACs = N x Cout x prod(out spatial) x (Cin/g) x prod(kernel); FLOPs = 2 x MACs - outputs (+ outputs if bias B)."""
    macs = conv_like_macs(node)
    outputs = node.output_numel(0)
    flops = dot_flops(macs, outputs) + (outputs if node.has_input(2) else 0)
    return OpCost(macs, flops)


@register("ConvTranspose", op_class=conv_class, fold_into=[FOLD_BACKWARD])
def conv_transpose_cost(node: NodeView) -> OpCost:
    """MACs = N x Cin x prod(in spatial) x (Cout/g) x prod(kernel); FLOPs = 2 x MACs - T (+ outputs if bias),
    T = output elements that receive at least one product (= all outputs unless stride leaves gaps)."""
    x = node.input_shape(0)
    cout_per_group, kernel = _conv_weight_dims(node, 0, 1, transposed=True)
    macs = conv_transpose_macs(x, cout_per_group, kernel)
    y = node.output_shape(0)
    outputs = numel(y)
    touched = y[0] * y[1] * _transpose_touched_spatial(node, x, y, kernel)
    flops = macs + max(macs - touched, 0) + (outputs if node.has_input(2) else 0)
    return OpCost(macs, flops)


def _transpose_touched_spatial(node: NodeView, x: Shape, y: Shape, kernel: list[int]) -> int:
    spatial = len(x) - 2
    if len(y) != len(x) or len(kernel) != spatial:
        raise UnsupportedAttributes(f"ConvTranspose ranks differ: X {x}, Y {y}, kernel {kernel}")
    strides = _ints(node, "strides", spatial, 1)
    dilations = _ints(node, "dilations", spatial, 1)
    output_padding = _ints(node, "output_padding", spatial, 0)
    auto_pad = _auto_pad(node)
    explicit = node.attr("output_shape") is None and auto_pad in ("NOTSET", "VALID")
    pads = _ints(node, "pads", 2 * spatial, 0) if explicit else None
    touched = 1
    for axis in range(spatial):
        pad_begin = transpose_pad_begin(
            x[2 + axis], kernel[axis], strides[axis], dilations[axis], output_padding[axis],
            y[2 + axis], pads[axis] if pads is not None else None, auto_pad,
        )
        touched *= transpose_touched_positions(
            x[2 + axis], kernel[axis], strides[axis], dilations[axis], pad_begin, y[2 + axis]
        )
    return touched


def gemm_inner_dim(node: NodeView, trans_a: int, trans_b: int, a_index: int = 0, b_index: int = 1) -> int:
    """K of Y = A' x B' where A' = A^T if transA, B' = B^T if transB."""
    a = node.input(a_index).shape
    if a is not None and len(a) == 2:
        return int(a[0] if trans_a else a[1])
    b = node.input_shape(b_index)
    if len(b) != 2:
        raise UnsupportedAttributes(f"{node.op_type} needs 2-D operands, got B {b}")
    return int(b[1] if trans_b else b[0])


@register("Gemm", op_class=MATMUL, fold_into=[FOLD_BACKWARD])
def gemm_cost(node: NodeView) -> OpCost:
    """MACs = M x K x N; FLOPs = (2K - 1) x M x N, + M x N for C, + M x N each for alpha != 1 and beta != 1 (with C)."""
    k = gemm_inner_dim(node, int(node.attr("transA", 0)), int(node.attr("transB", 0)))
    outputs = node.output_numel(0)
    macs = outputs * k
    flops = dot_flops(macs, outputs) + _scale_and_bias_flops(node, outputs, c_index=2)
    return OpCost(macs, flops)


def _scale_and_bias_flops(node: NodeView, outputs: int, c_index: int) -> int:
    """alpha != 1: one multiply per output; C present with beta != 0: one add per output,
    plus one multiply per output when beta != 1."""
    flops = outputs if float(node.attr("alpha", 1.0)) != 1.0 else 0
    beta = float(node.attr("beta", 1.0))
    if node.has_input(c_index) and beta != 0.0:
        flops += outputs + (outputs if beta != 1.0 else 0)
    return flops


def matmul_inner_dim(node: NodeView, a_index: int = 0, b_index: int = 1) -> int:
    """K of a numpy-rule matmul: A's last dim (or B's first / second-last when A is unknown)."""
    a = node.input(a_index).shape
    if a is not None and len(a) >= 1:
        return int(a[-1])
    b = node.input_shape(b_index)
    return int(b[0] if len(b) == 1 else b[-2])


def matmul_like_macs(node: NodeView, a_index: int = 0, b_index: int = 1) -> int:
    """MACs = numel(Y) x K: every output element is one dot product of length K."""
    return node.output_numel(0) * matmul_inner_dim(node, a_index, b_index)


@register("MatMul", op_class=MATMUL)
def matmul_cost(node: NodeView) -> OpCost:
    """MACs = B x M x K x N (B = broadcast batch; 1-D operands drop M or N); FLOPs = (2K - 1) x B x M x N."""
    macs = matmul_like_macs(node)
    return OpCost(macs, dot_flops(macs, node.output_numel(0)))


# --- Einsum -------------------------------------------------------------------------------


def parse_einsum(equation: str, shapes: Sequence[Sequence[int]]) -> tuple[dict[str, int], int]:
    """Extents of every distinct label (ellipsis dims as labels '.0', '.1'...) and the operand count.

    A label seen with extents 1 and n broadcasts to n; ellipsis dims broadcast right-aligned.
    """
    equation = equation.replace(" ", "")
    inputs = equation.split("->")[0].split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"equation {equation!r} has {len(inputs)} operands, node has {len(shapes)}")
    extents: dict[str, int] = {}

    def bind(label: str, extent: int) -> None:
        known = extents.get(label)
        if known is None or known == 1:
            extents[label] = extent  # the first extent seen, or a broadcast 1 (to n, or to 0)
        elif extent != 1 and known != extent:
            raise ValueError(f"label {label!r} has extents {known} and {extent}")

    for term, shape in zip(inputs, shapes):
        if "..." in term:
            head, tail = term.split("...")
            ellipsis_rank = len(shape) - len(head) - len(tail)
            if ellipsis_rank < 0:
                raise ValueError(f"term {term!r} does not fit shape {tuple(shape)}")
            labels = list(head) + [f".{ellipsis_rank - 1 - i}" for i in range(ellipsis_rank)] + list(tail)
        else:
            labels = list(term)
        if len(labels) != len(shape):
            raise ValueError(f"term {term!r} does not fit shape {tuple(shape)}")
        for label, extent in zip(labels, shape):
            bind(label, int(extent))
    return extents, len(inputs)


def einsum_cost_from(extents: dict[str, int], operands: int, outputs: int) -> tuple[int, int]:
    """(MACs, FLOPs). P = product of all distinct label extents (the joint index space).
    >= 2 operands: MACs = P, FLOPs = (operands - 1) x P multiplies + (P - outputs) adds.
    1 operand (transpose, diagonal, reduction): MACs = 0, FLOPs = P - outputs adds."""
    points = math.prod(extents.values())
    adds = max(points - outputs, 0)
    if operands >= 2:
        return points, (operands - 1) * points + adds
    return 0, adds


@register("Einsum", op_class=MATMUL)
def einsum_cost(node: NodeView) -> OpCost:
    """MACs = product of all distinct index extents (>= 2 operands; 0 for one operand);
    FLOPs = (operands - 1) x P + (P - outputs)."""
    equation = node.attr("equation")
    if not equation:
        raise UnsupportedAttributes("Einsum without an equation")
    shapes = [node.input_shape(i) for i in range(len(node.inputs))]
    try:
        extents, operands = parse_einsum(str(equation), shapes)
    except ValueError as error:
        raise UnsupportedAttributes(f"Einsum: {error}") from error
    try:
        outputs = node.output_numel(0)
    except UnresolvedShape:
        outputs = einsum_output_numel(str(equation), extents)
    macs, flops = einsum_cost_from(extents, operands, outputs)
    return OpCost(macs, flops)


def einsum_output_numel(equation: str, extents: dict[str, int]) -> int:
    """Output elements from the equation: the explicit output term, or (implicit form) the
    ellipsis dims plus the letters that appear exactly once, per numpy."""
    equation = equation.replace(" ", "")
    ellipsis = [label for label in extents if label.startswith(".")]
    if "->" in equation:
        term = equation.split("->")[1]
        labels = [c for c in term.replace("...", "") if c != "."] + (ellipsis if "..." in term else [])
    else:
        letters = equation.replace("...", "").replace(",", "")
        labels = [c for c in set(letters) if letters.count(c) == 1] + ellipsis
    return math.prod(extents[label] for label in labels)


# --- com.microsoft fused forms ------------------------------------------------------------


def _activation_flops(node: NodeView, outputs: int) -> int:
    activation = str(node.attr("activation", "") or "")
    if activation not in FUSED_ACTIVATION_FLOPS:
        raise UnsupportedAttributes(f"{node.op_type} activation {activation!r} has no counting rule")
    return FUSED_ACTIVATION_FLOPS[activation] * outputs


@register("FusedConv", domain=MS_DOMAIN, op_class=conv_class)
def fused_conv_cost(node: NodeView) -> OpCost:
    """Conv rule, + outputs for the optional sum input Z, + the activation's FLOPs per output."""
    macs = conv_like_macs(node)
    outputs = node.output_numel(0)
    flops = dot_flops(macs, outputs) + (outputs if node.has_input(2) else 0)
    flops += (outputs if node.has_input(3) else 0) + _activation_flops(node, outputs)
    return OpCost(macs, flops)


@register("FusedGemm", domain=MS_DOMAIN, op_class=MATMUL)
def fused_gemm_cost(node: NodeView) -> OpCost:
    """Gemm rule + the activation's FLOPs per output element."""
    base = gemm_cost(node)
    return OpCost(base.macs, base.flops + _activation_flops(node, node.output_numel(0)))


def _check_no_batch_transpose(node: NodeView) -> None:
    if int(node.attr("transBatchA", 0)) or int(node.attr("transBatchB", 0)):
        raise UnsupportedAttributes(f"{node.op_type} with transBatchA/transBatchB has no counting rule")


@register("FusedMatMul", domain=MS_DOMAIN, op_class=MATMUL)
def fused_matmul_cost(node: NodeView) -> OpCost:
    """MatMul rule on op(A) x op(B) (transA/transB), + outputs when alpha != 1."""
    _check_no_batch_transpose(node)
    a = node.input(0).shape
    if a is not None and len(a) >= 1:
        k = int(a[-2] if int(node.attr("transA", 0)) and len(a) >= 2 else a[-1])
    else:
        b = node.input_shape(1)
        k = int(b[0] if len(b) == 1 else (b[-1] if int(node.attr("transB", 0)) else b[-2]))
    outputs = node.output_numel(0)
    macs = outputs * k
    flops = dot_flops(macs, outputs) + (outputs if float(node.attr("alpha", 1.0)) != 1.0 else 0)
    return OpCost(macs, flops)


@register_shape("FusedConv", domain=MS_DOMAIN)
def fused_conv_shape(node: NodeView) -> list[Optional[Shape]]:
    w = node.input_shape(1)
    kernel = node.attr("kernel_shape")
    if kernel is not None and list(kernel) != list(w[2:]):
        raise UnsupportedAttributes("FusedConv kernel_shape differs from W")
    return [conv_output_shape(
        node.input_shape(0), w, node.attr("strides"), node.attr("pads"), node.attr("dilations"), _auto_pad(node),
    )]


@register_shape("FusedGemm", domain=MS_DOMAIN)
def fused_gemm_shape(node: NodeView) -> list[Optional[Shape]]:
    trans_a, trans_b = bool(int(node.attr("transA", 0))), bool(int(node.attr("transB", 0)))
    return [gemm_output_shape(node.input_shape(0), node.input_shape(1), trans_a, trans_b)]


def transposed_last2(shape: Shape, transpose: bool) -> Shape:
    return (*shape[:-2], shape[-1], shape[-2]) if transpose and len(shape) >= 2 else shape


@register_shape("FusedMatMul", domain=MS_DOMAIN)
def fused_matmul_shape(node: NodeView) -> list[Optional[Shape]]:
    _check_no_batch_transpose(node)
    a = transposed_last2(node.input_shape(0), bool(int(node.attr("transA", 0))))
    b = transposed_last2(node.input_shape(1), bool(int(node.attr("transB", 0))))
    return [matmul_output_shape(a, b)]
