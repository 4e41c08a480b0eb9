"""RNN / GRU / LSTM: MACs = gates x (I + H) x H x seq x batch x directions; FLOPs per hidden unit and step
= gates x (2(I + H) - 1) + bias + activations + state updates (see docs/counting.md)."""
from __future__ import annotations

import pytest

from pytest_maccbudget.engine.types import UnresolvedShape, UnsupportedAttributes
from tests.engine.onnx_build import node_cost, weight

SIGMOID, TANH, RELU = 4, 5, 1


def lstm_inputs(seq: int, batch: int, inp: int, hidden: int, dirs: int = 1, *, bias: bool = False,
                peephole: bool = False, layout: int = 0) -> dict:
    x = [seq, batch, inp] if layout == 0 else [batch, seq, inp]
    return {
        "X": x,
        "W": weight(dirs, 4 * hidden, inp),
        "R": weight(dirs, 4 * hidden, hidden),
        "B": weight(dirs, 8 * hidden) if bias else None,
        "sequence_lens": None,
        "initial_h": None,
        "initial_c": None,
        "P": weight(dirs, 3 * hidden) if peephole else None,
    }


def test_lstm_forward_defaults():
    cost = node_cost("LSTM", lstm_inputs(10, 2, 32, 16), attrs={"hidden_size": 16})
    assert cost.macs == 4 * (32 + 16) * 16 * 10 * 2
    # per hidden unit and step: 4 dots of length 48, C/H update 4, f=Sigmoid x3, g=Tanh, h=Tanh
    assert cost.flops == 10 * 2 * 16 * (4 * (2 * 48 - 1) + 4 + 3 * SIGMOID + TANH + TANH)


def test_lstm_bidirectional_bias_peephole_layout1():
    inputs = lstm_inputs(7, 3, 20, 8, dirs=2, bias=True, peephole=True, layout=1)
    cost = node_cost("LSTM", inputs, attrs={"hidden_size": 8, "direction": "bidirectional", "layout": 1},
                     outputs=("y", "y_h", "y_c"))
    assert cost.macs == 4 * (20 + 8) * 8 * 7 * 3 * 2
    per_hidden = 4 * (2 * 28 - 1) + 8 + 6 + 4 + 3 * SIGMOID + TANH + TANH  # dots, bias, peepholes, update, acts
    assert cost.flops == 2 * 7 * 3 * 8 * per_hidden


def test_lstm_per_direction_activations_and_clip():
    attrs = {"hidden_size": 4, "direction": "bidirectional", "clip": 3.0,
             "activations": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Softsign", "Relu"]}
    cost = node_cost("LSTM", lstm_inputs(5, 1, 6, 4, dirs=2), attrs=attrs)
    assert cost.macs == 4 * (6 + 4) * 4 * 5 * 1 * 2
    common = 4 * (2 * 10 - 1) + 4 + 2 * 4  # dots, update, clip on 4 gate values
    forward = common + 3 * SIGMOID + TANH + TANH
    backward = common + 3 * 4 + 3 + RELU  # HardSigmoid 4, Softsign 3, Relu 1
    assert cost.flops == 5 * 1 * 4 * (forward + backward)


def test_lstm_hidden_size_from_r_when_attribute_missing():
    cost = node_cost("LSTM", lstm_inputs(3, 2, 5, 7))
    assert cost.macs == 4 * (5 + 7) * 7 * 3 * 2


def test_two_layer_lstm_reference_total():
    # field notes: a 2-layer LSTM totals 367,001,600 MACs; input 256, hidden 512, 100 steps, batch 1
    # reproduces it (so does input 256, hidden 256, 350 steps).
    layer1 = node_cost("LSTM", lstm_inputs(100, 1, 256, 512), attrs={"hidden_size": 512})
    layer2 = node_cost("LSTM", lstm_inputs(100, 1, 512, 512), attrs={"hidden_size": 512})
    assert layer1.macs == 4 * (256 + 512) * 512 * 100 == 157_286_400
    assert layer2.macs == 4 * (512 + 512) * 512 * 100 == 209_715_200
    assert layer1.macs + layer2.macs == 367_001_600


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_gru_bias_linear_before_reset_does_not_change_counts(linear_before_reset):
    inputs = {"X": [5, 4, 10], "W": weight(1, 18, 10), "R": weight(1, 18, 6), "B": weight(1, 36)}
    cost = node_cost("GRU", inputs, attrs={"hidden_size": 6, "linear_before_reset": linear_before_reset})
    assert cost.macs == 3 * (10 + 6) * 6 * 5 * 4
    # 3 dots, bias 6, r*H 1 + update 4, f=Sigmoid on z and r, g=Tanh on h
    assert cost.flops == 5 * 4 * 6 * (3 * (2 * 16 - 1) + 6 + 5 + 2 * SIGMOID + TANH)


def test_gru_bidirectional_layout1():
    inputs = {"X": [2, 9, 3], "W": weight(2, 15, 3), "R": weight(2, 15, 5)}
    cost = node_cost("GRU", inputs, attrs={"hidden_size": 5, "direction": "bidirectional", "layout": 1})
    assert cost.macs == 3 * (3 + 5) * 5 * 9 * 2 * 2
    assert cost.flops == 2 * 9 * 2 * 5 * (3 * (2 * 8 - 1) + 5 + 2 * SIGMOID + TANH)


@pytest.mark.parametrize(
    "direction, dirs",
    [("forward", 1), ("reverse", 1), ("bidirectional", 2)],
)
def test_rnn_directions(direction, dirs):
    inputs = {"X": [6, 2, 12], "W": weight(dirs, 10, 12), "R": weight(dirs, 10, 10), "B": weight(dirs, 20)}
    cost = node_cost("RNN", inputs, attrs={"hidden_size": 10, "direction": direction})
    assert cost.macs == (12 + 10) * 10 * 6 * 2 * dirs
    assert cost.flops == 6 * 2 * 10 * dirs * ((2 * 22 - 1) + 2 + TANH)


def test_rnn_relu_activation_with_clip():
    inputs = {"X": [4, 1, 3], "W": weight(1, 2, 3), "R": weight(1, 2, 2)}
    cost = node_cost("RNN", inputs, attrs={"hidden_size": 2, "activations": ["Relu"], "clip": 1.0})
    assert cost.macs == (3 + 2) * 2 * 4 * 1
    assert cost.flops == 4 * 1 * 2 * ((2 * 5 - 1) + 2 + RELU)


def test_unknown_activation_is_unsupported():
    inputs = {"X": [4, 1, 3], "W": weight(1, 2, 3), "R": weight(1, 2, 2)}
    with pytest.raises(UnsupportedAttributes):
        node_cost("RNN", inputs, attrs={"hidden_size": 2, "activations": ["Gelu"]})


def test_wrong_number_of_activations_is_unsupported():
    inputs = {"X": [4, 1, 3], "W": weight(2, 6, 3), "R": weight(2, 6, 2)}
    with pytest.raises(UnsupportedAttributes):
        node_cost("GRU", inputs, attrs={"hidden_size": 2, "direction": "bidirectional",
                                        "activations": ["Sigmoid", "Tanh", "Sigmoid"]})


def test_unknown_dim_is_unresolved():
    # a symbolic dim not named like a batch ("B" would be taken as a batch of 1) stays unknown
    inputs = {"X": [4, "rows", 3], "W": weight(1, 2, 3), "R": weight(1, 2, 2)}
    with pytest.raises(UnresolvedShape):
        node_cost("RNN", inputs, attrs={"hidden_size": 2})
