"""Normalization and softmax family: closed-form FLOPs on one-node graphs."""
from __future__ import annotations

import pytest

from pytest_maccbudget.engine.types import UnsupportedAttributes
from tests.engine.onnx_build import node_cost, weight

MS = "com.microsoft"


def test_batch_normalization_unfolded_is_two_flops_per_element() -> None:
    c = 64
    cost = node_cost("BatchNormalization", {"x": [2, c, 56, 56], "s": weight(c), "b": weight(c), "m": weight(c), "v": weight(c)})
    assert cost.macs == 0
    assert cost.flops == 2 * (2 * 64 * 56 * 56)


def test_batch_normalization_old_opset() -> None:
    c = 8
    cost = node_cost("BatchNormalization", {"x": [1, c, 5, 5], "s": weight(c), "b": weight(c), "m": weight(c), "v": weight(c)},
                     opset=9)
    assert cost.flops == 2 * 8 * 5 * 5


def test_batch_normalization_training_mode_has_no_rule() -> None:
    c = 4
    with pytest.raises(UnsupportedAttributes):
        node_cost("BatchNormalization", {"x": [1, c, 3, 3], "s": weight(c), "b": weight(c), "m": weight(c), "v": weight(c)},
                  attrs={"training_mode": 1}, outputs=("y", "rm", "rv"))


def test_instance_normalization() -> None:
    # E = 2*16*10*10 = 3200, G = N*C = 32: 7E + 4G
    cost = node_cost("InstanceNormalization", {"x": [2, 16, 10, 10], "s": weight(16), "b": weight(16)})
    assert cost.macs == 0
    assert cost.flops == 7 * 3200 + 4 * 32


@pytest.mark.parametrize("with_bias, expected", [
    (True, 7 * (2 * 128 * 768) + 4 * (2 * 128)),
    (False, 6 * (2 * 128 * 768) + 4 * (2 * 128)),
])
def test_layer_normalization_last_axis(with_bias: bool, expected: int) -> None:
    inputs = {"x": [2, 128, 768], "s": weight(768), "b": weight(768) if with_bias else None}
    assert node_cost("LayerNormalization", inputs).flops == expected


def test_layer_normalization_axis_1_normalizes_trailing_axes() -> None:
    # axis=1 on [4, 3, 5, 6]: G = 4, E = 360
    cost = node_cost("LayerNormalization", {"x": [4, 3, 5, 6], "s": weight(3, 5, 6), "b": weight(3, 5, 6)}, attrs={"axis": 1})
    assert cost.flops == 7 * 360 + 4 * 4


def test_group_normalization() -> None:
    # E = 2*32*8*8 = 4096, G = N * num_groups = 2 * 8 = 16
    cost = node_cost("GroupNormalization", {"x": [2, 32, 8, 8], "s": weight(32), "b": weight(32)}, attrs={"num_groups": 8})
    assert cost.flops == 7 * 4096 + 4 * 16


def test_rms_normalization() -> None:
    # E = 2*10*64 = 1280, G = 20: 4E + 2G
    cost = node_cost("RMSNormalization", {"x": [2, 10, 64], "s": weight(64)}, opset=23)
    assert cost.flops == 4 * 1280 + 2 * 20


def test_rms_normalization_axis() -> None:
    # axis=-2 on [3, 4, 5]: G = 3, E = 60
    cost = node_cost("RMSNormalization", {"x": [3, 4, 5], "s": weight(4, 5)}, attrs={"axis": -2}, opset=23)
    assert cost.flops == 4 * 60 + 2 * 3


@pytest.mark.parametrize("domain", ["", MS])
def test_simplified_layer_normalization(domain: str) -> None:
    # E = 1*7*32 = 224, G = 7
    cost = node_cost("SimplifiedLayerNormalization", {"x": [1, 7, 32], "s": weight(32)}, domain=domain)
    assert cost.flops == 4 * 224 + 2 * 7


def test_layer_normalization_contrib_form_before_opset_17() -> None:
    # ORT's LayerNormalization in the onnx domain at opset 13: shape from our shape function
    cost = node_cost("LayerNormalization", {"x": [2, 5, 8], "s": weight(8), "b": weight(8)}, opset=13)
    assert cost.flops == 7 * 80 + 4 * 10


def test_mean_variance_normalization_default_axes() -> None:
    # axes [0, 2, 3] on [2, 3, 4, 5]: reduced 2*4*5 = 40 per group, G = 3, E = 120: 5E + 4G
    assert node_cost("MeanVarianceNormalization", {"x": [2, 3, 4, 5]}).flops == 5 * 120 + 4 * 3


def test_mean_variance_normalization_custom_axes() -> None:
    # axes [2, 3]: G = N*C = 6
    assert node_cost("MeanVarianceNormalization", {"x": [2, 3, 4, 5]}, attrs={"axes": [2, 3]}).flops == 5 * 120 + 4 * 6


@pytest.mark.parametrize("p, expected", [
    (2, 3 * 2 * 3 * 10),  # square E, adds E - G, sqrt G, divide E
    (1, 3 * 2 * 3 * 10 - 2 * 3),  # abs E, adds E - G, divide E
])
def test_lp_normalization(p: int, expected: int) -> None:
    assert node_cost("LpNormalization", {"x": [2, 3, 10]}, attrs={"p": p, "axis": -1}).flops == expected


