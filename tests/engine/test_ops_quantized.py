"""Quantized ops (ONNX and com.microsoft). Every expected number is a closed form written out.

Per-element primitives used below: quantize = scale + round + (zero-point add) + 2 saturate
(4 or 5); dequantize = (zero-point subtract) + scale (1 or 2).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto

from pytest_maccbudget.engine.graph import prepare_graph
from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.registry import REGISTRY, TypedShape
from pytest_maccbudget.engine.types import OpCost
from tests.engine.onnx_build import node_cost, single_node_model

MS = "com.microsoft"
U8, I8, I32 = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32


def ms_cost(op_type: str, inputs: dict[str, Any], **kwargs: Any) -> OpCost:
    """node_cost for a com.microsoft op (output shapes come from its registered shape function)."""
    return node_cost(op_type, inputs, domain=MS, **kwargs)


def scale(value: float = 0.1) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def zp_u8(value: int = 128) -> np.ndarray:
    return np.array(value, dtype=np.uint8)


def zp_i8(value: int = 0) -> np.ndarray:
    return np.array(value, dtype=np.int8)


def int8_weight(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-127, 128, size=shape).astype(np.int8)


# --- primitives -------------------------------------------------------------------------------


def test_quantize_linear_with_zero_point():
    cost = node_cost("QuantizeLinear", {"x": [1, 3, 4, 4], "s": scale(), "z": zp_u8()})
    assert cost.macs == 0
    assert cost.flops == 48 * 5


def test_quantize_linear_without_zero_point():
    cost = node_cost("QuantizeLinear", {"x": [1, 3, 4, 4], "s": scale()})
    assert cost.flops == 48 * 4


def test_quantize_linear_per_axis_int4():
    cost = node_cost("QuantizeLinear", {"x": [4, 6], "s": np.full(6, 0.1, np.float32),
                                        "z": np.zeros(6, dtype=np.int8)}, attrs={"axis": 1})
    assert cost.flops == 24 * 5


def test_dequantize_linear():
    with_zp = node_cost("DequantizeLinear", {"x": ([2, 10], U8), "s": scale(), "z": zp_u8()})
    without = node_cost("DequantizeLinear", {"x": ([2, 10], I8), "s": scale()})
    assert (with_zp.macs, with_zp.flops) == (0, 20 * 2)
    assert (without.macs, without.flops) == (0, 20 * 1)


def test_dynamic_quantize_linear():
    cost = node_cost("DynamicQuantizeLinear", {"x": [3, 10]}, outputs=("y", "y_scale", "y_zp"))
    # min and max incl. 0: 2 x 30; scalars: 7; quantize with zero point: 5 x 30
    assert cost.macs == 0
    assert cost.flops == 2 * 30 + 7 + 5 * 30 == 217


# --- ONNX integer dot products -------------------------------------------------------------


def test_conv_integer():
    cost = node_cost("ConvInteger", {"x": ([1, 3, 8, 8], U8), "w": int8_weight(4, 3, 3, 3).view(np.uint8)},
                     attrs={"pads": [1, 1, 1, 1]})
    assert cost.macs == 4 * 8 * 8 * 3 * 3 * 3 == 6_912
    assert cost.flops == 2 * 6_912 - 4 * 8 * 8


def test_conv_integer_grouped_with_zero_points():
    cost = node_cost("ConvInteger", {"x": ([1, 4, 6, 6], U8), "w": int8_weight(4, 1, 3, 3).view(np.uint8),
                                     "xz": zp_u8(), "wz": zp_u8(0)}, attrs={"group": 4})
    assert cost.macs == 4 * 4 * 4 * 1 * 9 == 576
    assert cost.flops == 2 * 576 - 64


def test_matmul_integer():
    cost = node_cost("MatMulInteger", {"a": ([2, 3, 4], U8), "b": ([4, 5], U8)})
    assert cost.macs == 2 * 3 * 4 * 5 == 120
    assert cost.flops == (2 * 4 - 1) * 30


def test_qlinear_conv_acceptance_shape():
    cost = node_cost("QLinearConv", {
        "x": ([1, 64, 112, 112], U8), "xs": scale(), "xz": zp_u8(),
        "w": int8_weight(128, 64, 3, 3), "ws": scale(), "wz": zp_i8(),
        "ys": scale(), "yz": zp_u8(),
    }, attrs={"pads": [1, 1, 1, 1]})
    outputs = 128 * 112 * 112
    assert cost.macs == 3 * 3 * 64 * 112 * 112 * 128 == 924_844_032
    assert cost.flops == 2 * 924_844_032 - outputs + 5 * outputs


def test_qlinear_conv_depthwise_bias():
    cost = node_cost("QLinearConv", {
        "x": ([1, 8, 10, 10], U8), "xs": scale(), "xz": zp_u8(),
        "w": int8_weight(8, 1, 3, 3), "ws": np.full(8, 0.1, np.float32), "wz": np.zeros(8, np.int8),
        "ys": scale(), "yz": zp_u8(), "b": np.arange(8, dtype=np.int32),
    }, attrs={"group": 8, "strides": [2, 2], "pads": [1, 1, 1, 1]})
    outputs = 8 * 5 * 5
    assert cost.macs == 3 * 3 * 8 * 5 * 5 == 1_800
    assert cost.flops == 2 * 1_800 - outputs + outputs + 5 * outputs


def test_qlinear_matmul():
    cost = node_cost("QLinearMatMul", {
        "a": ([1, 300], U8), "as": scale(), "az": zp_u8(),
        "b": int8_weight(300, 100), "bs": scale(), "bz": zp_i8(),
        "ys": scale(), "yz": zp_u8(),
    })
    assert cost.macs == 300 * 100 == 30_000
    assert cost.flops == 599 * 100 + 5 * 100


# --- com.microsoft dot products -------------------------------------------------------------


def test_qgemm_quantized_output():
    cost = ms_cost("QGemm", {
        "a": ([4, 8], U8), "as": scale(), "az": zp_u8(),
        "b": int8_weight(6, 8), "bs": scale(), "bz": zp_i8(),
        "c": np.zeros(6, np.int32), "ys": scale(), "yz": zp_u8(),
    }, attrs={"transB": 1, "alpha": 1.0})
    assert cost.macs == 4 * 8 * 6 == 192
    assert cost.flops == 2 * 192 - 24 + 24 + 5 * 24


def test_qgemm_float_output():
    cost = ms_cost("QGemm", {
        "a": ([8, 4], U8), "as": scale(), "az": zp_u8(),
        "b": int8_weight(8, 6), "bs": scale(), "bz": zp_i8(),
    }, attrs={"transA": 1, "alpha": 2.0})
    assert cost.macs == 4 * 8 * 6 == 192
    assert cost.flops == 2 * 192 - 24 + 24  # + one scale multiply per output (alpha folded in)


def test_matmul_integer_to_float():
    cost = ms_cost("MatMulIntegerToFloat", {
        "a": ([2, 3, 4], U8), "b": int8_weight(4, 5), "as": scale(), "bs": scale(),
        "az": None, "bz": None, "bias": np.zeros(5, np.float32),
    })
    assert cost.macs == 2 * 3 * 4 * 5 == 120
    assert cost.flops == 7 * 30 + 30 + 30


def test_dynamic_quantize_matmul():
    cost = ms_cost("DynamicQuantizeMatMul", {
        "a": [2, 3, 4], "b": int8_weight(4, 5), "bs": scale(), "bz": zp_i8(), "bias": np.zeros(5, np.float32),
    })
    assert cost.macs == 120
    # quantize A (24 elements): 7 x 24 + 7; dot: 7 x 30; scale: 30; bias: 30
    assert cost.flops == (7 * 24 + 7) + 7 * 30 + 30 + 30


@pytest.mark.parametrize("with_bias", [False, True])
def test_matmul_nbits(with_bias):
    inputs: dict[str, Any] = {
        "a": [1, 8, 64],
        "b": np.zeros((32, 2, 16), np.uint8),  # N=32, k_blocks=64/32, blob=32*4/8
        "scales": np.ones((32, 2), np.float32),
    }
    if with_bias:
        inputs.update({"zp": None, "g_idx": None, "bias": np.zeros(32, np.float32)})
    cost = ms_cost("MatMulNBits", inputs, attrs={"K": 64, "N": 32, "bits": 4, "block_size": 32})
    outputs = 8 * 32
    assert cost.macs == outputs * 64 == 16_384
    assert cost.flops == 2 * 16_384 - outputs + 2 * 32 * 64 + (outputs if with_bias else 0)


# --- com.microsoft element-wise / pooling / concat --------------------------------------------


def test_qlinear_add_broadcast_with_zero_points():
    cost = ms_cost("QLinearAdd", {
        "a": ([2, 3, 4], U8), "as": scale(), "az": zp_u8(),
        "b": ([4], U8), "bs": scale(), "bz": zp_u8(), "cs": scale(), "cz": zp_u8(),
    })
    # dequantize A: 24 x 2, B: 4 x 2; per output: add 1 + quantize 5
    assert cost.macs == 0
    assert cost.flops == 24 * 2 + 4 * 2 + 24 * (1 + 5) == 200


def test_qlinear_mul_without_zero_points():
    cost = ms_cost("QLinearMul", {
        "a": ([2, 3, 4], I8), "as": scale(), "az": None,
        "b": ([2, 3, 4], I8), "bs": scale(), "bz": None, "cs": scale(),
    })
    assert cost.flops == 24 * 1 + 24 * 1 + 24 * (1 + 4) == 168


def test_qlinear_sigmoid():
    cost = ms_cost("QLinearSigmoid", {"x": ([1, 16], U8), "xs": scale(), "xz": zp_u8(), "ys": scale(), "yz": zp_u8()})
    assert cost.flops == 16 * (2 + 4 + 5)


@pytest.mark.parametrize("shape, channels_last", [([1, 8, 7, 7], 0), ([1, 7, 7, 8], 1)])
def test_qlinear_global_average_pool(shape, channels_last):
    cost = ms_cost("QLinearGlobalAveragePool", {"x": (shape, U8), "xs": scale(), "xz": zp_u8(),
                                                "ys": scale(), "yz": zp_u8()},
                   attrs={"channels_last": channels_last})
    # N x C x H x W (H x W - 1 adds + the divide, which becomes the combined scale multiply),
    # then per output: x zero-point correction + round + 2 saturate + y zero-point add
    assert cost.flops == 8 * 49 + 8 * (1 + 1 + 2 + 1) == 432


def test_qlinear_concat_requantizes_only_differing_inputs():
    cost = ms_cost("QLinearConcat", {
        "ys": scale(0.1), "yz": zp_u8(128),
        "x1": ([1, 2, 4], U8), "s1": scale(0.1), "z1": zp_u8(128),  # same quantization: free copy
        "x2": ([1, 3, 4], U8), "s2": scale(0.2), "z2": zp_u8(100),  # requantized
    }, attrs={"axis": 1})
    assert cost.macs == 0
    assert cost.flops == 12 * (1 + 1 + 1 + 2 + 1) == 72


def test_ms_quantize_dequantize_twins():
    q = ms_cost("QuantizeLinear", {"x": [2, 5], "s": scale(), "z": np.array(0, np.int16)})
    d = ms_cost("DequantizeLinear", {"x": ([2, 5], I8), "s": scale()})
    assert q.flops == 10 * 5
    assert d.flops == 10 * 1


def test_contrib_shapes():
    model = single_node_model("QLinearConcat", {
        "ys": scale(), "yz": zp_u8(), "x1": ([1, 2, 4], U8), "s1": scale(), "z1": zp_u8(),
        "x2": ([1, 3, 4], U8), "s2": scale(), "z2": zp_u8()}, attrs={"axis": -2}, domain=MS)
    prepared = prepare_graph(model, REGISTRY)
    fn = REGISTRY.shape_fn("QLinearConcat", MS)
    assert fn(prepared.view(prepared.nodes[0])) == [TypedShape((1, 5, 4), U8)]


def test_contrib_output_dtype_sets_output_bytes():
    # com.microsoft QuantizeLinear to uint8: 4 x 8 outputs of 1 byte (not float32's 4)
    model = single_node_model("QuantizeLinear", {"x": [4, 8], "s": scale(), "z": zp_u8()}, domain=MS)
    assert profile_model(model).layers[0].output_bytes == 4 * 8 * 1


def test_registered_quantized_ops():
    for op in ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QuantizeLinear",
               "DequantizeLinear", "DynamicQuantizeLinear"):
        assert REGISTRY.lookup(op) is not None
    for op in ("QGemm", "MatMulNBits", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearAdd",
               "QLinearMul", "QLinearSigmoid", "QLinearGlobalAveragePool", "QLinearConcat",
               "QuantizeLinear", "DequantizeLinear"):
        assert REGISTRY.lookup(op, MS) is not None
        assert REGISTRY.shape_fn(op, MS) is not None
