"""Activations: one-node graphs, expected = output elements x FLOPs per element."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pytest
from onnx import helper

from pytest_maccbudget.engine.graph import prepare_graph
from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.types import OpCost, UnresolvedShape, UnsupportedAttributes
from tests.engine.onnx_build import node_cost, single_node_model, weight

MS = "com.microsoft"


def ms_cost(op_type: str, inputs: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> tuple[OpCost, tuple]:
    """Cost and inferred output shape of a com.microsoft node whose output feeds an Identity.

    (The output is kept internal: see the report on graph outputs of contrib ops.)
    """
    model = single_node_model(op_type, inputs, attrs=attrs, domain=MS)
    graph = model.graph
    graph.node.append(helper.make_node("Identity", ["y"], ["z"], name="sink"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("z", 0, None))
    prepared = prepare_graph(model, REGISTRY)
    view = prepared.view(prepared.nodes[0])
    return REGISTRY.lookup(op_type, MS).cost(view), view.output_shape(0)


# --- the contract's numbers --------------------------------------------------------------

def test_relu_one_flop_per_output():
    cost = node_cost("Relu", {"x": [1, 100]})  # FC with J = 100 outputs
    assert cost.flops == 1 * 100
    assert cost.macs == 0


def test_sigmoid_four_flops_per_element():
    cost = node_cost("Sigmoid", {"x": [1000]})
    assert cost.flops == 4 * 1000
    assert cost.macs == 0


def test_tanh_five_flops_per_element():
    assert node_cost("Tanh", {"x": [1000]}).flops == 5 * 1000


# --- every ONNX activation on [2, 3, 50] = 300 elements ---------------------------------

ACTIVATION_CASES = [
    # (op, attrs, opset, expected FLOPs)
    ("Relu", {}, 21, 1 * 300),
    ("Sigmoid", {}, 21, 4 * 300),
    ("Tanh", {}, 21, 5 * 300),
    ("LeakyRelu", {}, 21, 2 * 300),  # compare, mul
    ("LeakyRelu", {"alpha": 0.2}, 21, 2 * 300),
    ("ThresholdedRelu", {"alpha": 1.5}, 21, 1 * 300),  # compare
    ("Elu", {"alpha": 0.5}, 21, 4 * 300),  # compare, exp, sub, mul
    ("Selu", {}, 21, 6 * 300),  # exp, mul, sub, mul, mul, compare
    ("Celu", {"alpha": 2.0}, 21, 6 * 300),  # div, Elu (4), mul
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, 21, 4 * 300),  # mul, add, min, max
    ("HardSwish", {}, 21, 5 * 300),  # HardSigmoid (4), mul
    ("Softplus", {}, 21, 3 * 300),  # exp, add, log
    ("Softsign", {}, 21, 3 * 300),  # abs, add, div
    ("Mish", {}, 21, 9 * 300),  # Softplus (3), Tanh (5), mul
    ("Shrink", {"lambd": 0.5, "bias": 0.1}, 21, 4 * 300),  # compare, compare, add, sub
    ("Gelu", {}, 20, 5 * 300),  # div, erf, add, mul, mul
    ("Gelu", {"approximate": "none"}, 20, 5 * 300),
    ("Gelu", {"approximate": "tanh"}, 20, 12 * 300),  # pow, mul, add, mul, Tanh (5), add, mul, mul
    ("Swish", {}, 24, 5 * 300),  # alpha = 1: Sigmoid (4), mul
    ("Swish", {"alpha": 1.702}, 24, 6 * 300),  # mul, Sigmoid (4), mul
    ("Relu", {}, 6, 1 * 300),  # old opset forms
    ("LeakyRelu", {}, 6, 2 * 300),
    ("Elu", {}, 6, 4 * 300),
    ("HardSigmoid", {}, 6, 4 * 300),
    ("Selu", {}, 6, 6 * 300),
]


@pytest.mark.parametrize(
    "op, attrs, opset, expected", ACTIVATION_CASES,
    ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(ACTIVATION_CASES)],
)
def test_activation_flops_per_element(op, attrs, opset, expected):
    cost = node_cost(op, {"x": [2, 3, 50]}, attrs=attrs, opset=opset)
    assert cost.flops == expected
    assert cost.macs == 0


def test_prelu_slope_broadcasts_to_the_output():
    cost = node_cost("PRelu", {"x": [2, 3, 4, 5], "slope": weight(3, 1, 1)})
    assert cost.flops == 2 * (2 * 3 * 4 * 5)  # compare, mul
    assert cost.macs == 0


def test_prelu_scalar_slope():
    assert node_cost("PRelu", {"x": [2, 3, 4, 5], "slope": weight(1)}).flops == 2 * (2 * 3 * 4 * 5)


def test_gelu_unknown_approximation_is_rejected():
    with pytest.raises(UnsupportedAttributes):
        node_cost("Gelu", {"x": [2, 8]}, attrs={"approximate": "fast"}, opset=20)


def test_activation_unknown_shape_raises():
    with pytest.raises(UnresolvedShape):
        node_cost("Sigmoid", {"x": [4, "S"]})


# --- com.microsoft activations -------------------------------------------------------------

def test_ms_gelu_erf_form():
    cost, shape = ms_cost("Gelu", {"x": [2, 8, 64]})
    assert shape == (2, 8, 64)
    assert cost.flops == 5 * (2 * 8 * 64)
    assert cost.macs == 0


def test_ms_fast_gelu_without_bias():
    cost, shape = ms_cost("FastGelu", {"x": [2, 8, 64]})
    assert shape == (2, 8, 64)
    assert cost.flops == 12 * (2 * 8 * 64)  # mul, mul, add, mul, Tanh (5), add, mul, mul


def test_ms_fast_gelu_with_bias():
    cost, shape = ms_cost("FastGelu", {"x": [2, 8, 64], "bias": weight(64)})
    assert shape == (2, 8, 64)
    assert cost.flops == (1 + 12) * (2 * 8 * 64)
    assert cost.macs == 0


def test_ms_bias_gelu():
    cost, shape = ms_cost("BiasGelu", {"a": [2, 8, 64], "b": weight(64)})
    assert shape == (2, 8, 64)
    assert cost.flops == (1 + 5) * (2 * 8 * 64)  # add, then the erf Gelu


def test_ms_quick_gelu_default_alpha():
    cost, shape = ms_cost("QuickGelu", {"x": [4, 256]})
    assert shape == (4, 256)
    assert cost.flops == 6 * (4 * 256)  # mul by 1.702, Sigmoid (4), mul


def test_ms_quick_gelu_alpha_one_is_silu():
    cost, _ = ms_cost("QuickGelu", {"x": [4, 256]}, attrs={"alpha": 1.0})
    assert cost.flops == 5 * (4 * 256)


def test_ms_ops_are_registered_in_their_domain():
    for op in ("Gelu", "FastGelu", "BiasGelu", "QuickGelu"):
        assert REGISTRY.lookup(op, MS) is not None
        assert REGISTRY.shape_fn(op, MS) is not None
    assert REGISTRY.lookup("FastGelu", "") is None


def test_ms_shape_of_unbroadcastable_bias_is_not_invented():
    with pytest.raises(UnresolvedShape):
        ms_cost("BiasGelu", {"a": [2, 8, 64], "b": weight(63)})


def test_relu_on_a_constant_input_counts_every_element():
    x = np.zeros((8, 3, 7, 7), np.float32)  # constant input still costs its elements
    assert node_cost("Relu", {"x": x}).flops == 1 * (8 * 3 * 7 * 7)
