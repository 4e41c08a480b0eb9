"""The op registry: explicit outcomes, no duplicates, every op documented and tested."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_maccbudget.engine import ops  # noqa: F401  (fills the registry)
from pytest_maccbudget.engine.registry import REGISTRY, OpRegistry
from pytest_maccbudget.engine.types import OpCost

ROOT = Path(__file__).resolve().parents[2]


def test_duplicate_registration_raises() -> None:
    registry = OpRegistry()
    registry.register("Foo")(lambda node: OpCost())
    with pytest.raises(ValueError, match="duplicate cost registration for ai.onnx::Foo"):
        registry.register_free("Foo")


def test_unregistered_op_has_no_entry_and_free_is_explicit() -> None:
    assert REGISTRY.lookup("NoSuchOp") is None
    assert REGISTRY.lookup("Reshape").free
    assert not REGISTRY.lookup("Conv").free
    assert REGISTRY.lookup("Conv", "ai.onnx") is REGISTRY.lookup("Conv", "")


def test_copy_leaves_the_default_registry_alone() -> None:
    clone = REGISTRY.copy()
    clone.register("ExtraOp", domain="acme")(lambda node: OpCost(macs=1))
    assert clone.lookup("ExtraOp", "acme") is not None
    assert REGISTRY.lookup("ExtraOp", "acme") is None


def test_every_registered_op_is_documented_in_counting_md() -> None:
    text = (ROOT / "docs" / "counting.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Za-z][A-Za-z0-9]*)`", text))
    missing = sorted(f"{e.domain or 'ai.onnx'}::{e.op_type}" for e in REGISTRY if e.op_type not in documented)
    assert not missing, f"not in docs/counting.md: {missing}"


def test_every_registered_op_has_a_one_node_test() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests" / "engine").glob("test_ops_*.py"))
    named = set(re.findall(r"[\"']([A-Za-z][A-Za-z0-9]*)[\"']", sources))
    missing = sorted(f"{e.domain or 'ai.onnx'}::{e.op_type}" for e in REGISTRY if e.op_type not in named)
    assert not missing, f"no test names these ops: {missing}"


def test_registry_covers_the_op_families_the_issue_lists() -> None:
    required = {
        "": ["Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "RNN", "GRU", "LSTM", "Attention",
             "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization", "LRN",
             "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "Softmax", "LogSoftmax",
             "ReduceMean", "ReduceSum", "Resize", "Upsample", "QLinearConv", "QLinearMatMul", "ConvInteger",
             "MatMulInteger", "QuantizeLinear", "DequantizeLinear", "Relu", "Sigmoid", "Tanh", "Gelu", "Add"],
        "com.microsoft": ["Attention", "MultiHeadAttention"],
    }
    for domain, op_types in required.items():
        for op_type in op_types:
            assert REGISTRY.lookup(op_type, domain) is not None, f"{domain}::{op_type}"


def test_every_onnx_activation_is_registered() -> None:
    import onnx

    activations = {"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "Sigmoid", "HardSigmoid",
                   "HardSwish", "Tanh", "Softplus", "Softsign", "Gelu", "Mish", "Shrink"}
    if any(s.name == "Swish" for s in onnx.defs.get_all_schemas()):
        activations.add("Swish")
    assert not [a for a in sorted(activations) if REGISTRY.lookup(a) is None]
