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


def _one_node_profile(op_type: str, registry: OpRegistry, inits: list, x_shape: list[int], opset: int = 17,
                      **attrs: object) -> object:
    from onnx import TensorProto, helper

    from pytest_maccbudget import profile_model

    node = helper.make_node(op_type, ["x"] + [t.name for t in inits], ["y"], name="node", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), registry=registry)


def test_a_new_op_needs_only_its_registration() -> None:
    """Everything about an op is in its registration: here a CumProd whose axis input is a shape
    input (not a weight), with its op class. Nothing else in the engine names it."""
    import numpy as np
    from onnx import numpy_helper

    from pytest_maccbudget.engine.ops._common import normalize_axis
    from pytest_maccbudget.engine.ops.elementwise import cumsum_flops

    def cumprod(node):  # the one function: L - 1 multiplies per line
        shape = node.output_shape(0)
        axis = normalize_axis(int(node.input_value(1).reshape(-1)[0]), len(shape), node.op_type)
        return OpCost(flops=cumsum_flops(shape, axis, exclusive=False))

    with_trait, without_trait = REGISTRY.copy(), REGISTRY.copy()
    with_trait.register("CumProd", op_class="elementwise", shape_inputs=[1])(cumprod)
    without_trait.register("CumProd")(cumprod)
    axis = [numpy_helper.from_array(np.array([1], np.int64), "axis")]
    layer = _one_node_profile("CumProd", with_trait, axis, [2, 4], opset=26).layer("node")
    assert (layer.flops, layer.params, layer.op_class) == (2 * 3, 0, "elementwise")
    # the trait is what makes the axis no parameter
    assert _one_node_profile("CumProd", without_trait, axis, [2, 4], opset=26).layer("node").params == 1


def test_every_registration_has_a_known_op_class() -> None:
    from pytest_maccbudget.engine.registry import OP_CLASSES

    for entry in REGISTRY:
        if not callable(entry.traits.op_class):
            assert entry.traits.op_class in OP_CLASSES, entry
    assert REGISTRY.lookup("NoSuchOp") is None and REGISTRY.traits("NoSuchOp").op_class == "other"


def test_depthwise_is_decided_per_node_from_group_and_channels() -> None:
    import numpy as np
    from onnx import numpy_helper

    def weight(*shape: int) -> list:
        return [numpy_helper.from_array(np.ones(shape, np.float32), "w")]

    classes = {
        (1, 8): _one_node_profile("Conv", REGISTRY, weight(8, 8, 3, 3), [1, 8, 6, 6]),
        (8, 8): _one_node_profile("Conv", REGISTRY, weight(8, 1, 3, 3), [1, 8, 6, 6], group=8),
        (2, 8): _one_node_profile("Conv", REGISTRY, weight(8, 4, 3, 3), [1, 8, 6, 6], group=2),
    }
    assert {key: p.layer("node").op_class for key, p in classes.items()} == {
        (1, 8): "conv", (8, 8): "depthwise_conv", (2, 8): "conv"}
    gemm = _one_node_profile("MatMul", REGISTRY, weight(8, 2), [1, 8])
    assert gemm.layer("node").op_class == "matmul"
