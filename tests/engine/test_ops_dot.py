"""Dot-product ops: Conv, ConvTranspose, Gemm, MatMul, Einsum and the com.microsoft fused forms.

Every expected number is a closed form written out by hand.
"""
from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.ops.dot import einsum_output_numel, parse_einsum, transpose_touched_positions
from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.results import UNKNOWN, UNRESOLVED
from pytest_maccbudget.engine.types import OpCost, UnsupportedAttributes
from tests.engine.onnx_build import node_cost, single_node_model, weight

MS = "com.microsoft"


def ms_cost(op_type: str, inputs: dict[str, Any], **kwargs: Any) -> OpCost:
    """node_cost for a com.microsoft op (output shapes come from its registered shape function)."""
    return node_cost(op_type, inputs, domain=MS, **kwargs)


# --- the contract's acceptance numbers (batch 1) ------------------------------------------


def test_fc_300_to_100_gemm():
    cost = node_cost("Gemm", {"x": [1, 300], "w": weight(100, 300), "b": weight(100)}, attrs={"transB": 1})
    assert cost.macs == 300 * 100 == 30_000
    assert cost.flops == (2 * 300 - 1) * 100 + 100


def test_fc_300_to_100_matmul():
    cost = node_cost("MatMul", {"x": [1, 300], "w": weight(300, 100)})
    assert cost.macs == 30_000
    assert cost.flops == (2 * 300 - 1) * 100


def test_conv3x3_64_to_128_same_padding():
    cost = node_cost("Conv", {"x": [1, 64, 112, 112], "w": weight(128, 64, 3, 3)}, attrs={"pads": [1, 1, 1, 1]})
    assert cost.macs == 3 * 3 * 64 * 112 * 112 * 128 == 924_844_032
    assert cost.flops == 2 * 924_844_032 - 128 * 112 * 112


def test_conv3x3_with_bias_adds_one_flop_per_output():
    cost = node_cost("Conv", {"x": [1, 64, 112, 112], "w": weight(128, 64, 3, 3), "b": weight(128)},
                     attrs={"pads": [1, 1, 1, 1]})
    assert cost.macs == 924_844_032
    assert cost.flops == 2 * 924_844_032 - 128 * 112 * 112 + 128 * 112 * 112


