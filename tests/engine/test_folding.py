"""Constant folding: only the values a shape or a cost needs, never one above the element cap
(so never a weight), and in one pass however deep the chain of shape arithmetic goes."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine import folding
from pytest_maccbudget.engine import graph as engine_graph

F32, I64 = TensorProto.FLOAT, TensorProto.INT64
ZOO_VGG19 = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_vgg19.onnx"


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every node the folder evaluates, with the element count of its largest output."""
    seen: list[tuple[str, int]] = []
    evaluate = folding.evaluate

    def recording(node: onnx.NodeProto, values: list, attrs: dict) -> list[np.ndarray]:
        outputs = evaluate(node, values, attrs)
        seen.append((node.op_type, max(np.asarray(output).size for output in outputs)))
        return outputs

    monkeypatch.setattr(folding, "evaluate", recording)
    return seen


def _int64(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"make_{name}",
                            value=numpy_helper.from_array(np.array(values, np.int64), name))


def _weight(name: str, shape: list[int]) -> list[onnx.NodeProto]:
    """A weight made like the zoo graphs make theirs: ConstantOfShape of a shape constant."""
    return [_int64(f"{name}_shape", shape),
            helper.make_node("ConstantOfShape", [f"{name}_shape"], [name], name=f"make_{name}",
                             value=helper.make_tensor("v", F32, [1], [0.01]))]