def test_lp_normalization_axis_1() -> None:
    # axis 1 on [2, 3, 10]: G = 20, p = 1: 3E - G
    assert node_cost("LpNormalization", {"x": [2, 3, 10]}, attrs={"p": 1, "axis": 1}).flops == 3 * 60 - 20


def test_lp_normalization_other_p_unsupported() -> None:
    with pytest.raises(UnsupportedAttributes):
        node_cost("LpNormalization", {"x": [2, 3]}, attrs={"p": 3})


def test_lrn() -> None:
    # (size + 4) per element
    cost = node_cost("LRN", {"x": [1, 96, 55, 55]}, attrs={"size": 5, "alpha": 1e-4, "beta": 0.75})
    assert cost.flops == (5 + 4) * 96 * 55 * 55


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_five_per_element(axis: int) -> None:
    cost = node_cost("Softmax", {"x": [2, 12, 64, 64]}, attrs={"axis": axis})
    assert cost.macs == 0
    assert cost.flops == 5 * 2 * 12 * 64 * 64


def test_softmax_old_opset() -> None:
    assert node_cost("Softmax", {"x": [3, 1000]}, opset=11).flops == 5 * 3000


def test_log_softmax_adds_one_log_per_row() -> None:
    # [4, 10] over the last axis: 5E + rows
    assert node_cost("LogSoftmax", {"x": [4, 10]}).flops == 5 * 40 + 4


def test_log_softmax_middle_axis() -> None:
    # axis 1 of [2, 5, 3]: rows = 2 * 3 = 6
    assert node_cost("LogSoftmax", {"x": [2, 5, 3]}, attrs={"axis": 1}).flops == 5 * 30 + 6


def test_log_softmax_before_opset_13_rows_span_from_axis_on() -> None:
    # opset 11: x [2, 5, 3] is coerced to 2 rows of 15 (axis 1): one log per row
    assert node_cost("LogSoftmax", {"x": [2, 5, 3]}, attrs={"axis": 1}, opset=11).flops == 5 * 30 + 2


def test_hardmax() -> None:
    assert node_cost("Hardmax", {"x": [3, 7]}).flops == 21


def test_bias_softmax() -> None:
    cost = node_cost("BiasSoftmax", {"x": [2, 4, 8, 8], "b": [2, 1, 8, 8]}, attrs={"axis": 3, "is_inner_broadcast": 0}, domain=MS)
    assert cost.flops == 6 * 2 * 4 * 8 * 8


def test_skip_layer_normalization_with_beta() -> None:
    # E = 2*8*16 = 256, G = 16: skip 1 + moments 5 + gamma 1 + beta 1 = 8E, + 4G
    cost = node_cost("SkipLayerNormalization", {"x": [2, 8, 16], "s": [2, 8, 16], "g": weight(16), "beta": weight(16)}, domain=MS)
    assert cost.flops == 8 * 256 + 4 * 16


def test_skip_layer_normalization_with_bias_no_beta_and_extra_outputs() -> None:
    # skip 1 + bias 1 + moments 5 + gamma 1 = 8E, + 4G
    cost = node_cost("SkipLayerNormalization",
                     {"x": [2, 8, 16], "s": [2, 8, 16], "g": weight(16), "beta": None, "bias": weight(16)},
                     outputs=("y", "mean", "inv", "sum"), domain=MS)
    assert cost.flops == 8 * 256 + 4 * 16


def test_skip_layer_normalization_gamma_only() -> None:
    cost = node_cost("SkipLayerNormalization", {"x": [1, 4, 10], "s": [1, 4, 10], "g": weight(10)}, domain=MS)
    assert cost.flops == 7 * 40 + 4 * 4


@pytest.mark.parametrize("with_bias, expected", [
    (False, 5 * 256 + 2 * 16),  # skip 1 + rms 3 + gamma 1
    (True, 6 * 256 + 2 * 16),  # + bias add
])
def test_skip_simplified_layer_normalization(with_bias: bool, expected: int) -> None:
    inputs = {"x": [2, 8, 16], "s": [2, 8, 16], "g": weight(16)}
    if with_bias:
        inputs["bias"] = weight(16)
    assert node_cost("SkipSimplifiedLayerNormalization", inputs, domain=MS).flops == expected


def test_group_normalization_missing_num_groups() -> None:
    with pytest.raises(UnsupportedAttributes):
        node_cost("GroupNormalization", {"x": [1, 4, 2, 2], "s": weight(4), "b": weight(4)})


def test_contrib_norm_statistics_outputs_are_float32() -> None:
    from onnx import TensorProto

    from pytest_maccbudget.engine.graph import prepare_graph
    from pytest_maccbudget.engine.registry import REGISTRY
    from tests.engine.onnx_build import single_node_model

    half = TensorProto.FLOAT16
    model = single_node_model("SkipLayerNormalization",
                              {"x": ([2, 8, 16], half), "s": ([2, 8, 16], half), "g": ([16], half)},
                              outputs=("y", "mean", "inv", "sum"), domain=MS)
    tensors = prepare_graph(model, REGISTRY).tensors
    assert (tensors["y"].shape, tensors["y"].dtype) == ((2, 8, 16), half)
    assert (tensors["mean"].shape, tensors["mean"].dtype) == ((2, 8, 1), TensorProto.FLOAT)
    assert (tensors["inv"].shape, tensors["inv"].dtype) == ((2, 8, 1), TensorProto.FLOAT)
    assert (tensors["sum"].shape, tensors["sum"].dtype) == ((2, 8, 16), half)