@pytest.mark.parametrize("attrs", [
    {"pads": [1, 1, 1, 1], "strides": [2, 2]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
])
def test_conv3x3_stride2(attrs):
    cost = node_cost("Conv", {"x": [1, 64, 112, 112], "w": weight(128, 64, 3, 3)}, attrs=attrs)
    assert cost.macs == 3 * 3 * 64 * 56 * 56 * 128 == 231_211_008
    assert cost.flops == 2 * 231_211_008 - 128 * 56 * 56


def test_mobilenet_v1_block():
    depthwise = node_cost("Conv", {"x": [1, 64, 112, 112], "w": weight(64, 1, 3, 3)},
                          attrs={"pads": [1, 1, 1, 1], "group": 64})
    pointwise = node_cost("Conv", {"x": [1, 64, 112, 112], "w": weight(128, 64, 1, 1)})
    assert depthwise.macs == 3 * 3 * 64 * 112 * 112 == 7_225_344
    assert pointwise.macs == 64 * 112 * 112 * 128 == 102_760_448
    assert depthwise.macs + pointwise.macs == 109_985_792
    assert depthwise.flops == 2 * 7_225_344 - 64 * 112 * 112
    assert pointwise.flops == 2 * 102_760_448 - 128 * 112 * 112


def test_mobilenet_v2_block():
    expand = node_cost("Conv", {"x": [1, 64, 112, 112], "w": weight(384, 64, 1, 1)})
    depthwise = node_cost("Conv", {"x": [1, 384, 112, 112], "w": weight(384, 1, 3, 3)},
                          attrs={"pads": [1, 1, 1, 1], "group": 384})
    project = node_cost("Conv", {"x": [1, 384, 112, 112], "w": weight(128, 384, 1, 1)})
    assert expand.macs == 64 * 112 * 112 * 384
    assert depthwise.macs == 3 * 3 * 384 * 112 * 112
    assert project.macs == 384 * 128 * 112 * 112
    assert expand.macs + depthwise.macs + project.macs == (3 * 3 + 128 + 64) * 384 * 112 * 112 == 968_196_096


# --- Conv variants --------------------------------------------------------------------------


def test_conv_batch_multiplies():
    cost = node_cost("Conv", {"x": [4, 3, 32, 32], "w": weight(16, 3, 3, 3)}, attrs={"pads": [1, 1, 1, 1]})
    assert cost.macs == 4 * 16 * 32 * 32 * 3 * 3 * 3
    assert cost.flops == 2 * cost.macs - 4 * 16 * 32 * 32


def test_conv1d_strided():
    cost = node_cost("Conv", {"x": [2, 16, 100], "w": weight(32, 16, 5)}, attrs={"strides": [2]})
    # Lout = (100 - 5) // 2 + 1 = 48
    assert cost.macs == 2 * 32 * 48 * 16 * 5 == 245_760
    assert cost.flops == 2 * 245_760 - 2 * 32 * 48


def test_conv3d():
    cost = node_cost("Conv", {"x": [1, 4, 8, 8, 8], "w": weight(8, 4, 3, 3, 3)}, attrs={"pads": [1] * 6})
    assert cost.macs == 8 * 8 * 8 * 8 * 4 * 27 == 442_368


def test_conv_groups():
    cost = node_cost("Conv", {"x": [1, 32, 10, 10], "w": weight(64, 8, 3, 3)}, attrs={"group": 4})
    assert cost.macs == 64 * 8 * 8 * (32 // 4) * 3 * 3 == 294_912


def test_conv_dilation_enters_only_through_output_size():
    cost = node_cost("Conv", {"x": [1, 3, 32, 32], "w": weight(16, 3, 3, 3)}, attrs={"dilations": [2, 2]})
    # dilated extent 5 -> 28 x 28 outputs, still 3 x 3 taps each
    assert cost.macs == 16 * 28 * 28 * 3 * 3 * 3 == 338_688


def test_conv_valid_autopad_rectangular_kernel():
    cost = node_cost("Conv", {"x": [1, 2, 9, 7], "w": weight(3, 2, 3, 1)}, attrs={"auto_pad": "VALID", "strides": [2, 1]})
    # H: (9 - 3) // 2 + 1 = 4, W: 7
    assert cost.macs == 3 * 4 * 7 * 2 * 3 * 1 == 504


def test_conv_weight_as_graph_input_uses_kernel_shape():
    cost = node_cost("Conv", {"x": [1, 8, 6, 6], "w": [4, 8, 3, 3]}, attrs={"kernel_shape": [3, 3]})
    assert cost.macs == 4 * 4 * 4 * 8 * 9 == 4_608


# --- ConvTranspose ----------------------------------------------------------------------------


def test_conv_transpose_pinned_3_to_1():
    cost = node_cost("ConvTranspose", {"x": [1, 3, 2, 2], "w": weight(3, 1, 2, 2)}, attrs={"strides": [2, 2]})
    assert cost.macs == 1 * 2 * 2 * 3 * 1 * 2 * 2 == 48
    assert cost.flops == 2 * 48 - 1 * 1 * 4 * 4  # 80


def test_conv_transpose_pinned_3_to_1_bias():
    cost = node_cost("ConvTranspose", {"x": [1, 3, 2, 2], "w": weight(3, 1, 2, 2), "b": weight(1)},
                     attrs={"strides": [2, 2]})
    assert cost.macs == 48
    assert cost.flops == 2 * 48 - 16 + 16


def test_conv_transpose_pinned_64_to_32():
    cost = node_cost("ConvTranspose", {"x": [1, 64, 28, 28], "w": weight(64, 32, 4, 4)},
                     attrs={"strides": [2, 2], "pads": [1, 1, 1, 1]})
    assert cost.macs == 28 * 28 * 64 * 32 * 4 * 4 == 25_690_112
    assert cost.flops == 2 * 25_690_112 - 32 * 56 * 56


def test_conv_transpose_groups():
    cost = node_cost("ConvTranspose", {"x": [1, 8, 5, 5], "w": weight(8, 3, 3, 3)}, attrs={"group": 2})
    # Cout = 2 * 3 = 6, output 7 x 7
    assert cost.macs == 5 * 5 * 8 * 3 * 3 * 3 == 5_400
    assert cost.flops == 2 * 5_400 - 6 * 7 * 7


def test_conv_transpose_1d_batch():
    cost = node_cost("ConvTranspose", {"x": [2, 4, 10], "w": weight(4, 2, 3)})
    assert cost.macs == 2 * 10 * 4 * 2 * 3 == 480
    assert cost.flops == 2 * 480 - 2 * 2 * 12


def test_conv_transpose_stride_larger_than_kernel_counts_touched_outputs():
    cost = node_cost("ConvTranspose", {"x": [1, 2, 3, 3], "w": weight(2, 1, 1, 1)}, attrs={"strides": [3, 3]})
    # output 7 x 7 = 49, only 3 x 3 = 9 receive products (2 each)
    assert cost.macs == 3 * 3 * 2 * 1 == 18
    assert cost.flops == 18 + (18 - 9)


def test_conv_transpose_output_padding_untouched_positions():
    cost = node_cost("ConvTranspose", {"x": [1, 1, 2, 2], "w": weight(1, 1, 1, 1)},
                     attrs={"strides": [2, 2], "output_padding": [1, 1]})
    # output 4 x 4; products land on positions {0, 2} per axis: 4 touched, 1 product each
    assert cost.macs == 4
    assert cost.flops == 4


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 2], "output_shape": [8, 8]},
])
def test_conv_transpose_upsample_x2(attrs):
    cost = node_cost("ConvTranspose", {"x": [1, 1, 4, 4], "w": weight(1, 1, 3, 3)}, attrs=attrs)
    assert cost.macs == 4 * 4 * 3 * 3 == 144
    assert cost.flops == 2 * 144 - 8 * 8


