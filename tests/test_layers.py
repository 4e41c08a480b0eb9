"""Budget keys from node names: module paths for torch-style scoped names."""
from __future__ import annotations

import pytest

from pytest_maccbudget.layers import ROOT_KEY, layer_key, layer_macs


@pytest.mark.parametrize(
    "name, key",
    [
        ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),       # TorchScript, Sequential child named from the root
        ("/layers/layers.0/Conv", "layers.0"),
        ("/encoder/layers.0/self_attn/MatMul_1", "encoder.layers.0.self_attn"),  # named relative to its parent
        ("/encoder/encoder.layers.0/encoder.layers.0.self_attn/MatMul", "encoder.layers.0.self_attn"),  # full paths
        ("/fc/Gemm", "fc"),
        ("/features/features.1/conv/conv.0/Conv", "features.1.conv.0"),  # container name, then index
        ("/features/features.1/features.1.conv/features.1.conv.0/Conv", "features.1.conv.0"),
        ("/MatMul", ROOT_KEY),
        ("/layer1/layer1.0/conv1/Conv#2", "layer1.0.conv1"),
        ("n17", "n17"),                                           # graphs from elsewhere: the node name
        ("conv1#3", "conv1"),
    ],
)
def test_layer_key(name: str, key: str) -> None:
    assert layer_key(name) == key


def test_layer_macs_sums_per_module_and_keeps_unknown_as_none() -> None:
    rows = [("/attn/MatMul", 100), ("/attn/MatMul_1", 50), ("/attn/Softmax", 0), ("/relu/Relu", 0),
            ("/fc/Gemm", 30), ("/odd/Custom", None), ("/odd/MatMul", 7)]
    assert layer_macs(rows) == {"attn": 150, "fc": 30, "odd": None}