def vgg_style_model() -> onnx.ModelProto:
    """Two 3x3 convs, a Dropout with an unused mask, a flatten whose target is computed at run time
    (Shape -> Slice with an end from Mod -> Concat), and a 16384 -> 4096 fully connected layer:
    its weight alone would be 67 M floats (268 MB) if computed."""
    nodes = _weight("w1", [64, 3, 3, 3]) + _weight("w2", [64, 64, 3, 3]) + _weight("fc_w", [4096, 16384])
    nodes += _weight("fc_b", [4096]) + [_int64("zero", [0]), _int64("seven", [7]), _int64("five", [5]),
                                        _int64("one", [1]), _int64("rest", [-1])]
    nodes += [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Dropout", ["r2"], ["d2", "mask"], name="drop"),
        helper.make_node("Shape", ["d2"], ["shape"], name="shape"),
        helper.make_node("Mod", ["seven", "five"], ["two"], name="mod"),  # 2 - 1 = 1: keep the batch dim
        helper.make_node("Sub", ["two", "one"], ["end"], name="end"),
        helper.make_node("Slice", ["shape", "zero", "end"], ["batch"], name="batch"),
        helper.make_node("Concat", ["batch", "rest"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["d2", "target"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "vgg", [helper.make_tensor_value_info("x", F32, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", F32, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def test_no_value_above_the_cap_is_ever_computed(evaluations: list[tuple[str, int]]) -> None:
    tracemalloc.start()
    try:
        profile = profile_model(vgg_style_model())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not profile.partial, profile.unknown
    conv = 32 * 32 * 64 * 27 + 16 * 16 * 64 * 576
    assert profile.totals.macs == conv + 16384 * 4096
    assert profile.totals.params == 1728 + 36864 + 16384 * 4096 + 4096
    assert evaluations, "the flatten target needs folding"
    assert max(size for _, size in evaluations) <= folding.FOLD_MAX_ELEMENTS
    assert {op for op, _ in evaluations} <= {"Constant", "Mod", "Sub", "Slice", "Concat"}
    assert peak < 20_000_000  # the fc weight alone is 268 MB


def test_zoo_vgg19_computes_no_value_at_all(evaluations: list[tuple[str, int]]) -> None:
    # its Dropout masks are never produced at inference and nothing else is unknown: nothing to fold
    profile = profile_model(ZOO_VGG19)
    assert profile.totals.macs == 19_632_062_464
    assert evaluations == []


def test_a_computed_output_larger_than_the_cap_is_not_computed(evaluations: list[tuple[str, int]]) -> None:
    # Expand of a small constant to 1024 x 1024 feeds a Reshape target's Shape: the shape is known
    # from inference, the 1 M values are never made
    nodes = [_int64("big", [1024, 1024]), helper.make_node("ConstantOfShape", ["big"], ["ones"], name="ones"),
             helper.make_node("Shape", ["ones"], ["target"], name="target"),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1024 * 1024])],
                              [helper.make_tensor_value_info("y", F32, None)])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert profile.layer("reshape").output_bytes == 4 * 1024 * 1024
    assert all(size <= folding.FOLD_MAX_ELEMENTS for _, size in evaluations)


def _pad_chain(levels: int) -> onnx.ModelProto:
    """Each level pads its input's width up by 4 - width % 4 (the pad computed from the runtime
    shape through Mod, which onnx's data propagation does not evaluate), then doubles it: level
    n's shape is known only once level n - 1's pad has been computed."""
    nodes = [_int64("one", [1]), _int64("four", [4]), _int64("no_pads", [0, 0, 0])]
    source = "x"
    for level in range(levels):
        nodes += [
            helper.make_node("Shape", [source], [f"s{level}"], name=f"shape{level}"),
            helper.make_node("Gather", [f"s{level}", "one"], [f"w{level}"], name=f"width{level}"),
            helper.make_node("Mod", [f"w{level}", "four"], [f"r{level}"], name=f"rest{level}"),
            helper.make_node("Sub", ["four", f"r{level}"], [f"p{level}"], name=f"pad{level}"),
            helper.make_node("Concat", ["no_pads", f"p{level}"], [f"pads{level}"], name=f"pads{level}", axis=0),
            helper.make_node("Pad", [source, f"pads{level}"], [f"padded{level}"], name=f"padding{level}"),
            helper.make_node("Relu", [f"padded{level}"], [f"h{level}"], name=f"act{level}"),
            helper.make_node("Concat", [f"h{level}", f"h{level}"], [f"c{level}"], name=f"double{level}", axis=1),
        ]
        source = f"c{level}"
    nodes.append(helper.make_node("Identity", [source], ["y"], name="out"))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", F32, [1, 5])],
                              [helper.make_tensor_value_info("y", F32, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_arithmetic_resolves_in_one_pass_however_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    infer = engine_graph._infer_serialized  # onnx's inference of a whole model
    monkeypatch.setattr(engine_graph, "_infer_serialized", lambda *a, **k: calls.append(1) or infer(*a, **k))
    profile = profile_model(_pad_chain(12))  # the old engine stopped after 4 rounds of folding
    assert not profile.partial, profile.unknown[:1]
    width = 5
    for level in range(12):
        width += 4 - width % 4
        assert profile.layer(f"act{level}").flops == width
        width *= 2
    assert len(calls) == 1  # one shape inference of the whole graph


def test_folding_rules_check_sizes_before_allocating() -> None:
    node = helper.make_node("ConstantOfShape", ["s"], ["y"])
    with pytest.raises(folding.TooLarge):
        folding.evaluate(node, [np.array([4096, 25088], np.int64)], {})
    with pytest.raises(folding.TooLarge):
        folding.evaluate(helper.make_node("Range", ["a", "b", "c"], ["y"]),
                         [np.array(0), np.array(1 << 40), np.array(1)], {})
    assert folding.evaluate(helper.make_node("Div", ["a", "b"], ["y"]), [np.array(-7), np.array(2)], {})[0] == -3


def test_the_shape_of_a_small_weights_nonzero_is_known_before_the_graph_runs() -> None:
    # NonZero(W) of a 3 x 4 weight with 5 nonzeros is [2, 5]; onnx's inference says [2, ?]. Its
    # Shape and the ConstantOfShape of it are worked out before the graph runs: ones is a stored
    # [2, 5] (10 params, read by the Add); W only feeds constants, so it is no parameter
    weight = numpy_helper.from_array(np.array([[1, 0, 2, 0], [0, 3, 0, 4], [5, 0, 0, 0]], np.float32), "W")
    nodes = [helper.make_node("NonZero", ["W"], ["nz"], name="nz"),
             helper.make_node("Shape", ["nz"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["ones"], name="ones", value=helper.make_tensor("v", F32, [1], [1.0])),
             helper.make_node("Add", ["x", "ones"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [2, 5])],
                              [helper.make_tensor_value_info("y", F32, None)], [weight])
    profile = profile_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [profile.layer(name).status for name in ("shape", "ones")] == ["constant", "constant"]
    add = profile.layer("add")
    assert (add.flops, add.params, add.bytes_read) == (10, 10, 2 * 40)
    assert profile.totals.peak_activation_bytes == 40 + 40 and not profile.notes