def test_conv_transpose_output_padding_row_gets_no_product():
    cost = node_cost("ConvTranspose", {"x": [1, 1, 4, 4], "w": weight(1, 1, 3, 3)},
                     attrs={"strides": [2, 2], "pads": [1, 1, 0, 0], "output_padding": [1, 1]})
    # output 2*3 + 1 + 3 - 1 = 9 per axis; the last (output_padding) row/column gets no product
    assert cost.macs == 144
    assert cost.flops == 144 + (144 - 8 * 8)


def _touched_by_enumeration(size: int, kernel: int, stride: int, dilation: int, pad: int, out: int) -> int:
    """Every product's position, listed: the definition the closed form must match."""
    hits = {i * stride + j * dilation - pad for i in range(size) for j in range(kernel)}
    return sum(1 for position in hits if 0 <= position < out)


def test_conv_transpose_touched_positions_closed_form_matches_enumeration():
    for size in (1, 2, 5):
        for kernel in (1, 2, 3, 5):
            for stride in (1, 2, 3, 7):
                for dilation in (1, 2, 3):
                    full = (size - 1) * stride + (kernel - 1) * dilation + 1
                    for pad, out in ((0, full), (1, full - 2), (2, full), (-1, full + 3)):
                        expected = _touched_by_enumeration(size, kernel, stride, dilation, pad, max(out, 0))
                        assert transpose_touched_positions(size, kernel, stride, dilation, pad, max(out, 0)) == expected


def test_conv_transpose_stride_above_kernel_on_a_huge_input_is_instant():
    # 2^40 input positions, kernel 3, stride 8: each input scatters into 3 separate outputs.
    # The count is closed form: no array proportional to the input is made.
    length = 1 << 40
    tracemalloc.start()
    try:
        started = time.perf_counter()
        cost = node_cost("ConvTranspose", {"x": [1, 1, length], "w": weight(1, 1, 3)}, attrs={"strides": [8]})
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cost.macs == 3 * length
    assert cost.flops == cost.macs + (cost.macs - 3 * length)
    assert elapsed < 1.0 and peak < 10_000_000


# --- Gemm -------------------------------------------------------------------------------------


def test_gemm_no_bias():
    cost = node_cost("Gemm", {"a": [8, 64], "b": weight(64, 10)})
    assert cost.macs == 8 * 64 * 10 == 5_120
    assert cost.flops == (2 * 64 - 1) * 8 * 10


def test_gemm_trans_a():
    cost = node_cost("Gemm", {"a": [300, 1], "b": weight(300, 100)}, attrs={"transA": 1})
    assert cost.macs == 30_000
    assert cost.flops == 599 * 100


def test_gemm_alpha_beta_each_add_a_multiply_per_output():
    cost = node_cost("Gemm", {"a": [1, 300], "b": weight(100, 300), "c": weight(100)},
                     attrs={"transB": 1, "alpha": 0.5, "beta": 2.0})
    assert cost.macs == 30_000
    assert cost.flops == 599 * 100 + 100 + 100 + 100  # dot, alpha, C add, beta


def test_gemm_beta_zero_ignores_c():
    cost = node_cost("Gemm", {"a": [2, 3], "b": weight(3, 4), "c": weight(2, 4)}, attrs={"beta": 0.0})
    assert cost.macs == 24
    assert cost.flops == 5 * 8


# --- MatMul -----------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, macs, outputs, k", [
    ([2, 3, 4], [4, 5], 2 * 3 * 4 * 5, 2 * 3 * 5, 4),
    ([2, 1, 3, 4], [5, 4, 6], 2 * 5 * 3 * 4 * 6, 2 * 5 * 3 * 6, 4),  # broadcast batch B = 2 x 5
    ([7], [7], 7, 1, 7),  # dot product
    ([4], [4, 5], 4 * 5, 5, 4),  # 1-D A: M dropped
    ([3, 4], [4], 3 * 4, 3, 4),  # 1-D B: N dropped
    ([6, 4], [2, 4, 3], 2 * 6 * 4 * 3, 2 * 6 * 3, 4),
])
def test_matmul(a, b, macs, outputs, k):
    cost = node_cost("MatMul", {"a": a, "b": b})
    assert cost.macs == macs
    assert cost.flops == (2 * k - 1) * outputs


# --- Einsum -----------------------------------------------------------------------------------


@pytest.mark.parametrize("equation, shapes, macs, flops", [
    ("bij,bjk->bik", [[2, 3, 4], [2, 4, 5]], 2 * 3 * 4 * 5, 2 * 120 - 2 * 3 * 5),
    ("ij,jk", [[3, 4], [4, 5]], 3 * 4 * 5, 2 * 60 - 15),  # implicit output ik
    ("i,j->ij", [[3], [4]], 12, 12),  # outer product: multiplies only
    ("ij,ij->ij", [[3, 4], [3, 4]], 12, 12),  # element-wise product
    ("ij,jk,kl->il", [[2, 3], [3, 4], [4, 5]], 120, 2 * 120 + (120 - 10)),
    ("...ij,jk->...ik", [[2, 3, 4], [4, 5]], 2 * 3 * 4 * 5, 2 * 120 - 30),
    ("ij->ji", [[3, 4]], 0, 0),  # transpose
    ("ij->i", [[3, 4]], 0, 12 - 3),  # row sums
    ("ii->i", [[5, 5]], 0, 0),  # diagonal
    ("ii->", [[5, 5]], 0, 5 - 1),  # trace
    ("bhqd,bhkd->bhqk", [[1, 2, 8, 16], [1, 2, 8, 16]], 2 * 8 * 8 * 16, 2 * 2048 - 2 * 8 * 8),
    ("bij,bjk->bik", [[2, 0, 16], [2, 16, 32]], 0, 0),  # an empty dim: nothing to compute
    ("bij,bjk->bik", [[2, 4, 0], [2, 0, 32]], 0, 0),  # an empty contraction: 0 products
    ("ij,jk->ik", [[1, 4], [4, 0]], 0, 0),
])
def test_einsum(equation, shapes, macs, flops):
    cost = node_cost("Einsum", {f"x{i}": s for i, s in enumerate(shapes)}, attrs={"equation": equation})
    assert cost.macs == macs
    assert cost.flops == flops


@pytest.mark.parametrize("equation, shapes, outputs", [
    ("bij,bjk->bik", [[2, 3, 4], [2, 4, 5]], 2 * 3 * 5),
    ("ij,jk", [[3, 4], [4, 5]], 3 * 5),
    ("...ij,...jk", [[2, 3, 4], [4, 5]], 2 * 3 * 5),
    ("ii->", [[5, 5]], 1),
])
def test_einsum_output_size_from_equation(equation, shapes, outputs):
    """Fallback used when shape inference leaves the Einsum output unknown."""
    extents, _ = parse_einsum(equation, shapes)
    assert einsum_output_numel(equation, extents) == outputs


# --- com.microsoft fused forms --------------------------------------------------------------


def test_fused_conv_relu_bias():
    cost = ms_cost("FusedConv", {"x": [1, 3, 8, 8], "w": weight(4, 3, 3, 3), "b": weight(4)},
                   attrs={"pads": [1, 1, 1, 1], "activation": "Relu"})
    assert cost.macs == 4 * 8 * 8 * 3 * 9 == 6_912
    assert cost.flops == 2 * 6_912 - 256 + 256 + 256


def test_fused_conv_sum_and_sigmoid_strided():
    cost = ms_cost("FusedConv", {"x": [1, 3, 8, 8], "w": weight(4, 3, 3, 3), "b": None, "z": [1, 4, 4, 4]},
                   attrs={"strides": [2, 2], "pads": [1, 1, 1, 1], "activation": "Sigmoid"})
    assert cost.macs == 4 * 4 * 4 * 3 * 9 == 1_728
    assert cost.flops == 2 * 1_728 - 64 + 64 + 4 * 64


def test_fused_gemm_leaky_relu():
    cost = ms_cost("FusedGemm", {"a": [4, 8], "b": weight(8, 6), "c": weight(6)}, attrs={"activation": "LeakyRelu"})
    assert cost.macs == 4 * 8 * 6 == 192
    assert cost.flops == 2 * 192 - 24 + 24 + 2 * 24


def test_fused_matmul_trans_b_alpha():
    cost = ms_cost("FusedMatMul", {"a": [2, 3, 4], "b": [2, 5, 4]}, attrs={"transB": 1, "alpha": 0.5})
    assert cost.macs == 2 * 3 * 4 * 5 == 120
    assert cost.flops == 7 * 30 + 30


def test_fused_matmul_trans_a():
    cost = ms_cost("FusedMatMul", {"a": [2, 4, 3], "b": [4, 5]}, attrs={"transA": 1})
    assert cost.macs == 2 * 3 * 4 * 5
    assert cost.flops == 7 * 30


def test_fused_conv_unknown_activation_is_not_silent():
    with pytest.raises(UnsupportedAttributes):
        ms_cost("FusedConv", {"x": [1, 3, 8, 8], "w": weight(4, 3, 3, 3)}, attrs={"activation": "Mish"})


def test_registered_dot_ops():
    for op in ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"):
        assert REGISTRY.lookup(op) is not None
    for op in ("FusedConv", "FusedGemm", "FusedMatMul"):
        assert REGISTRY.lookup(op, MS) is not None
        assert REGISTRY.shape_fn(op, MS) is not None


# --- inputs that do not fit the op -------------------------------------------------------


@pytest.mark.parametrize("op_type, x, w, attrs, message", [
    ("Conv", [1, 4, 8, 8], (4, 3, 3, 3), {},
     "input 'x' [1, 4, 8, 8] has 4 channels where weight 'w' [4, 3, 3, 3] reads 3: the inputs do not fit Conv"),
    ("Conv", [1, 4, 8, 8], (4, 3, 3, 3), {"group": 2},
     "input 'x' [1, 4, 8, 8] has 4 channels where weight 'w' [4, 3, 3, 3] with group 2 reads 6"),
    ("ConvTranspose", [1, 3, 8, 8], (4, 3, 3, 3), {},
     "input 'x' [1, 3, 8, 8] has 3 channels where weight 'w' [4, 3, 3, 3] reads 4: the inputs do not fit ConvTranspose"),
])
def test_a_conv_whose_input_has_other_channels_than_its_weight_reads_is_not_counted(op_type, x, w, attrs, message):
    # onnx's inference gives the output a shape all the same: the count (3,888 MACs for the first)
    # would be one of a node that cannot run
    profile = profile_model(single_node_model(op_type, {"x": x, "w": weight(*w)}, attrs=attrs, opset=17))
    layer = profile.layer("node")
    assert layer.status == UNKNOWN and layer.macs is None and message in layer.note
    assert profile.partial


def test_a_conv_whose_channels_fit_is_counted_with_groups_and_transposed():
    # 6 channels in 2 groups of 3: 4 x 6 x 6 outputs x 3 x 3 x 3 MACs each
    assert node_cost("Conv", {"x": [1, 6, 8, 8], "w": weight(4, 3, 3, 3)}, attrs={"group": 2}).macs == 4 * 36 * 27
    # ConvTranspose W = [Cin, Cout, k, k]: 4 inputs channels x 64 positions x 3 x 9 MACs
    assert node_cost("ConvTranspose", {"x": [1, 4, 8, 8], "w": weight(4, 3, 3, 3)}).macs == 4 * 64 * 3 * 9


def test_an_unresolved_layer_says_what_onnx_refused_in_its_inputs():
    profile = profile_model(single_node_model("MatMul", {"x": [2, 3], "w": weight(4, 5)}, opset=17))
    layer = profile.layer("node")
    assert layer.status == UNRESOLVED
    assert layer.note == ("shape of tensor 'y' is not known: onnx's shape inference refuses the node's inputs "
                          "([2, 3], [4, 5]: Incompatible dimensions for matrix multiplication)")


def test_a_conv_transpose_whose_weight_is_a_graph_input_is_not_checked_against_dims_batch_set():
    # W [1, 4, 3, 3] as a graph input: --batch 2 sets its leading dim (ConvTranspose's Cin) like any
    # input's, so its channels say nothing; counted as before: 2 x 64 positions x 4 x 9
    model = single_node_model("ConvTranspose", {"x": [1, 1, 8, 8], "w": [1, 4, 3, 3]}, opset=17)
    profile = profile_model(model, batch=2)
    assert profile.layer("node").status == "costed" and profile.totals.macs == 2 * 64 * 4 * 9
